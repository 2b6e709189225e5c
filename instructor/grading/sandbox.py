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

Limits (memory, CPU time, file size, tasks, no new processes) are applied by the launcher
(:mod:`.launch`) before bwrap starts, so the kernel cannot raise them: :mod:`.confinement`.

Standard library only: the launcher imports this before the kernel exists.
"""

from __future__ import annotations

import functools
import os
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
