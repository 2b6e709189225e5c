"""Where the labs are, and small helpers the tests share. A lab is a folder
``solutions/<lab>/`` holding ``<lab>.ipynb``; nothing else needs registering."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from instructor.course import build_course, find_labs
from instructor.nbgrader_runner import run_nbgrader

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


def nbgrader(*args: str, cwd: Path, check: bool = True, timeout: float = 900
             ) -> subprocess.CompletedProcess:
    """Run ``nbgrader ARGS`` in ``cwd`` (a course root) and return the finished process, its
    output (stdout and stderr in order) as ``stdout``. It is nbgrader's own command line, argv
    and configuration unchanged, run by ``run_nbgrader`` (a child of the test process's warm
    nbgrader process: conftest's ``warm_nbgrader``)."""
    result = run_nbgrader(*args, cwd=cwd, timeout=timeout, check=False)
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
