"""What students wait for: ``import lab_utils`` and a solution notebook's Run All (kernel start
included). The grading of a class is measured in :mod:`benchmarks.grading`."""

from __future__ import annotations

import contextlib
import copy
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from instructor.course import find_labs
from instructor.environment import LAB_SETTINGS, tool_env

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
FIXTURE = ROOT / "tests" / "fixtures" / "fixture_lab.ipynb"
LAB_ENV = LAB_SETTINGS


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
