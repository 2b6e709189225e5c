"""Where the labs are, and small helpers the tests share. A lab is a folder
``solutions/<lab>/`` holding ``<lab>.ipynb``; nothing else needs registering."""

from __future__ import annotations

import atexit
import json
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from instructor.course import build_course, find_labs
from instructor.environment import tool_env
from instructor.nbgrader_runner import WarmNbgrader

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
R = TypeVar("R")
SOLUTIONS = ROOT / "solutions"
NOTEBOOKS = ROOT / "notebooks"


def discover_labs() -> list[str]:
    return find_labs(SOLUTIONS)


def solution_path(lab: str) -> Path:
    return SOLUTIONS / lab / f"{lab}.ipynb"


def student_path(lab: str) -> Path:
    return NOTEBOOKS / lab / f"{lab}.ipynb"


_warm: list[WarmNbgrader] = []  # one per test process, started by its first nbgrader command
_warm_lock = threading.Lock()


def nbgrader(*args: str, cwd: Path, check: bool = True, timeout: float = 900
             ) -> subprocess.CompletedProcess:
    """Run ``nbgrader ARGS`` in ``cwd`` (a course root) and return the finished process, its
    output (stdout and stderr in order) as ``stdout``. It is nbgrader's own command line, argv
    and configuration unchanged, run by :class:`WarmNbgrader` (a child forked from a process that
    has imported nbgrader already) to spare each command a second of imports."""
    with _warm_lock:
        if not _warm:
            _warm.append(WarmNbgrader())
            atexit.register(_warm[0].close)
    with tempfile.TemporaryDirectory(prefix="kit-nbgrader-") as folder:
        log = Path(folder) / "nbgrader.log"
        status, killed = _warm[0].run(list(args), cwd=cwd, env=tool_env(), log=log,
                                      timeout=timeout)
        output = log.read_text(errors="replace")
    if killed:
        raise subprocess.TimeoutExpired(["nbgrader", *args], timeout, output)
    result = subprocess.CompletedProcess(["nbgrader", *args], status, output, "")
    if check and result.returncode != 0:
        raise AssertionError(f"nbgrader {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def make_course(root: Path, labs: dict[str, Path]) -> Path:
    """A throw-away course in ``root`` with the given lab sources (see ``build_course``)."""
    return build_course(root, labs).root


def read_cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def two_at_a_time(function: Callable[[T], R], items: Iterable[T]) -> dict[T, Future[R]]:
    """``function(item)`` for every item, two at a time (each call waits on a child process that
    uses one core; the test machines have two), all finished on return: item -> its future, whose
    ``result()`` gives what the call returned or re-raises what it raised, in the test that reads
    that item. Make the folders the calls need (``tmp_path_factory.mktemp``) before, not in the
    calls: the first one on a pytest-xdist worker empties the worker's temporary root, and two
    threads doing that at once delete each other's folders."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return {item: pool.submit(function, item) for item in items}
