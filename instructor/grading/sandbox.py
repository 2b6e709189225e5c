"""The sandbox every grading kernel runs in: bubblewrap (``bwrap``), set up from outside.

Per kernel, bwrap gives new user, PID, IPC, UTS, mount, network and cgroup namespaces, drops
every capability, runs the kernel as uid/gid 65534 inside (also when the grader is root),
``--die-with-parent`` and ``--new-session``. The kernel sees: ``/usr`` (and the ``/lib*``,
``/bin`` links), the Python environment read-only at its own paths, ``lab_utils`` and the
kernel-side package read-only at ``/opt/kit`` (first on its ``PYTHONPATH``), its working copy (the submission's folder with the
lab's data files) as ``/home/student/work`` (the only writable place besides a private ``/tmp``
and home), its sockets at ``/run/kit``, its own ``/proc`` and a minimal ``/dev``. Nothing else:
not the course, the grader's scratch folders, other submissions, ``/root``, ``/home``, ``/etc``
(beyond a made-up passwd file and the loader's cache), and no network, not even loopback to the
host (nbgrader talks to it over Unix sockets, jupyter_client's ``ipc`` transport).

Limits are applied by :func:`apply_limits` in the launcher (:mod:`.launch`), before bwrap starts,
so the kernel cannot raise them: address space, CPU time, file size, open files, no core dumps;
tasks (processes and threads) through ``RLIMIT_NPROC`` for an ordinary user, or a pids cgroup
for root (for whom the kernel does not enforce ``RLIMIT_NPROC``); and a seccomp filter (built
with libseccomp when it is installed) that refuses to create processes, so that one kernel is
one process whose memory the address-space limit bounds.

Standard library only: the launcher imports this before the kernel exists.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

INSIDE_HOME = "/home/student"
INSIDE_WORK = f"{INSIDE_HOME}/work"
INSIDE_RUN = "/run/kit"
INSIDE_KIT = "/opt/kit"
SANDBOX_UID = 65534
KERNEL_SIDE = Path(__file__).resolve().parent / "kernel_side"
INSTALL_HINT = (
    "Grade on Linux with bubblewrap installed (Debian/Ubuntu: `sudo apt-get install bubblewrap`; "
    "Fedora: `sudo dnf install bubblewrap`), or in a Linux container, e.g. "
    "`docker run --rm -it -v \"$PWD\":/course -w /course python:3.11 bash -c "
    "'apt-get update && apt-get install -y bubblewrap && python3 kit.py grade LAB'` "
    "(user namespaces must be allowed: docker's default seccomp profile may need "
    "`--security-opt seccomp=unconfined`). To grade without a sandbox anyway, knowing that the "
    "students' code can then reach everything your user can, pass --no-sandbox.")


class SandboxUnavailable(RuntimeError):
    """bwrap cannot run here; the message says why and what to do."""


@functools.lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """Why no kernel can be sandboxed on this machine, or None when bwrap works here."""
    if not sys.platform.startswith("linux"):
        return f"bubblewrap needs Linux; this is {sys.platform}"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    try:
        probe = subprocess.run([bwrap, "--unshare-all", "--die-with-parent", "--cap-drop", "ALL",
                                "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
                                "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
                                "true"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bwrap did not run: {error}"
    if probe.returncode != 0:
        return (f"bwrap cannot create its namespaces here ({probe.stderr.strip()[:300]}); "
                "user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone or "
                "user.max_user_namespaces)")
    return None


def require_sandbox() -> str:
    """bwrap's version line, or :class:`SandboxUnavailable` with why and what to do."""
    reason = unavailable_reason()
    if reason:
        raise SandboxUnavailable(f"cannot sandbox the grading kernels: {reason}. {INSTALL_HINT}")
    version = subprocess.run([shutil.which("bwrap"), "--version"], capture_output=True, text=True)
    return version.stdout.strip() or "bubblewrap"


def _system_paths() -> list[str]:
    """/usr read-only, and /lib, /lib64, /bin, /sbin as they are on the host (links or binds)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    if os.path.exists("/etc/ld.so.cache"):
        args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    return args


def lab_utils_folder() -> str | None:
    """Where the grader imports ``lab_utils`` from (the kernel imports the same copy)."""
    import importlib.util
    spec = importlib.util.find_spec("lab_utils")
    return str(Path(spec.origin).resolve().parent) if spec and spec.origin else None


def code_paths() -> list[str]:
    """The Python installation and the virtual environment, read-only at their own paths
    (``lab_utils`` goes to ``/opt/kit`` with the kernel-side package)."""
    paths = []
    for path in (sys.base_prefix, sys.prefix):
        if path is None:
            continue
        real = os.path.realpath(path)
        for candidate in {path, real}:
            if candidate not in paths:
                paths.append(candidate)
    paths.sort(key=len)
    kept: list[str] = []
    for path in paths:
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


def bwrap_argv(*, work: Path, ipc: Path, matplotlib: Path, etc: Path, env: dict[str, str],
               command: list[str]) -> list[str]:
    """The bwrap command line for one kernel (see the module's docstring). ``work``, ``ipc``,
    ``matplotlib`` (its font cache) and ``etc`` (made-up passwd/group) are host folders."""
    args = [shutil.which("bwrap") or "bwrap", "--unshare-user", "--unshare-ipc", "--unshare-pid",
            "--unshare-net", "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent",
            "--disable-userns", "--new-session", "--cap-drop", "ALL", "--uid", str(SANDBOX_UID), "--gid",
            str(SANDBOX_UID), "--hostname", "grading"]
    args += _system_paths()
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
             "--size", str(64 * 1024 * 1024), "--tmpfs", INSIDE_HOME]
    for name in ("passwd", "group"):
        args += ["--ro-bind", str(etc / name), f"/etc/{name}"]
    for path in code_paths():  # after the tmpfs mounts, so that a clone under /tmp stays visible
        args += ["--ro-bind", path, path]
    lab_utils = lab_utils_folder()
    if lab_utils:
        args += ["--ro-bind", lab_utils, f"{INSIDE_KIT}/lab_utils"]
    args += ["--ro-bind", str(KERNEL_SIDE), f"{INSIDE_KIT}/kernel_side",
             "--bind", str(work), INSIDE_WORK, "--bind", str(matplotlib), f"{INSIDE_HOME}/.matplotlib",
             "--bind", str(ipc), INSIDE_RUN, "--chdir", INSIDE_WORK, "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return [*args, "--", *command]


def write_identity(etc: Path) -> None:
    """The passwd and group files the sandbox shows (one user, the sandbox's)."""
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "passwd").write_text(f"student:x:{SANDBOX_UID}:{SANDBOX_UID}:student:{INSIDE_HOME}:"
                                "/usr/sbin/nologin\n")
    (etc / "group").write_text(f"student:x:{SANDBOX_UID}:\n")


# ----------------------------------------------------------------------------- limits


def _tasks_of_user(uid: int) -> int:
    """How many tasks (threads included) ``uid`` runs now, from /proc."""
    count = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if fields.get("Uid", "").split()[:1] == [str(uid)]:
            count += int(fields.get("Threads", "1").strip() or 1)
    return count


def pids_cgroup_parents() -> list[Path]:
    """Where this process may create a pids cgroup: cgroup v1's pids hierarchy, or v2 when the
    pids controller is available under our own cgroup."""
    found = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            found.append(Path("/sys/fs/cgroup/pids") / path.lstrip("/"))
        elif controllers == "" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
            parent = Path("/sys/fs/cgroup") / path.lstrip("/")
            if "pids" in (parent / "cgroup.subtree_control").read_text(errors="ignore").split():
                found.append(parent)
    return [p for p in found if os.access(p, os.W_OK)]


def join_pids_cgroup(name: str, tasks: int) -> str | None:
    """Put this process into a new pids cgroup ``name`` limited to ``tasks``; its path, or None
    where no cgroup can be made here."""
    for parent in pids_cgroup_parents():
        group = parent / name
        try:
            group.mkdir(exist_ok=True)
            (group / "pids.max").write_text(str(tasks))
            (group / "cgroup.procs").write_text(str(os.getpid()))
            return str(group)
        except OSError:
            try:
                group.rmdir()
            except OSError:
                pass
    return None


def remove_cgroup(path: str | None) -> None:
    if path:
        try:
            os.rmdir(path)
        except OSError:
            pass


def apply_limits(*, memory_mb: int, cpu_seconds: int, file_mb: int, tasks: int,
                 cgroup: str | None) -> dict[str, str]:
    """Set this process's limits (inherited by the sandbox, never raisable inside); returns how
    tasks are limited."""
    mib = 1024 * 1024
    for which, value in ((resource.RLIMIT_AS, memory_mb * mib), (resource.RLIMIT_CPU, cpu_seconds),
                         (resource.RLIMIT_FSIZE, file_mb * mib), (resource.RLIMIT_CORE, 0),
                         (resource.RLIMIT_NOFILE, 1024)):
        resource.setrlimit(which, (value, value))
    uid = os.getuid()
    if uid != 0:
        allowed = _tasks_of_user(uid) + tasks
        resource.setrlimit(resource.RLIMIT_NPROC, (allowed, allowed))
        return {"tasks": f"RLIMIT_NPROC {allowed} ({tasks} above what the user runs)"}
    joined = join_pids_cgroup(cgroup, tasks) if cgroup else None
    return {"tasks": f"pids cgroup {joined}" if joined else "not limited (root, no pids cgroup)"}


# ----------------------------------------------------------------------------- seccomp

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_MASKED_EQ = 7
CLONE_THREAD = 0x00010000


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def no_new_processes_filter() -> int | None:
    """A file descriptor holding a seccomp BPF program (for ``bwrap --seccomp``) that refuses
    ``fork``, ``vfork`` and ``clone`` without ``CLONE_THREAD`` (EPERM) and ``clone3`` (ENOSYS, so
    that threads fall back to ``clone``); None where libseccomp is not installed."""
    try:
        lib = ctypes.CDLL("libseccomp.so.2")
    except OSError:
        return None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    context = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not context:
        return None

    def deny(name: bytes, code: int, *compare: _ArgCmp) -> None:
        number = lib.seccomp_syscall_resolve_name(name)
        if number < 0:  # not a syscall on this architecture
            return
        array = (_ArgCmp * len(compare))(*compare) if compare else None
        if lib.seccomp_rule_add_array(context, 0x00050000 | code, number, len(compare), array):
            raise OSError(f"seccomp: cannot add a rule for {name.decode()}")

    try:
        deny(b"fork", errno.EPERM)
        deny(b"vfork", errno.EPERM)
        deny(b"clone3", errno.ENOSYS)
        clone_flags = 1 if os.uname().machine.startswith("s390") else 0
        deny(b"clone", errno.EPERM, _ArgCmp(clone_flags, SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0))
        fd = os.memfd_create("kit-seccomp", 0)
        if lib.seccomp_export_bpf(context, fd):
            os.close(fd)
            return None
        os.lseek(fd, 0, os.SEEK_SET)
        return fd
    except OSError:
        return None
    finally:
        lib.seccomp_release(context)
