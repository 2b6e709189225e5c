"""``grade()``: a class's submissions of one lab, in parallel, into the course's gradebook.

Where a submission goes:

1. :class:`LabGrader` holds what one machine needs to grade a lab: the run's workspace
   (:mod:`.workspace`), a pool of pre-started sandboxed kernels (:mod:`.kernels`) and one warm
   nbgrader process (:mod:`instructor.nbgrader_runner`). Its :meth:`~LabGrader.grade` takes
   one submitted folder: a scratch course with a copy of it, a structural check of the files
   (:mod:`.diagnosis`), then ``nbgrader autograde`` in a forked child of the warm process, under
   the per-submission time limit. That child adopts a pre-started kernel, runs the notebook in
   it, and recomputes every verdict outside it (:mod:`.preprocessors`). The kernel is killed
   afterwards. The result is a :class:`Graded`: the outcome and the scratch course (its
   gradebook and executed notebook).
2. :func:`grade` runs a :class:`LabGrader` on worker threads; its main thread, the only writer of
   the course's gradebook, records each result (:func:`record`, :mod:`.gradebook`), keeps the
   executed notebook in ``autograded/``, and writes ``grading/<lab>/results.json`` after every
   submission (:mod:`.outcome`). (Spread over machines, the same happens with the
   :class:`LabGrader` on the workers: :mod:`.distributed`.)

A submission that fails in any way ends as an :class:`~.outcome.Outcome` saying why; the batch
always finishes. A rerun grades only what is new or was not recorded, unless forced.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import nbformat

from ..course import Course
from ..nbgrader_runner import WarmNbgrader
from . import gradebook
from .diagnosis import describe_execution, inspect_submission, nbgrader_failure, read_notebook
from .kernels import KernelPlan, KernelPool
from .limits import Limits
from .outcome import Finding, Outcome, Status, lab_lock, load_results, save_results
from .rules import review
from .sandbox import require_sandbox
from .workspace import Workspace

MEMORY_FOR_NBGRADER_MB = 2048  # the nbgrader child itself (the replay imports torch)


def submission_digest(folder: Path) -> str:
    """sha256 over the submitted files (names and contents)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def to_grade(course: Course, lab: str, students: list[str] | None, force: bool) -> list[str]:
    """Who this run grades: the students named, else everyone (with ``force``), else everyone
    whose current submission is not already graded and recorded."""
    available = course.students(lab)
    if students is not None:
        unknown = sorted(set(students) - set(available))
        if unknown:
            raise ValueError(f"students: no folder submitted/<student>/{lab}/ for {unknown} "
                             f"(found {available})")
        return list(dict.fromkeys(students))
    if force:
        return available
    done = load_results(course.grading, lab)
    return [s for s in available if s not in done or done[s].status is Status.UNRECORDED
            or done[s].submission_sha256 != submission_digest(course.submitted / s / lab)]


@dataclass
class Graded:
    """One graded submission: its outcome, and its scratch course (holding ``gradebook.db`` and
    ``autograded/<student>/<lab>/``), or None when the grader failed before making one."""

    outcome: Outcome
    scratch: Path | None


class LabGrader:
    """What one machine needs to grade submissions of ``lab`` (from its ``source`` folder and
    the course's ``config``) with ``slots`` submissions at a time, ``needed`` in all."""

    def __init__(self, lab: str, source: Path, config: Path, limits: Limits, *, sandbox: bool,
                 slots: int, needed: int, also_seed: tuple[str, ...] = (),
                 duedate: datetime | None = None):
        self.lab, self.limits = lab, limits
        self.isolation = require_sandbox() if sandbox else "none"
        self.space = self.pool = self.runner = None
        try:
            # the warm nbgrader process and the kernels start at once: they import (nbgrader,
            # torch) while this process prepares the workspace and then seeds the gradebooks
            self.runner = WarmNbgrader()  # one process; each submission is a child of it
            self.space = Workspace.open(lab, source, limits)
            plan = KernelPlan(self.space.run_dir, Path(source), limits, sandbox,
                              self.space.matplotlib_cache, self.space.preload())
            # one spare more than slots: a quick submission (a blank one) ends before the
            # kernel started in its place is ready; the next kernel is then already there
            self.pool = KernelPool(plan, spare=slots + 1, needed=needed, first=slots)
            self.space.seed(config, self.runner, also_seed, duedate)
        except BaseException:
            self.close()
            raise
        self.numbers = itertools.count(1)  # scratch folders (next() is atomic in CPython)

    def grade(self, student: str, files: Path, log: Path) -> Graded:
        """Grade the submitted folder ``files`` of ``student``; nbgrader's output goes to
        ``log``. Never raises for anything the submission does."""
        number = next(self.numbers)
        outcome = Outcome(student, self.lab, sandbox=self.isolation)
        if self.isolation == "none":
            outcome.flag("no_sandbox")
        start = time.monotonic()
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        scratch = None
        try:
            outcome.submission_sha256 = submission_digest(files)
            scratch = self.space.submission(student, files, number)
            submitted = scratch / "submitted" / student / self.lab
            outcome.problems += inspect_submission(sorted(self.space.source.glob("*.ipynb")),
                                                   submitted)
            self._review(outcome, submitted)
            kernel = self.pool.take()
            try:
                argv = ["autograde", self.lab, "--student", student, "--force", "--db",
                        f"sqlite:///{scratch / 'gradebook.db'}"]
                memory = (self.limits.memory_mb + MEMORY_FOR_NBGRADER_MB) * 1024 * 1024
                child = time.monotonic()
                status, killed = self.runner.run(argv, cwd=scratch, log=log, memory=memory,
                                                 env=self.space.nbgrader_env(scratch, kernel),
                                                 timeout=self.limits.submission_timeout)
                outcome.timings["nbgrader"] = round(time.monotonic() - child, 3)
            finally:
                self.pool.release(kernel)
            self._read(outcome, scratch, status, killed, log)
        except (OSError, RuntimeError, ValueError, nbformat.ValidationError) as error:
            _grader_error(outcome, log, error)
        outcome.seconds = round(time.monotonic() - start, 2)
        return Graded(outcome, scratch)

    def _read(self, outcome: Outcome, scratch: Path, status: int, killed: bool, log: Path) -> None:
        """What the nbgrader child left: its exit status, its report, the executed notebook."""
        if killed:
            outcome.fail("submission_timeout", seconds=self.limits.submission_timeout)
        elif status != 0 and not outcome.has_problem("notebook_missing", "not_a_notebook",
                                                      "cells_duplicated"):
            failure = nbgrader_failure(log.read_text(errors="replace"))
            outcome.fail(failure.code, **failure.params)
        elif status != 0:
            outcome.status = Status.FAILED
        report_path = scratch / "report.json"
        report = json.loads(report_path.read_text()) if report_path.exists() else {}
        outcome.flags += [Finding("verdicts_disagree", d) for d in report.get("disagreements", [])]
        outcome.timings["notebooks"] = report.get("timings", [])
        outcome.problems += describe_execution(
            scratch / "autograded" / outcome.student / self.lab, self.limits)

    def _review(self, outcome: Outcome, submitted: Path) -> None:
        """The rules of by-hand functions, and anything suspicious, read from the submitted
        source in this process (whether or not the notebook then runs)."""
        for source in sorted(self.space.source.glob("*.ipynb")):
            path = submitted / source.name
            nb = read_notebook(path) if path.exists() else None
            if nb is None or isinstance(nb, str):
                continue
            violations, flags = review(nbformat.read(source, as_version=4), nb)
            outcome.violations += [Finding("rule_broken", {("kind" if k == "code" else k): x
                                                             for k, x in asdict(v).items()})
                                   for v in violations]
            outcome.flags += [Finding(f.code, {k: x for k, x in asdict(f).items() if k != "code"})
                              for f in flags]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
        if self.runner is not None:
            self.runner.close()
        if self.space is not None:
            self.space.close()


def _grader_error(outcome: Outcome, log: Path, error: BaseException) -> None:
    """The grader itself failed on this submission: say so, keep the traceback in its log."""
    outcome.fail("grader_error", error=f"{type(error).__name__}: {error}"[:300])
    with open(log, "a") as f:
        f.write("\n--- the grader failed on this submission ---\n")
        traceback.print_exception(error, file=f)


def record(course: Course, graded: Graded) -> Outcome:
    """In the course's machine, main thread only: the result into the course's gradebook and
    ``autograded/``, and the outcome into ``results.json``."""
    outcome, scratch = graded.outcome, graded.scratch
    lab = outcome.lab
    if scratch is not None:
        start = time.monotonic()
        try:
            recorded = gradebook.record(course.db_url, scratch / "gradebook.db", lab,
                                        outcome.student)
            outcome.timings["record"] = round(time.monotonic() - start, 3)
        except (gradebook.GradebookError, OSError, gradebook.MissingEntry) as error:
            outcome.status = Status.UNRECORDED
            outcome.note("gradebook_error", error=f"{type(error).__name__}: {error}"[:300])
        else:
            outcome.score, outcome.max_score = recorded.score, recorded.max_score
            if recorded.nothing and outcome.status is Status.GRADED:
                outcome.fail("nothing_recorded")
            target = course.autograded / outcome.student / lab
            produced = scratch / "autograded" / outcome.student / lab
            with lab_lock(course.grading, lab):  # another run may record the same student
                shutil.rmtree(target, ignore_errors=True)
                if produced.is_dir():
                    shutil.copytree(produced, target, symlinks=True)
        shutil.rmtree(scratch, ignore_errors=True)
    save_results(course.grading, lab, [outcome])
    return outcome


def grade(course: Course, lab: str, *, students: list[str] | None = None,
          workers: int | None = None, limits: Limits | None = None, sandbox: bool = True,
          force: bool = False, progress: bool = True) -> list[Outcome]:
    """Grade ``lab`` for ``students`` (see :func:`to_grade`) with ``workers`` parallel workers
    (default: the CPU count) into the course's gradebook. ``sandbox=False`` grades without
    bubblewrap (every outcome says so); otherwise a missing sandbox raises
    :class:`~.sandbox.SandboxUnavailable`."""
    course.check_lab(lab)
    limits = limits or Limits()
    workers = (os.cpu_count() or 1) if workers is None else workers
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers: expected a positive integer, got {workers!r}")
    names = to_grade(course, lab, students, force)
    if not names:
        return []
    slots = min(workers, len(names))
    grader = LabGrader(lab, course.solutions / lab, course.root / "nbgrader_config.py", limits,
                       sandbox=sandbox, slots=slots, needed=len(names),
                       also_seed=(course.db_url,), duedate=gradebook.duedate(course.db_url, lab))
    outcomes = []
    try:
        bar = progress_bar(len(names), lab, progress)
        with ThreadPoolExecutor(max_workers=slots) as threads:
            futures = [threads.submit(grader.grade, student, course.submitted / student / lab,
                                      course.grading / lab / "logs" / f"{student}.log")
                       for student in names]
            for future in as_completed(futures):
                outcomes.append(record(course, future.result()))
                bar.update(1)
        bar.close()
    finally:
        grader.close()
    return sorted(outcomes, key=lambda o: o.student)


def progress_bar(total: int, lab: str, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, desc=f"grading {lab}", unit="submission", disable=not enabled,
                file=sys.stderr)
