"""Where the labs are, and small helpers the tests share. A lab is a folder
``solutions/<lab>/`` holding ``<lab>.ipynb``; nothing else needs registering."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from instructor.course import build_course, find_labs
from instructor.nbgrader_runner import run_nbgrader

ROOT = Path(__file__).resolve().parent.parent
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
    """Run ``nbgrader ARGS`` in ``cwd`` (a course root) and return the finished process."""
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
