"""``grade()``: a class's submissions of one lab, in parallel, into the course's gradebook.

Where a submission goes:

1. The main process checks the grader can isolate kernels (:mod:`.sandbox`), builds the run's
   workspace (:mod:`.workspace`), starts one warm nbgrader process per worker
   (:mod:`instructor.nbgrader_runner`) and a pool of pre-started sandboxed kernels
   (:mod:`.kernels`).
2. A worker thread per slot takes a submission: a scratch course with a copy of it, a structural
   check of the files (:mod:`.diagnosis`), then ``nbgrader autograde`` in a forked child of its
   warm process, under the per-submission time limit. That child adopts a pre-started kernel,
   runs the notebook in it, and recomputes every verdict outside it (:mod:`.preprocessors`).
3. The kernel is killed; the main thread, the only writer of the course's gradebook, records the
   result (:mod:`.gradebook`), keeps the executed notebook in ``autograded/``, and writes
   ``grading/<lab>/results.json`` after every submission (:mod:`.outcome`).

A submission that fails in any way ends as an :class:`~.outcome.Outcome` saying why; the batch
always finishes. A rerun grades only what is new or was not recorded, unless forced.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import nbformat

from ..course import Course
from ..nbgrader_runner import WarmNbgrader
from . import gradebook
from .diagnosis import describe_execution, inspect_submission, nbgrader_failure
from .kernels import KernelPlan, KernelPool
from .limits import Limits
from .outcome import Finding, Outcome, Status, load_results, save_results
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
    isolation = require_sandbox() if sandbox else "none"
    names = to_grade(course, lab, students, force)
    if not names:
        return []
    slots = min(workers, len(names))
    runners = [WarmNbgrader() for _ in range(slots)]
    space = pool = None
    outcomes: list[Outcome] = []
    try:
        space = Workspace.create(course, lab, limits, runners[0])
        pool = KernelPool(KernelPlan(space.run_dir, course.solutions / lab, limits, sandbox,
                                     space.matplotlib_cache), spare=slots, needed=len(names))
        free: queue.Queue[WarmNbgrader] = queue.Queue()
        for runner in runners:
            free.put(runner)
        bar = _progress(len(names), lab, progress)
        with ThreadPoolExecutor(max_workers=slots) as threads:
            futures = [threads.submit(_grade_one, space, pool, free, student, number, isolation)
                       for number, student in enumerate(names)]
            for future in as_completed(futures):
                outcome, scratch = future.result()
                _record(course, lab, outcome, scratch)
                outcomes.append(outcome)
                save_results(course.grading, lab, [outcome])
                bar.update(1)
        bar.close()
    finally:
        if pool is not None:
            pool.close()
        for runner in runners:
            runner.close()
        if space is not None:
            space.close()
    return sorted(outcomes, key=lambda o: o.student)


def _progress(total: int, lab: str, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, desc=f"grading {lab}", unit="submission", disable=not enabled,
                file=sys.stderr)


def _grader_error(outcome: Outcome, log: Path, error: BaseException) -> None:
    """The grader itself failed on this submission: say so, keep the traceback in its log."""
    outcome.fail("grader_error", error=f"{type(error).__name__}: {error}"[:300])
    with open(log, "a") as f:
        f.write("\n--- the grader failed on this submission ---\n")
        traceback.print_exception(error, file=f)


def _grade_one(space: Workspace, pool: KernelPool, free: queue.Queue, student: str, number: int,
               isolation: str) -> tuple[Outcome, Path | None]:
    """Grade one submission in its own scratch course with a free warm nbgrader process."""
    course, lab, limits = space.course, space.lab, space.limits
    outcome = Outcome(student, lab, sandbox=isolation)
    if isolation == "none":
        outcome.flag("no_sandbox")
    start = time.monotonic()
    log = course.grading / lab / "logs" / f"{student}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    scratch = None
    try:
        outcome.submission_sha256 = submission_digest(course.submitted / student / lab)
        scratch = space.submission(student, number)
        outcome.problems += inspect_submission(course.source_notebooks(lab),
                                               scratch / "submitted" / student / lab)
        runner = free.get()
        kernel = pool.take()
        try:
            argv = ["autograde", lab, "--student", student, "--force", "--db",
                    f"sqlite:///{scratch / 'gradebook.db'}"]
            memory = (limits.memory_mb + MEMORY_FOR_NBGRADER_MB) * 1024 * 1024
            status, killed = runner.run(argv, cwd=scratch, env=space.nbgrader_env(scratch, kernel),
                                        log=log, memory=memory, timeout=limits.submission_timeout)
        finally:
            pool.release(kernel)
            free.put(runner)
        _read_run(outcome, scratch, status, killed, log, limits)
    except (OSError, RuntimeError, ValueError, nbformat.ValidationError) as error:
        _grader_error(outcome, log, error)
    outcome.seconds = round(time.monotonic() - start, 2)
    return outcome, scratch


def _read_run(outcome: Outcome, scratch: Path, status: int, killed: bool, log: Path,
              limits: Limits) -> None:
    """What the nbgrader child left: its exit status, its report, the executed notebook."""
    if killed:
        outcome.fail("submission_timeout", seconds=limits.submission_timeout)
    elif status != 0 and not outcome.has_problem("notebook_missing", "not_a_notebook"):
        failure = nbgrader_failure(log.read_text(errors="replace"))
        outcome.fail(failure.code, **failure.params)
    elif status != 0:
        outcome.status = Status.FAILED
    report_path = scratch / "report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    outcome.violations += [Finding("rule_broken", v) for v in report.get("violations", [])]
    outcome.flags += [Finding(str(f.get("code", "suspicious")),
                              {k: v for k, v in f.items() if k != "code"})
                      for f in report.get("flags", [])]
    outcome.flags += [Finding("verdicts_disagree", d) for d in report.get("disagreements", [])]
    outcome.problems += describe_execution(scratch / "autograded" / outcome.student / outcome.lab,
                                           limits)


def _record(course: Course, lab: str, outcome: Outcome, scratch: Path | None) -> None:
    """In the main thread only: the result into the course's gradebook and ``autograded/``."""
    if scratch is None:
        return
    try:
        recorded = gradebook.record(course.db_url, scratch / "gradebook.db", lab, outcome.student)
    except (gradebook.GradebookError, OSError, gradebook.MissingEntry) as error:
        outcome.status = Status.UNRECORDED
        outcome.note("gradebook_error", error=f"{type(error).__name__}: {error}"[:300])
        return
    outcome.score, outcome.max_score = recorded.score, recorded.max_score
    if recorded.nothing and outcome.status is Status.GRADED:
        outcome.fail("nothing_recorded")
    target = course.autograded / outcome.student / lab
    shutil.rmtree(target, ignore_errors=True)
    produced = scratch / "autograded" / outcome.student / lab
    if produced.is_dir():
        shutil.copytree(produced, target, symlinks=True)
    shutil.rmtree(scratch, ignore_errors=True)
