"""The one way the kit runs nbgrader: its command line, ``nbgrader ARGS``.

- :func:`run_nbgrader`: ``nbgrader ARGS`` as a subprocess (commands, benchmarks).
- :func:`share`: a process that runs many nbgrader commands (the test suite) may share warm
  processes among all of them: :func:`run_nbgrader` and every grading run in that process then
  fork their commands from one instead of importing nbgrader anew each time.
- :class:`WarmNbgrader`: the same command line, minus the seconds of imports (the grader, the
  tests' ``nbgrader`` helper). It starts ``python -m instructor.nbgrader_runner`` once; that
  process imports nbgrader (and what the grading preprocessors need) and then, for each
  command sent on its stdin (one JSON line),
  forks a child that behaves exactly like ``python -m nbgrader ARGV`` started in a new session:
  its own process group, working folder, environment and log file, an optional address-space
  limit, its exit status as the result (as :mod:`subprocess` gives it). nbgrader's own
  ``NbGraderApp`` runs in the child with the same argv, so nbgrader's rules are unchanged. The
  warm process never opens a kernel, a thread or a database of a course (only one in memory,
  closed again: :func:`_prepare`), so nothing but imported code and its caches is shared with
  the children. Several commands may run at once (one per grading slot): the warm
  process forks each as it comes and reports each child's end as it happens.

Both stamp a new gradebook as nbgrader does, with the newest of nbgrader's database migrations,
but read that migration from nbgrader's scripts in the process (:func:`stamp_gradebooks_in_process`)
instead of running ``alembic heads`` in a subprocess of its own for each new gradebook.

Protocol (one line of JSON each way): ``{"id", "argv", "cwd", "env", "log", "memory"}`` in;
``{"id", "pid": P}`` as soon as the child runs, then ``{"id", "status": S}`` when it has ended.
"""

from __future__ import annotations

import functools
import gc
import itertools
import json
import os
import queue
import select
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from .environment import KIT_ROOT, THREAD_SETTINGS, tool_env

# imported before the first command is read (every nbgrader command needs them)
PRELOAD = ("nbgrader.apps.nbgraderapp", "nbgrader.apps.autogradeapp",
           "nbgrader.apps.generateassignmentapp", "nbgrader.preprocessors", "nbgrader.api",
           "nbclient", "jupyter_client", "jupyter_client.provisioning", "nbconvert.preprocessors")
# imported whenever no command is waiting (what grading adds, then what the caller names, such
# as the lab's torch; a child forked before they are all in imports the rest itself): the first
# commands, seeding gradebooks, need not wait
PRELOAD_WHEN_IDLE = ("instructor.grading.preprocessors",)


def run_nbgrader(*args: str, cwd: Path, env: dict[str, str] | None = None,
                 timeout: float | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """``nbgrader ARGS`` in ``cwd`` (a course root), in a process of its own (or in a child of
    the :func:`shared_runner`); raises ``RuntimeError`` with the end of its output when it fails
    and ``check`` is true."""
    env, runner = env or tool_env(), shared_runner()
    if runner is not None:
        result = runner.run_captured(list(args), cwd=cwd, env=env, timeout=timeout)
    else:
        result = subprocess.run([sys.executable, "-m", "instructor.nbgrader_runner", "--once",
                                 *args], cwd=cwd, env=env, capture_output=True, text=True,
                                timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed (exit {result.returncode}):\n"
                           f"{(result.stdout + result.stderr)[-3000:]}")
    return result


class WarmNbgrader:
    """One warm process; :meth:`run` is :func:`run_nbgrader` with a log file, a memory limit and
    a wall-clock limit, minus the imports. Several threads may call :meth:`run` at once: each
    command runs in a child of its own, and a thread reading the replies hands each to its
    command."""

    def __init__(self, also_import: tuple[str, ...] = (), *, lazy: bool = False):
        """``also_import``: modules the children will import (the lab's torch), imported in the
        warm process when it is idle. ``lazy``: start the process at the first command, not now."""
        self.lock = threading.Lock()  # guards process, waiting and writes to its stdin
        self.process: subprocess.Popen | None = None
        self.waiting: dict[int, queue.Queue] = {}
        self.numbers = itertools.count(1)
        self.also_import = tuple(also_import)
        if not lazy:
            self.start()

    def start(self) -> None:
        """Start the warm process (the caller holds the lock, or no thread uses this one yet)."""
        self.process = subprocess.Popen([sys.executable, "-m", "instructor.nbgrader_runner",
                                         *self.also_import],
                                        cwd=KIT_ROOT, env=tool_env(**THREAD_SETTINGS),
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.waiting = {}
        threading.Thread(target=self._hand_out_replies, args=(self.process, self.waiting),
                         daemon=True).start()

    @staticmethod
    def _hand_out_replies(process: subprocess.Popen, waiting: dict[int, queue.Queue]) -> None:
        """Each reply line to the command it answers; when the process ends, an ``ended`` reply
        to every command still waiting for it."""
        for line in iter(process.stdout.readline, b""):
            reply = json.loads(line)
            box = waiting.get(reply["id"])
            if box is not None:
                box.put(reply)
        process.stdout.close()
        ended = {"ended": process.wait()}
        for box in list(waiting.values()):
            box.put(ended)

    def run(self, argv: list[str], *, cwd: Path, env: dict[str, str], log: Path,
            memory: int | None = None, timeout: float | None = None) -> tuple[int, bool]:
        """Run ``nbgrader ARGV`` in a forked child; returns (exit status, killed at ``timeout``).
        On timeout the child's whole process group is killed, as for a subprocess session."""
        box: queue.Queue = queue.Queue()
        with self.lock:
            if self.process is None or self.process.poll() is not None:
                self.start()  # never started, closed, or died since the last command
            number, waiting = next(self.numbers), self.waiting
            waiting[number] = box
            request = {"id": number, "argv": [str(a) for a in argv], "cwd": str(cwd), "env": env,
                       "log": str(log), "memory": memory}
            try:
                self.process.stdin.write(json.dumps(request).encode() + b"\n")
                self.process.stdin.flush()
            except OSError:
                pass  # it has just died: the reply thread says so
        try:
            pid = _reply(box, None)["pid"]
            try:
                return _reply(box, timeout)["status"], False
            except queue.Empty:
                for kill in (os.killpg, os.kill):
                    try:
                        kill(pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                return _reply(box, None)["status"], True
        finally:
            waiting.pop(number, None)

    def run_captured(self, argv: list[str], *, cwd: Path, env: dict[str, str],
                     timeout: float | None = None) -> subprocess.CompletedProcess:
        """:meth:`run` as :func:`subprocess.run` with ``capture_output`` answers: the exit status
        and the output (``stdout``; ``stderr`` is empty: both went to one log), or
        ``subprocess.TimeoutExpired`` once the child is killed at ``timeout``."""
        with tempfile.TemporaryDirectory(prefix="kit-nbgrader-") as folder:
            log = Path(folder) / "nbgrader.log"
            status, killed = self.run(argv, cwd=cwd, env=env, log=log, timeout=timeout)
            output = log.read_text(errors="replace")
        if killed:
            raise subprocess.TimeoutExpired(["nbgrader", *argv], timeout, output)
        return subprocess.CompletedProcess(["nbgrader", *argv], status, output, "")

    def close(self) -> None:
        with self.lock:
            process, self.process = self.process, None
        if process is None:
            return
        try:
            process.stdin.close()
        except OSError:
            pass
        # it holds no state (its children have their own sessions and ends): no need to wait
        # for its interpreter to tear down torch and the rest
        process.kill()
        process.wait()


_shared: dict[tuple[str, ...], WarmNbgrader] | None = None  # see share(); None: not shared
_shared_lock = threading.Lock()


def share(enabled: bool = True) -> None:
    """Whether this process's nbgrader commands run in children of warm processes it shares:
    those of :func:`run_nbgrader` and of every grading run
    (:class:`instructor.grading.grader.LabGrader`, which then neither starts nor closes one of
    its own). For a process that runs many commands (the test suite), each of which would
    otherwise pay a second of imports; the commands and their results are the same either way.
    ``False`` closes the shared processes: each command in a process of its own again."""
    global _shared
    with _shared_lock:
        if enabled and _shared is not None:
            return
        runners, _shared = _shared, ({} if enabled else None)
    for runner in (runners or {}).values():
        runner.close()


def shared_runner(also_import: tuple[str, ...] = ()) -> WarmNbgrader | None:
    """The shared warm process that also imports ``also_import`` (one per distinct tuple,
    started by its first command: a child forked from a process holding torch costs more, so
    plain commands get a plain one); None while :func:`share` is off."""
    with _shared_lock:
        if _shared is None:
            return None
        if also_import not in _shared:
            _shared[also_import] = WarmNbgrader(also_import, lazy=True)
        return _shared[also_import]


def _reply(box: queue.Queue, timeout: float | None) -> dict:
    """The next reply to one command; raises ``queue.Empty`` when ``timeout`` passes first."""
    reply = box.get(timeout=timeout)
    if "ended" in reply:
        raise RuntimeError(f"the warm nbgrader process ended (exit {reply['ended']})")
    return reply


# ----------------------------------------------------------------------------- the warm side


def _child(request: dict, wakeup: tuple[int, int]) -> None:
    """In the forked child: become ``python -m nbgrader ARGV`` in a new session; never returns."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)  # the warm process's way of noticing its children, not ours
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in wakeup:
            os.close(fd)
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
        code = _nbgrader(request["argv"])
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


def stamp_gradebooks_in_process() -> Callable[[], str]:
    """Make nbgrader, in this process, stamp each gradebook it creates with the newest of its
    migrations read from its own migration scripts, once; returns the function nbgrader now
    calls for it. nbgrader runs ``alembic heads`` in a new process for it each time (a second
    of CPU; a run of the suite creates dozens of gradebooks); the answer is the same, as the
    suite checks."""
    import nbgrader.api
    if hasattr(nbgrader.api.get_alembic_version, "cache_info"):  # ours: functools.cache's
        return nbgrader.api.get_alembic_version

    @functools.cache
    def get_alembic_version() -> str:
        from alembic.config import Config
        from alembic.script import ScriptDirectory
        from nbgrader.dbutil import ALEMBIC_DIR

        config = Config()
        config.set_main_option("script_location", ALEMBIC_DIR)
        return ScriptDirectory.from_config(config).get_current_head()

    nbgrader.api.get_alembic_version = get_alembic_version
    return get_alembic_version


def _nbgrader(argv: list[str]) -> int:
    """What ``python -m nbgrader ARGV`` does, in this process; returns its exit status."""
    stamp_gradebooks_in_process()
    sys.argv = [sys.argv[0], *argv]
    from nbgrader.apps.nbgraderapp import NbGraderApp
    try:
        NbGraderApp.launch_instance(argv=argv)
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        print(stop.code, file=sys.stderr)
        return 1
    return 0


def _prepare() -> None:
    """What every nbgrader child would otherwise compute again, done once in the warm process
    (a twentieth of a second per child): nbformat's notebook validators, strict and relaxed
    (nbconvert checks the notebook after each preprocessor), and the gradebook's object
    mappings, set up by opening and closing a gradebook in memory."""
    import nbformat
    from nbformat.validator import get_validator
    from nbgrader.api import Gradebook

    for relaxed in (False, True):
        get_validator(nbformat.current_nbformat, nbformat.current_nbformat_minor,
                      relax_add_props=relaxed)
    Gradebook("sqlite://").close()


def _serve() -> None:
    import importlib
    for name in PRELOAD:
        importlib.import_module(name)
    stamp_gradebooks_in_process()()  # read once here, not in each child that creates one
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the grading process decides; EOF ends us
    wakeup = os.pipe()  # a child's end (SIGCHLD) makes it readable, which wakes select
    for fd in wakeup:
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(wakeup[1])
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, int] = {}  # pid -> the id of the command it runs
    later: list = [_prepare, *PRELOAD_WHEN_IDLE, *sys.argv[1:]]  # callables and module names
    buffer, reading = b"", True
    while reading or children:
        watched = [0, wakeup[0]] if reading else [wakeup[0]]
        ready = select.select(watched, [], [], 0 if later else None)[0]
        if not ready and later:
            step = later.pop(0)
            try:
                if callable(step):
                    step()
                else:
                    importlib.import_module(step)
            except ImportError:  # the child that needs it reports it
                pass
            continue
        if wakeup[0] in ready:
            while True:
                try:
                    if not os.read(wakeup[0], 4096):
                        break
                except BlockingIOError:
                    break
        if 0 in ready:
            chunk = os.read(0, 65536)
            reading = bool(chunk)
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                # what is imported by now is moved out of the collector's reach: a child's
                # full collections walk only its own objects (walking torch's and nbgrader's
                # cost each autograde a fifth of a second and copied the pages they touched)
                gc.freeze()
                pid = os.fork()
                if pid == 0:
                    _child(request, wakeup)
                children[pid] = request["id"]
                _say({"id": request["id"], "pid": pid})
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            _say({"id": children.pop(pid), "status": os.waitstatus_to_exitcode(status)})


def _say(reply: dict) -> None:
    os.write(1, json.dumps(reply).encode() + b"\n")  # one short line: one atomic pipe write


if __name__ == "__main__":
    if sys.argv[1:2] == ["--once"]:  # run_nbgrader: one command in this process
        sys.exit(_nbgrader(sys.argv[2:]))
    _serve()
