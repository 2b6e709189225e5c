"""Grading kernels, started before they are needed and used for exactly one submission each.

:func:`start_kernel` launches one kernel (sandboxed with bwrap, or bare with ``--no-sandbox``)
through :mod:`.launch`, which applies the limits first. The kernel starts at once, imports what
the labs use, and waits; the grader hands it to nbgrader (:mod:`.provisioner`) when a submission
comes. :class:`KernelPool` keeps started kernels ahead of the workers, so kernel start and imports
happen while the previous submission runs, and :meth:`KernelPool.release` kills each kernel,
with everything it started, after its one submission: the grader decides this from the process
handle and group it created, never from anything the kernel could write.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from ..environment import KIT_ROOT, kernel_env
from .confinement import pids_cgroup_parents, remove_cgroup
from .limits import Limits
from .sandbox import (
    INSIDE_HOME,
    INSIDE_KIT,
    INSIDE_RUN,
    KERNEL_SIDE,
    bwrap_argv,
    lab_utils_folder,
    write_identity,
)

CHANNELS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
SOCKET_PATH_BYTES = 107  # a Unix socket's path, at most (Linux; 103 on macOS)


def check_socket_room(run_dir: Path) -> None:
    """Raise ``ValueError`` when the kernels' sockets under ``run_dir`` (a folder in ``TMPDIR``)
    would have paths longer than Unix sockets allow."""
    longest = Path(run_dir) / "kernel-9999" / "ipc" / f"k-{len(CHANNELS)}"
    if len(os.fsencode(longest)) > SOCKET_PATH_BYTES:
        raise ValueError(f"TMPDIR: expected a folder with a path short enough for the grading "
                         f"kernels' sockets ({longest}: {len(os.fsencode(longest))} bytes, at "
                         f"most {SOCKET_PATH_BYTES}), got {Path(run_dir).parent}; set TMPDIR to "
                         f"a shorter folder, such as /tmp")


@dataclass(frozen=True)
class KernelPlan:
    """How every kernel of one grading run starts: in ``run_dir``, with the lab's data files from
    ``lab_source``, under ``limits``, sandboxed or not, with a prepared matplotlib font cache."""

    run_dir: Path
    lab_source: Path
    limits: Limits
    sandboxed: bool
    matplotlib_cache: Path | None = None
    preload: tuple[str, ...] = ()


@dataclass
class KernelHandle:
    """One started kernel: its launcher process (the group leader), its folder, how to reach it."""

    process: subprocess.Popen
    folder: Path
    connection: dict
    cgroup: str | None

    @property
    def work(self) -> Path:
        return self.folder / "work"

    @property
    def records(self) -> Path:
        return self.work / ".kit-record"

    def adoption(self) -> str:
        """What the provisioner needs to adopt this kernel (``KIT_KERNEL``)."""
        return json.dumps({"pid": self.process.pid, "connection": self.connection,
                           "work": str(self.work)})


def _connection(ip: str, key: str) -> dict:
    info = {"transport": "ipc", "ip": ip, "key": key, "signature_scheme": "hmac-sha256",
            "kernel_name": "kit-sandbox"}
    info.update({channel: number for number, channel in enumerate(CHANNELS, start=1)})
    return info


def _pythonpath(kernel_side: str) -> str:
    """Without a sandbox: the kernel-side package, then the folder of the grader's
    ``lab_utils``, so that the kernel imports the same copy however the kit was installed."""
    folder = lab_utils_folder()
    return os.pathsep.join([kernel_side, *([str(Path(folder).parent)] if folder else [])])


def _copy_lab_files(source: Path, work: Path) -> None:
    for path in source.iterdir():
        if path.is_file() and path.suffix != ".ipynb" and not path.is_symlink():
            shutil.copyfile(path, work / path.name)


def start_kernel(plan: KernelPlan, number: int) -> KernelHandle:
    """Launch kernel ``number`` of this run; returns at once (it starts in the background)."""
    folder = plan.run_dir / f"kernel-{number}"
    work, ipc, mpl, etc = (folder / name for name in ("work", "ipc", "matplotlib", "etc"))
    for path in (work, ipc, mpl):
        path.mkdir(parents=True)
    _copy_lab_files(plan.lab_source, work)
    if plan.matplotlib_cache is not None:
        for cache in plan.matplotlib_cache.glob("*.json"):
            shutil.copyfile(cache, mpl / cache.name)
    key = secrets.token_hex(32)
    python = sys.executable
    start = f"import kernel_side; kernel_side.start({tuple(plan.preload)!r})"
    kernel_args = ["-m", "ipykernel_launcher", "--HistoryManager.hist_file=:memory:",
                   f"--IPKernelApp.exec_lines={start}"]
    if plan.sandboxed:
        write_identity(etc)
        (ipc / "connection.json").write_text(json.dumps(_connection(f"{INSIDE_RUN}/k", key)))
        env = kernel_env(home=INSIDE_HOME, python_bin=str(Path(python).parent),
                         pythonpath=INSIDE_KIT)
        command = bwrap_argv(work=work, ipc=ipc, matplotlib=mpl, etc=etc, env=env,
                             command=[python, *kernel_args, "-f", f"{INSIDE_RUN}/connection.json"])
    else:
        home = folder / "home"
        home.mkdir()
        (ipc / "connection.json").write_text(json.dumps(_connection(str(ipc / "k"), key)))
        env = kernel_env(home=str(home), python_bin=str(Path(python).parent),
                         pythonpath=_pythonpath(str(KERNEL_SIDE.parent)))
        env["MPLCONFIGDIR"] = str(mpl)
        command = [python, *kernel_args, "-f", str(ipc / "connection.json")]
    cgroup = f"kit-{os.getpid()}-{number}-{secrets.token_hex(3)}"
    limits = plan.limits
    spec = {"argv": command, "cgroup": cgroup,
            "limits": {"memory_mb": limits.memory_mb, "cpu_seconds": limits.cpu_seconds,
                       "file_mb": limits.file_mb, "tasks": limits.tasks}}
    launcher_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(KIT_ROOT),
                    "PYTHONDONTWRITEBYTECODE": "1"}
    if not plan.sandboxed:
        launcher_env.update(env)
        launcher_env["PYTHONPATH"] = f"{KIT_ROOT}{os.pathsep}{env['PYTHONPATH']}"
    with open(folder / "kernel.log", "wb") as log:
        process = subprocess.Popen([python, "-m", "instructor.grading.launch", json.dumps(spec)],
                                   cwd=work, env=launcher_env, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=log, start_new_session=True)
    return KernelHandle(process, folder, _connection(str(ipc / "k"), key), cgroup)


def _cgroup_path(name: str) -> str | None:
    for parent in pids_cgroup_parents():
        if (parent / name).exists():
            return str(parent / name)
    return None


def stop_kernel(handle: KernelHandle) -> None:
    """Kill the kernel and everything in its process group, reap it, remove its folder."""
    try:
        os.killpg(handle.process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        handle.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        handle.process.kill()
        handle.process.wait()
    if os.geteuid() == 0:
        remove_cgroup(_cgroup_path(handle.cgroup))
    remove_tree(handle.folder)


def remove_tree(path: Path) -> None:
    """Remove ``path`` and everything under it, even folders a kernel made read-only or
    unreadable for its owner (it runs as the grader's user, so they are the grader's to open)."""
    shutil.rmtree(path, ignore_errors=True)
    if not os.path.lexists(path) or os.path.islink(path):
        return
    def open_up(folder: str) -> None:
        try:
            os.chmod(folder, 0o700)
        except OSError:  # not the grader's (another user's kernel): left for rmtree to report
            pass

    open_up(path)
    for top, folders, _ in os.walk(path):  # top-down: each folder is opened before it is read
        for name in folders:
            if not os.path.islink(os.path.join(top, name)):
                open_up(os.path.join(top, name))
    shutil.rmtree(path, ignore_errors=True)


class KernelPool:
    """Started kernels waiting for a submission: ``first`` of them at once (default ``spare``),
    then up to ``spare``, and never more in all than the ``needed`` submissions of the run."""

    def __init__(self, plan: KernelPlan, *, spare: int, needed: int, first: int | None = None):
        check_socket_room(plan.run_dir)
        self.plan, self.spare, self.needed = plan, spare, needed
        self.ready: deque[KernelHandle] = deque()
        self.lock = threading.Lock()
        self.started = 0
        for _ in range(min(spare if first is None else first, needed)):
            self.ready.append(self._start())

    def _start(self) -> KernelHandle:
        self.started += 1
        return start_kernel(self.plan, self.started)

    def take(self) -> KernelHandle:
        """A started kernel for one submission (and, while more are needed, new ones start
        until ``spare`` wait again)."""
        with self.lock:
            handle = self.ready.popleft() if self.ready else self._start()
            if handle.process.poll() is not None:  # it died waiting: start another
                stop_kernel(handle)
                handle = self._start()
            while len(self.ready) < self.spare and self.started < self.needed:
                self.ready.append(self._start())
            return handle

    def release(self, handle: KernelHandle) -> None:
        stop_kernel(handle)

    def close(self) -> None:
        with self.lock:
            while self.ready:
                stop_kernel(self.ready.popleft())
