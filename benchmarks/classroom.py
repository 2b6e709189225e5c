"""What students and instructors wait for: ``import lab_utils``, a solution notebook's Run All
(kernel start included) and the grading of a class, with plain ``nbgrader autograde`` and with
the kit's grader (``python -m instructor grade``) where it exists."""

from __future__ import annotations

import contextlib
import copy
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from instructor.course import find_labs
from instructor.environment import tool_env

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
FIXTURE = ROOT / "tests" / "fixtures" / "fixture_lab.ipynb"
LAB_ENV = {"LAB_DEVICE": "cpu", "MPLBACKEND": "Agg"}
IGNORE = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")


def discover_labs(solutions: Path = SOLUTIONS) -> dict[str, Path]:
    """``{lab: solutions/<lab>/<lab>.ipynb}`` for every lab folder, sorted by name."""
    return {lab: solutions / lab / f"{lab}.ipynb" for lab in find_labs(solutions)}


@contextlib.contextmanager
def lab_environment() -> Iterator[None]:
    """Set :data:`LAB_ENV` in this process (kernels inherit it), restoring it afterwards."""
    saved = {k: os.environ.get(k) for k in LAB_ENV}
    os.environ.update(LAB_ENV)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def import_seconds(module: str = "lab_utils", *, repeat: int = 5) -> list[float]:
    """Seconds to ``import module`` in a fresh interpreter (its startup excluded), per run."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    return [float(subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=tool_env(), check=True,
                                 capture_output=True, text=True).stdout.split()[-1])
            for _ in range(repeat)]


def run_all_seconds(notebook: Path, *, repeat: int = 3, cell_timeout: int = 120) -> list[float]:
    """Wall seconds of Run All on ``notebook`` in a fresh kernel, kernel start included, per run.
    Raises ``nbclient.exceptions.CellExecutionError`` if a cell fails."""
    import nbformat
    from nbclient import NotebookClient

    source = nbformat.read(notebook, as_version=4)
    seconds = []
    with lab_environment():
        for _ in range(repeat):
            start = time.perf_counter()
            NotebookClient(copy.deepcopy(source), timeout=cell_timeout, kernel_name="python3",
                           resources={"metadata": {"path": str(notebook.parent)}}).execute()
            seconds.append(time.perf_counter() - start)
    return seconds


# grading ----------------------------------------------------------------------------------

@dataclass
class GradingTiming:
    """Wall seconds to grade ``submissions`` notebooks with one method; ``seconds`` is ``None``
    with a ``note`` where the method was not available."""
    method: str
    workers: int | None
    submissions: int
    seconds: float | None = None
    note: str = ""

    @property
    def per_submission(self) -> float | None:
        return self.seconds / self.submissions if self.seconds is not None else None


def nbgrader(*args: str, cwd: Path, timeout: float = 3600) -> None:
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=tool_env(),
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed ({result.returncode}) in {cwd}:\n"
                           f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def prepare_class(root: Path, labs: dict[str, Path], *, class_size: int) -> list[str]:
    """A throw-away course in ``root``: the kit's nbgrader_config.py, each lab's folder as the
    source, its generated student version, and ``class_size`` submissions per lab (students
    ``s00``, ``s01``, …; even ones hand in the solution, odd ones the untouched blank notebook).
    Returns the student ids."""
    if class_size < 1:
        raise ValueError(f"class_size: expected an int >= 1, got {class_size}")
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    students = [f"s{i:02d}" for i in range(class_size)]
    for lab, notebook in labs.items():
        target = root / "solutions" / lab
        if notebook.name == f"{lab}.ipynb":  # a lab folder: bring its data files too
            shutil.copytree(notebook.parent, target, ignore=IGNORE)
        else:                                # a lone notebook, e.g. the test fixture
            target.mkdir(parents=True)
            shutil.copy(notebook, target / f"{lab}.ipynb")
        nbgrader("generate_assignment", lab, "--force", cwd=root)
        for i, student in enumerate(students):
            source = root / ("solutions" if i % 2 == 0 else "notebooks") / lab
            shutil.copytree(source, root / "submitted" / student / lab, ignore=IGNORE)
    return students


def time_nbgrader_autograde(course: Path, labs: list[str]) -> float:
    """Seconds for plain serial ``nbgrader autograde LAB --create``, one lab after the other."""
    start = time.perf_counter()
    for lab in labs:
        nbgrader("autograde", lab, "--create", cwd=course)
    return time.perf_counter() - start


def kit_grader_interface() -> tuple[list[str] | None, str]:
    """How to call the kit's grader (``python -m instructor grade LAB ...``) with a number of
    workers, read from its ``--help``: ``(options, '')`` where the options hold ``{workers}`` and
    ``{course}`` placeholders, or ``(None, why not)``."""
    if not (ROOT / "instructor" / "__main__.py").exists():
        return None, "not available (instructor/__main__.py does not exist yet)"
    result = subprocess.run([sys.executable, "-m", "instructor", "grade", "--help"], cwd=ROOT,
                            env=tool_env(), capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        return None, f"not available (`python -m instructor grade --help` exited {result.returncode})"
    usage = result.stdout
    workers = next((f for f in ("--workers", "--jobs", "-j") if re.search(rf"(^|\s){f}\b", usage)), None)
    if workers is None:
        return None, "not available (`instructor grade --help` lists no --workers/--jobs option)"
    course = next((f for f in ("--course-dir", "--course", "--root") if re.search(rf"(^|\s){f}\b", usage)), None)
    return [*([course, "{course}"] if course else []), workers, "{workers}"], ""


def time_kit_grader(course: Path, labs: list[str], argv: list[str], workers: int) -> float:
    """Seconds for ``python -m instructor grade LAB`` with ``workers`` workers, lab after lab."""
    args = [a.format(course=course, workers=workers) for a in argv]
    start = time.perf_counter()
    for lab in labs:
        result = subprocess.run([sys.executable, "-m", "instructor", "grade", lab, *args], cwd=course,
                                env=tool_env(), capture_output=True, text=True, timeout=3600)
        if result.returncode != 0:
            raise RuntimeError(f"instructor grade {lab} {' '.join(args)} failed ({result.returncode}):"
                               f"\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def time_grading(workdir: Path, labs: dict[str, Path], *, class_size: int,
                 worker_counts: list[int]) -> list[GradingTiming]:
    """Grade the same class once with serial ``nbgrader autograde`` and once per worker count
    with the kit's grader, each on a fresh copy of the prepared course."""
    pristine = workdir / "course"
    students = prepare_class(pristine, labs, class_size=class_size)
    submissions = len(students) * len(labs)

    def fresh_copy(name: str) -> Path:
        return Path(shutil.copytree(pristine, workdir / name))

    def checked(row: GradingTiming, course: Path) -> GradingTiming:
        graded = len(list(course.glob("autograded/*/*/*.ipynb")))
        if graded != submissions:  # a fast grader that skipped submissions measures nothing
            row.seconds, row.note = None, f"failed: {graded} of {submissions} notebooks autograded"
        return row

    course = fresh_copy("serial")
    rows = [checked(GradingTiming("nbgrader autograde (serial)", 1, submissions,
                                  time_nbgrader_autograde(course, list(labs))), course)]
    argv, reason = kit_grader_interface()
    for workers in worker_counts:
        row = GradingTiming("python -m instructor grade", workers, submissions, note=reason)
        if argv is not None:
            course = fresh_copy(f"kit-{workers}")
            try:
                row.seconds = time_kit_grader(course, list(labs), argv, workers)
                checked(row, course)
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                row.note = f"failed: {str(error).splitlines()[0]}"
        rows.append(row)
    return rows
