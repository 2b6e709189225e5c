"""Real servers the large-class tests start on this machine, and stop afterwards.

- :class:`PostgresServer`: Debian's PostgreSQL (``initdb`` and ``pg_ctl`` in a temporary folder,
  as the ``postgres`` user, or ``nobody``, when the suite runs as root), listening on a free port
  of 127.0.0.1 with trust authentication; one database per test.
- The Dask cluster (a scheduler and workers as processes): :class:`benchmarks.distributed.DaskCluster`,
  which the benchmark shares.
- :func:`as_user`: the command line that runs a command as another Unix user whose name is given
  by a private ``/etc/passwd`` (a student of the exchange tests), for a suite running as root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server programs: Debian's newest ``/usr/lib/postgresql/N/bin``,
    else wherever ``pg_ctl`` is on PATH; None when PostgreSQL is not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).resolve().parent if pg_ctl else None


def unavailable_reason() -> str | None:
    """Why no PostgreSQL server can be started here, or None."""
    folder = postgres_bin()
    if folder is None or not (folder / "initdb").exists():
        return "PostgreSQL is not installed (Debian: apt-get install postgresql; .ci/install-packages)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[large-class]')"
    return None


class PostgresServer:
    """A PostgreSQL server in a temporary folder, run by an ordinary user. Use as a context
    manager; :meth:`create_database` makes a fresh database and returns its URL."""

    def __init__(self, *, startup_timeout: float = 120):
        self.bin = postgres_bin()
        self.port = free_port()
        self.startup_timeout = startup_timeout
        self.superuser = "kit"
        self.folder: Path | None = None
        self.account = None  # the pwd entry the server runs as, when the suite is root

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def _as_owner(self) -> dict:
        if self.account is None:
            return {}
        return {"user": self.account.pw_uid, "group": self.account.pw_gid, "extra_groups": []}

    def _run(self, *argv: str, timeout: float = 120) -> str:
        result = subprocess.run([str(self.bin / argv[0]), *argv[1:]], capture_output=True, text=True,
                                timeout=timeout, cwd=self.folder, env=self._env(),
                                **self._as_owner())
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}):\n"
                               f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}\n{self.log()}")
        return result.stdout

    def _env(self) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        if self.account is not None:
            env.update(HOME=str(self.folder), USER=self.account.pw_name)
        return env

    def __enter__(self) -> PostgresServer:
        self.folder = Path(tempfile.mkdtemp(prefix="kit-postgres-"))
        if os.geteuid() == 0:  # initdb refuses to run as root
            name = next(n for n in ("postgres", "nobody") if _account(n) is not None)
            self.account = _account(name)
            os.chmod(self.folder, 0o755)
            os.chown(self.folder, self.account.pw_uid, self.account.pw_gid)
        try:
            self._run("initdb", "-D", str(self.data), "-U", self.superuser, "--auth=trust",
                      "-E", "UTF8", "--no-sync", "--no-instructions")
            options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} "
                       "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                       "-c max_connections=200")
            self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-o",
                      options, "-w", "-t", str(int(self.startup_timeout)), "start",
                      timeout=self.startup_timeout + 30)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def url(self, database: str = "postgres") -> str:
        """The database's URL, with SQLAlchemy's driver name for psycopg 3 (``postgresql+psycopg``:
        SQLAlchemy 2.0 would otherwise look for psycopg2)."""
        return f"postgresql+psycopg://{self.superuser}@127.0.0.1:{self.port}/{database}"

    def libpq_url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.superuser}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new, empty database ``name``; its SQLAlchemy URL."""
        import psycopg
        with psycopg.connect(self.libpq_url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def version(self) -> str:
        """The server's version line, e.g. ``PostgreSQL 15.14 (Debian 15.14-0+deb12u1) ...``."""
        import psycopg
        with psycopg.connect(self.libpq_url()) as connection:
            return connection.execute("SELECT version()").fetchone()[0]

    def log(self) -> str:
        path = self.folder / "server.log" if self.folder else None
        return path.read_text(errors="replace")[-3000:] if path and path.exists() else ""

    def stop(self) -> None:
        if self.folder is None:
            return
        if (self.data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60)
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None


def _account(name: str):
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


# ----------------------------------------------------------------------------- other users


def can_switch_users() -> str | None:
    """Why commands cannot run as other Unix users here, or None: needs root, and ``unshare``
    and ``setpriv`` (util-linux) with mount namespaces."""
    if os.geteuid() != 0:
        return "running as another Unix user needs root"
    for tool in ("unshare", "setpriv", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} (util-linux) is not installed"
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"no mount namespaces here: {probe.stderr.strip()[:200]}"
    return None


def hidden_folders(paths) -> dict[Path, list[Path]]:
    """For each of ``paths`` that other users cannot reach (a Python under a private /root, say):
    the highest folder above it that others may not traverse -> the paths below it."""
    found: dict[Path, list[Path]] = {}
    for path in paths:
        path = Path(path).resolve()
        blocked = [a for a in [*reversed(path.parents), path] if not a.stat().st_mode & 0o001]
        if blocked:
            found.setdefault(blocked[0], []).append(path)
    return found


def as_user(argv: list[str], *, passwd: Path, group: Path, uid: int | None, stash: Path,
            reach: tuple = ()) -> list[str]:
    """``argv`` run with ``passwd`` and ``group`` as ``/etc/passwd`` and ``/etc/group``, in a
    private mount namespace (nothing else on the machine sees the change) and, unless ``uid``
    is None, as that user and its group: a real Unix user switch, so the files it writes are its
    own and it reads only what that user may. The folders of ``reach`` (the Python environment)
    are made reachable inside the namespace only: a private folder above them is covered by an
    empty one holding just them (``stash``, an empty folder, keeps the originals at hand). Needs
    root (:func:`can_switch_users`)."""
    q = shlex.quote
    lines = ["set -e", f"mount --bind {q(str(passwd))} /etc/passwd",
             f"mount --bind {q(str(group))} /etc/group"]
    for number, (top, inside) in enumerate(hidden_folders(reach).items()):
        keep = stash / str(number)
        keep.mkdir(parents=True, exist_ok=True)
        lines += [f"mount --bind {q(str(top))} {q(str(keep))}",
                  f"mount -t tmpfs -o mode=0755 tmpfs {q(str(top))}"]
        for path in inside:
            relative = path.relative_to(top)
            lines += [f"mkdir -p {q(str(top / relative))}",
                      f"mount --bind {q(str(keep / relative))} {q(str(top / relative))}"]
    switch = [] if uid is None else ["setpriv", f"--reuid={uid}", f"--regid={uid}",
                                     "--clear-groups", "--"]
    lines.append("exec " + " ".join(q(a) for a in [*switch, *argv]))
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", "\n".join(lines)]


def wait_for(predicate, *, timeout: float, interval: float = 0.1, what: str = "a condition"):
    """Poll ``predicate()`` until it returns something true; that value, or TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")
