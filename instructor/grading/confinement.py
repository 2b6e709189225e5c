"""The limits of one grading kernel, set by its launcher (:mod:`.launch`) on itself before it
becomes bwrap, so that the kernel inherits them and cannot raise them.

- :func:`apply_limits`: address space, CPU time, file size, open files, no core dumps; tasks
  (processes and threads) through ``RLIMIT_NPROC`` for an ordinary user, or a pids cgroup for
  root (for whom the kernel does not enforce ``RLIMIT_NPROC``).
- :func:`no_new_processes_filter`: a seccomp filter (built with libseccomp when it is installed)
  that refuses to create processes, so that one kernel is one process, whose memory the
  address-space limit bounds.

Standard library only: the launcher imports this before the kernel exists.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
from pathlib import Path


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
