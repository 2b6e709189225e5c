"""The one way the kit runs nbgrader: its command line, ``nbgrader ARGS``.

- :func:`run_nbgrader`: ``python -m nbgrader ARGS`` as a subprocess (commands, tests, benchmarks).
- :class:`WarmNbgrader`: the same command line, minus the seconds of imports. It starts
  ``python -m instructor.nbgrader_runner`` once; that process imports nbgrader (and what the
  grading preprocessors need) and then, for each command sent on its stdin (one JSON line),
  forks a child that behaves exactly like ``python -m nbgrader ARGV`` started in a new session:
  its own process group, working folder, environment and log file, an optional address-space
  limit, its exit status as the result (as :mod:`subprocess` gives it). nbgrader's own
  ``NbGraderApp`` runs in the child with the same argv, so nbgrader's rules are unchanged. The
  warm process never opens a database, a kernel or a thread, so nothing but imported code is
  shared with the children.

Protocol (one line of JSON each way): ``{"argv", "cwd", "env", "log", "memory"}`` in; ``{"pid":
P}`` as soon as the child runs, then ``{"status": S}`` when it has ended.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from .environment import KIT_ROOT, THREAD_SETTINGS, tool_env

PRELOAD = ("nbgrader.apps.nbgraderapp", "nbgrader.apps.autogradeapp",
           "nbgrader.apps.generateassignmentapp", "nbgrader.preprocessors", "nbgrader.api",
           "nbclient", "jupyter_client", "jupyter_client.provisioning", "nbconvert.preprocessors",
           "instructor.grading.preprocessors", "torch", "lab_utils")


def run_nbgrader(*args: str, cwd: Path, env: dict[str, str] | None = None,
                 timeout: float | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """``python -m nbgrader ARGS`` in ``cwd`` (a course root); raises ``RuntimeError`` with the
    end of its output when it fails and ``check`` is true."""
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd,
                            env=env or tool_env(), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed (exit {result.returncode}):\n"
                           f"{(result.stdout + result.stderr)[-3000:]}")
    return result


class WarmNbgrader:
    """One warm process; :meth:`run` is :func:`run_nbgrader` with a log file, a memory limit and
    a wall-clock limit, minus the imports."""

    def __init__(self):
        self.process: subprocess.Popen | None = None
        self.buffer = b""
        self.start()

    def start(self) -> None:
        self.buffer = b""
        self.process = subprocess.Popen([sys.executable, "-m", "instructor.nbgrader_runner"],
                                        cwd=KIT_ROOT, env=tool_env(**THREAD_SETTINGS),
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)

    def run(self, argv: list[str], *, cwd: Path, env: dict[str, str], log: Path,
            memory: int | None = None, timeout: float | None = None) -> tuple[int, bool]:
        """Run ``nbgrader ARGV`` in a forked child; returns (exit status, killed at ``timeout``).
        On timeout the child's whole process group is killed, as for a subprocess session."""
        if self.process.poll() is not None:  # died since the last command: start a fresh one
            self.start()
        request = {"argv": [str(a) for a in argv], "cwd": str(cwd), "env": env, "log": str(log),
                   "memory": memory}
        self.process.stdin.write(json.dumps(request).encode() + b"\n")
        pid = self._reply(None)["pid"]
        deadline = None if timeout is None else time.monotonic() + timeout
        reply = self._reply(deadline)
        if reply is not None:
            return reply["status"], False
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        return self._reply(None)["status"], True

    def _reply(self, deadline: float | None) -> dict | None:
        """The next reply line, or None when ``deadline`` (monotonic) passes first."""
        out = self.process.stdout.fileno()
        while b"\n" not in self.buffer:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([out], [], [], wait)[0]:
                return None
            chunk = os.read(out, 4096)
            if not chunk:
                raise RuntimeError(f"the warm nbgrader process ended (exit {self.process.wait()})")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        if self.process is None:
            return
        try:
            self.process.stdin.close()
            self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        self.process = None


# ----------------------------------------------------------------------------- the warm side


def _child(request: dict) -> None:
    """In the forked child: become ``python -m nbgrader ARGV`` in a new session; never returns."""
    code = 1
    try:
        os.setsid()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as at Python's start
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        if request.get("memory"):
            import resource
            resource.setrlimit(resource.RLIMIT_AS, (request["memory"], request["memory"]))
        sys.argv = [sys.argv[0], *request["argv"]]
        from nbgrader.apps.nbgraderapp import NbGraderApp
        try:
            NbGraderApp.launch_instance(argv=request["argv"])
            code = 0
        except SystemExit as stop:
            if stop.code is None or isinstance(stop.code, int):
                code = stop.code or 0
            else:
                print(stop.code, file=sys.stderr)
    except BaseException:
        import traceback
        traceback.print_exc()
    finally:
        try:
            import logging
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _serve() -> None:
    import importlib
    for name in PRELOAD:
        importlib.import_module(name)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the grading process decides; EOF ends us
    buffer = b""
    while True:
        while b"\n" not in buffer:
            chunk = os.read(0, 65536)
            if not chunk:
                return
            buffer += chunk
        line, buffer = buffer.split(b"\n", 1)
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        os.write(1, json.dumps({"pid": pid}).encode() + b"\n")
        _, status = os.waitpid(pid, 0)
        os.write(1, json.dumps({"status": os.waitstatus_to_exitcode(status)}).encode() + b"\n")


if __name__ == "__main__":
    _serve()
