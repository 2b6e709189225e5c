"""Kernel launcher for grading: limits, then a private view of the file system, then ipykernel.

The grader's kernelspec runs ``python -m instructor.sandbox -f CONNECTION_FILE``. Settings come
as JSON in the environment variable ``KIT_SANDBOX``::

    {"memory_mb": 4096, "file_mb": 256, "cpu_s": 900, "pid_file": ".../kernels.pid",
     "hide": ["/course/solutions", "/course/gradebook.db", ...], "startup": "<python source>",
     "isolate": true}

Always: address-space, file-size and CPU-time limits, no core dumps, one thread per kernel for
torch/BLAS, and the grader's startup code (``instructor.kernel_guard``). When the launcher runs as
root on Linux and ``isolate`` is true it also enters a private mount namespace where ``/tmp`` is an
empty tmpfs (so other submissions' working copies and the scratch gradebooks are gone; only the
kit's own code and virtual environment are bound back, read-only, when they live there), every path
in ``hide`` is covered (folders by an empty tmpfs, files by ``/dev/null``), the root file system
is read-only, and only the submission's own working copy is writable.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import sys
import tempfile

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = (
    1, 2, 4, 32, 4096, 8192, 16384, 1 << 18)
PR_SET_PDEATHSIG = 1
WORK = "/tmp/kit-kernel"  # inside the private /tmp: home, IPython profile, connection file


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                           ctypes.c_char_p]
    return libc


def _enc(text) -> bytes | None:
    return None if text is None else str(text).encode()


def _mount(libc, source, target, fstype, flags, data=None):
    if libc.mount(_enc(source), _enc(target), _enc(fstype), flags, _enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} -> {target}: {os.strerror(err)}")


def set_limits(settings: dict) -> None:
    """Address space, file size and CPU time of this process and whatever it starts."""
    mb = 1024 * 1024
    limits = [(resource.RLIMIT_CORE, 0)]
    if settings.get("memory_mb"):
        limits.append((resource.RLIMIT_AS, int(settings["memory_mb"]) * mb))
    if settings.get("file_mb"):
        limits.append((resource.RLIMIT_FSIZE, int(settings["file_mb"]) * mb))
    if settings.get("cpu_s"):
        limits.append((resource.RLIMIT_CPU, int(settings["cpu_s"])))
    for which, value in limits:
        resource.setrlimit(which, (value, value))


def isolate(settings: dict, cwd: str) -> None:
    """Private mount namespace: fresh /tmp, hidden course data, read-only root, writable cwd.

    ``cwd`` (the working copy) must lie under /tmp. A new tmpfs is prepared at a staging folder,
    the working copy is bound into it at its own path, and the tmpfs is then moved onto /tmp.
    """
    stage = tempfile.mkdtemp(prefix="stage-", dir=settings.get("home") or None)
    libc = _libc()
    if libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
    _mount(libc, "tmpfs", stage, "tmpfs", MS_NOSUID | MS_NODEV, "size=512m,mode=1777")
    for path in [cwd, *settings.get("bind", [])]:  # the working copy, the kernel's sockets
        if not path.startswith("/tmp/"):
            raise ValueError(f"bind: expected folders under /tmp/, got {path!r}")
        inside = os.path.join(stage, os.path.relpath(path, "/tmp"))
        os.makedirs(inside, exist_ok=True)
        _mount(libc, path, inside, None, MS_BIND)
    for path in _code_under_tmp():  # a kit or venv that itself lives under /tmp stays visible
        inside = os.path.join(stage, os.path.relpath(path, "/tmp"))
        os.makedirs(inside, exist_ok=True)
        _mount(libc, path, inside, None, MS_BIND | MS_REC)
        _mount(libc, None, inside, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    _mount(libc, stage, "/tmp", None, MS_MOVE)
    for path in settings.get("hide", []):
        if path.startswith("/tmp/"):
            continue
        if os.path.isdir(path):
            _mount(libc, "tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
            _mount(libc, None, path, None, MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_RDONLY)
        elif os.path.isfile(path):
            _mount(libc, "/dev/null", path, None, MS_BIND)
    _mount(libc, None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    os.chdir(cwd)


def _code_under_tmp() -> list[str]:
    """The code a kernel imports, where it lies under /tmp (e.g. a clone in /tmp): the virtual
    environment, lab_utils and instructor. Never the course data: solutions/ stays out."""
    kit = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = [sys.prefix, os.path.join(kit, "lab_utils"), os.path.join(kit, "instructor")]
    return sorted({os.path.realpath(p) for p in paths if os.path.realpath(p).startswith("/tmp/")})


def prepare_home(settings: dict, connection: str, home: str) -> str:
    """HOME, IPython profile with the grader's startup file, and the connection file in ``home``."""
    startup_dir = os.path.join(home, ".ipython", "profile_default", "startup")
    os.makedirs(startup_dir, exist_ok=True)
    with open(os.path.join(startup_dir, "00-kit-guard.py"), "w") as f:
        f.write(settings.get("startup", ""))
    target = os.path.join(home, "kernel.json")
    with open(target, "w") as f:
        f.write(connection)
    os.environ.update(HOME=home, IPYTHONDIR=os.path.join(home, ".ipython"), TMPDIR="/tmp",
                      MPLCONFIGDIR=os.path.join(home, ".matplotlib"))
    return target


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[0] != "-f":
        sys.exit(f"usage: python -m instructor.sandbox -f CONNECTION_FILE (got {argv})")
    settings = json.loads(os.environ.get("KIT_SANDBOX", "{}"))
    if settings.get("pid_file"):
        with open(settings["pid_file"], "a") as f:
            f.write(f"{os.getpid()}\n")
    try:  # die with the grader's nbgrader process
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, 9)
    except (OSError, AttributeError):
        pass
    with open(argv[1]) as f:
        connection = f.read()
    cwd = os.getcwd()
    home = settings.get("home") or os.path.join(cwd, ".kit-home")
    if settings.get("isolate"):
        isolate(settings, cwd)
        home = WORK
    connection_file = prepare_home(settings, connection, home)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = "1"
    os.environ.update(LAB_DEVICE="cpu", MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
    set_limits(settings)
    os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", "-f", connection_file,
                              "--HistoryManager.hist_file=:memory:"])


def can_isolate() -> bool:
    """True where the launcher can build its private mount namespace (root on Linux)."""
    return sys.platform.startswith("linux") and hasattr(os, "geteuid") and os.geteuid() == 0


if __name__ == "__main__":
    main(sys.argv[1:])
