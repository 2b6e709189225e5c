"""Warm nbgrader processes: import nbgrader once, then fork one child per command.

``python -m nbgrader ...`` spends seconds importing nbgrader, nbconvert and jupyter_client before
it does anything. A :class:`WarmNbgrader` starts ``python -m instructor.warm`` once; that process
imports everything and then waits for commands (one JSON line each on its stdin). For each it
forks a child that behaves exactly like ``python -m nbgrader ARGV`` started with
``start_new_session=True``: its own session and process group, the given working folder and
environment, stdout and stderr into a log file, an optional address-space limit, and its exit
status as the result. The forked child runs nbgrader's own ``NbGraderApp`` in-process with the
same argv, so nbgrader's rules are unchanged; only the imports are paid once per worker instead of
once per submission. The worker itself never opens a database, a kernel or a thread, so nothing
but imported code is shared with the children.

Protocol (one line of JSON each way): ``{"argv", "cwd", "env", "log", "memory"}`` in;
``{"pid": P}`` as soon as the child runs, then ``{"status": S}`` when it ended (``S`` as
``subprocess`` gives it: the exit code, or minus the signal that killed it).
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

from .course import KIT_ROOT, tool_env

PRELOAD = ("nbgrader.apps.nbgraderapp", "nbgrader.apps.autogradeapp",
           "nbgrader.apps.generateassignmentapp", "nbgrader.preprocessors", "nbgrader.api",
           "nbclient", "jupyter_client", "jupyter_client.provisioning", "nbconvert.preprocessors",
           "instructor.guard")


class WarmNbgrader:
    """One warm worker process; :meth:`run` is ``subprocess.run([python, -m, nbgrader, *argv])``
    with a log file, a memory limit and a wall-clock limit, minus the imports."""

    def __init__(self):
        self.process: subprocess.Popen | None = None
        self.buffer = b""
        self.start()

    def start(self) -> None:
        self.buffer = b""
        self.process = subprocess.Popen([sys.executable, "-m", "instructor.warm"], cwd=KIT_ROOT,
                                        env=tool_env(), stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, bufsize=0)

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
        for kill in (os.killpg, os.kill):  # the group (its kernels' groups are killed by the caller)
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


# ----------------------------------------------------------------------------- the worker side


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
