"""Where the labs are, and small helpers the tests share. A lab is a folder
``solutions/<lab>/`` holding ``<lab>.ipynb``; nothing else needs registering."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from instructor.course import find_labs
from instructor.environment import tool_env

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
NOTEBOOKS = ROOT / "notebooks"
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def discover_labs() -> list[str]:
    return find_labs(SOLUTIONS)


def solution_path(lab: str) -> Path:
    return SOLUTIONS / lab / f"{lab}.ipynb"


def student_path(lab: str) -> Path:
    return NOTEBOOKS / lab / f"{lab}.ipynb"


def nbgrader(*args: str, cwd: Path, check: bool = True, timeout: float = 900
             ) -> subprocess.CompletedProcess:
    """Run ``nbgrader ARGS`` in ``cwd`` (a course root) and return the finished process."""
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=tool_env(),
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"nbgrader {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def make_course(root: Path, labs: dict[str, Path]) -> Path:
    """A throw-away course in ``root``: the kit's nbgrader_config.py and the given
    source notebooks as ``solutions/<lab>/<lab>.ipynb``."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    for lab, notebook in labs.items():
        target = root / "solutions" / lab
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(notebook, target / f"{lab}.ipynb")
    return root


def read_cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]
