"""``grade()``: a class's submissions of one lab, in parallel, into the course's gradebook.

:func:`grade` picks who to grade (:func:`to_grade`: what is new or not yet recorded, unless
forced), then runs a :class:`~.grader.LabGrader` on worker threads, one submission each at a
time. Its main thread, the only writer of the course's gradebook, records each result as it comes
(:func:`record`, :mod:`.gradebook`), keeps the executed notebook in ``autograded/``, and writes
``grading/<lab>/results.json`` after every submission (:mod:`.outcome`). (Spread over machines,
the same happens with the :class:`~.grader.LabGrader` on the workers: :mod:`.distributed`.)

A submission that fails in any way ends as an :class:`~.outcome.Outcome` saying why; the batch
always finishes. A rerun grades only what is new or was not recorded, unless forced.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

from ..course import Course
from . import gradebook
from .grader import Graded, LabGrader, submission_digest
from .limits import Limits
from .outcome import Outcome, Status, lab_lock, load_results, save_results


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
