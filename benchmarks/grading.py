"""Grading a class, side by side in one run: plain serial ``nbgrader autograde`` and the kit's
grader (``python -m instructor grade``) with 1 and 2 workers, each on a fresh copy of the same
course and submissions (half of the class hands in the solution, half the blank student
version); then where one submission's seconds go, from the grader's own timings in
``grading/<lab>/results.json``, and what a sandboxed kernel takes to start."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from instructor.course import Course, build_course
from instructor.environment import tool_env
from instructor.nbgrader_runner import run_nbgrader
from instructor.notebooks import answered


@dataclass
class GradingTiming:
    """Wall seconds to grade ``submissions`` notebooks with one method."""

    method: str
    workers: int
    submissions: int
    seconds: float

    @property
    def per_submission(self) -> float:
        return self.seconds / self.submissions


@dataclass
class Breakdown:
    """Where one submission's seconds go (means over the solved submissions of a kit run)."""

    seconds: dict[str, float] = field(default_factory=dict)
    cells: list[tuple[str, float]] = field(default_factory=list)  # the slowest cells
    kernel_start: float | None = None


def make_class(root: Path, lab: str, source: Path, class_size: int) -> Course:
    """A course in ``root`` with ``lab`` released and ``class_size`` submissions: students
    ``s00``, ``s01``, ...; even ones hand in the solution, odd ones the blank notebook."""
    if class_size < 1:
        raise ValueError(f"class_size: expected an int >= 1, got {class_size}")
    course = build_course(root, {lab: source})
    # the assignment in the course's gradebook, as an instructor's release leaves it
    run_nbgrader("generate_assignment", lab, "--force", "--db", course.db_url, cwd=root)
    for notebook in sorted((course.solutions / lab).glob("*.ipynb")):
        release = nbformat.read(course.notebooks / lab / notebook.name, as_version=4)
        solved = answered(release, nbformat.read(notebook, as_version=4))
        for i in range(class_size):
            folder = course.submitted / f"s{i:02d}" / lab
            folder.mkdir(parents=True, exist_ok=True)
            nbformat.write(solved if i % 2 == 0 else release, folder / notebook.name)
    return course


def _graded_all(course: Course, lab: str, n: int) -> None:
    done = len(list(course.autograded.glob(f"*/{lab}/*.ipynb")))
    if done != n:  # a fast grader that skipped submissions measures nothing
        raise RuntimeError(f"{done} of {n} submissions autograded in {course.root}")


def time_methods(workdir: Path, lab: str, source: Path, *, class_size: int,
                 worker_counts: list[int]) -> tuple[list[GradingTiming], Breakdown]:
    """Grade the same class with every method; the breakdown comes from the 1-worker run."""
    pristine = make_class(workdir / "class", lab, source, class_size)

    def fresh(name: str) -> Course:
        return Course.open(shutil.copytree(pristine.root, workdir / name))

    course = fresh("serial")
    start = time.perf_counter()
    run_nbgrader("autograde", lab, "--create", cwd=course.root, timeout=7200)
    rows = [GradingTiming("nbgrader autograde (serial)", 1, class_size,
                          time.perf_counter() - start)]
    _graded_all(course, lab, class_size)
    breakdown = Breakdown()
    for workers in worker_counts:
        course = fresh(f"kit-{workers}")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "instructor", "grade", lab, "--course-dir",
                        str(course.root), "--workers", str(workers), "--quiet"], check=True,
                       env=tool_env(), capture_output=True, timeout=7200)
        rows.append(GradingTiming("python3 kit.py grade", workers, class_size,
                                  time.perf_counter() - start))
        _graded_all(course, lab, class_size)
        if workers == 1:
            breakdown = breakdown_of(course, lab)
    breakdown.kernel_start = kernel_start_seconds(pristine.solutions / lab)
    return rows, breakdown


def breakdown_of(course: Course, lab: str) -> Breakdown:
    """Means over the solved submissions (even student ids) of the grader's own timings."""
    results = json.loads((course.grading / lab / "results.json").read_text())
    solved = [r["timings"] for s, r in results.items() if int(s[1:]) % 2 == 0 and r["timings"]]
    parts: dict[str, list[float]] = {}
    cells: dict[str, list[float]] = {}
    for timing in solved:
        notebooks = timing.get("notebooks") or [{}]
        execute = sum(n.get("execute") or 0 for n in notebooks)
        replay = sum(n.get("replay") or 0 for n in notebooks)
        wait = sum(n.get("kernel_wait") or 0 for n in notebooks)
        ran = sum(s for n in notebooks for _, s in n.get("cells", []))
        for name, value in [("nbgrader child, in all", timing.get("nbgrader", 0)),
                            ("waiting for the pre-started kernel", wait),
                            ("the notebook's cells", ran),
                            ("execution overhead (messages between cells)", execute - wait - ran),
                            ("the grader's re-run of the tests", replay),
                            ("nbgrader's own work", timing.get("nbgrader", 0) - execute - replay),
                            ("recording into the course gradebook", timing.get("record", 0))]:
            parts.setdefault(name, []).append(value)
        for n in notebooks:
            for cell, s in n.get("cells", []):
                cells.setdefault(cell, []).append(s)
    slowest = sorted(((c, statistics.mean(v)) for c, v in cells.items()), key=lambda x: -x[1])
    return Breakdown({k: statistics.mean(v) for k, v in parts.items()}, slowest[:8])


def kernel_start_seconds(source: Path, repeat: int = 3) -> float:
    """Median seconds from launching a sandboxed grading kernel (with the lab's imports
    preloaded) to its first reply: the cost the kernel pool takes off the critical path."""
    import tempfile

    from jupyter_client import BlockingKernelClient

    from instructor.grading.kernels import KernelPlan, start_kernel, stop_kernel
    from instructor.grading.limits import Limits
    from instructor.grading.workspace import modules_to_preload

    preload = tuple(m for nb in sorted(source.glob("*.ipynb"))
                    for m in modules_to_preload(nbformat.read(nb, as_version=4)))
    seconds = []
    with tempfile.TemporaryDirectory(prefix="bench-kernel-") as scratch:
        plan = KernelPlan(Path(scratch), source, Limits(), True, None, preload)
        for number in range(repeat):
            start = time.perf_counter()
            handle = start_kernel(plan, number)
            client = BlockingKernelClient()
            client.load_connection_info(handle.connection)
            client.start_channels()
            try:
                _wait_for_kernel_info(client, handle.process, timeout=300)
                seconds.append(time.perf_counter() - start)
            finally:
                client.stop_channels()
                stop_kernel(handle)
    return statistics.median(seconds)


def _wait_for_kernel_info(client, launcher: subprocess.Popen, timeout: float) -> None:
    """Ask for ``kernel_info`` until the kernel answers; raises ``RuntimeError`` if its launcher
    ends first or ``timeout`` seconds pass. (jupyter_client's ``wait_for_ready`` takes one missed
    heartbeat for a dead kernel, which a kernel busy importing torch on a loaded machine gives.)"""
    from queue import Empty

    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if launcher.poll() is not None:
            raise RuntimeError(f"the kernel ended (exit {launcher.returncode}) before it answered")
        client.kernel_info()
        try:
            while client.get_shell_msg(timeout=1)["msg_type"] != "kernel_info_reply":
                pass
            return
        except Empty:
            continue
    raise RuntimeError(f"the kernel did not answer kernel_info in {timeout:.0f} s")
