"""The only writer of the course's gradebook during grading: the grader's main process.

Each submission is graded into its own scratch SQLite gradebook; :func:`record` copies that
submission's scores, comments and late penalty into the course's gradebook with nbgrader's own
``Gradebook`` API (any database nbgrader supports: SQLite, PostgreSQL). Recording a submission
again overwrites the same rows, so a rerun after a failure ends with the gradebook an
uninterrupted run would have given. Manual grades are never touched.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from sqlalchemy.exc import SAWarning

#: What :func:`record` raises when the course gradebook refuses a write.
try:
    from sqlalchemy.exc import SQLAlchemyError as GradebookError
except ImportError:  # pragma: no cover
    GradebookError = OSError


@dataclass(frozen=True)
class Recorded:
    """What the course gradebook holds for the submission afterwards; ``nothing`` is true when
    the scratch gradebook had no result for it (every test then scores 0)."""

    score: float
    max_score: float
    nothing: bool


def _scratch_results(scratch_db: Path, lab: str, student: str):
    """(timestamp, [(notebook, grades, comments, penalty)]) from the scratch gradebook, or
    (None, []) when nbgrader recorded nothing there."""
    if not scratch_db.exists():
        return None, []
    with Gradebook(f"sqlite:///{scratch_db}") as scratch:
        try:
            done = scratch.find_submission(lab, student)
        except MissingEntry:
            return None, []
        return done.timestamp, [
            (nb.name, [(g.name, g.auto_score, g.needs_manual_grade) for g in nb.grades],
             [(c.name, c.auto_comment) for c in nb.comments], nb.late_submission_penalty)
            for nb in done.notebooks]


def record(db_url: str, scratch_db: Path, lab: str, student: str) -> Recorded:
    """Copy one submission from ``scratch_db`` into the gradebook at ``db_url``."""
    with warnings.catch_warnings():  # nbgrader's own session warnings on new submissions
        warnings.simplefilter("ignore", SAWarning)
        timestamp, notebooks = _scratch_results(scratch_db, lab, student)
        with Gradebook(db_url) as gb:
            gb.update_or_create_student(student)
            submission = gb.update_or_create_submission(lab, student, timestamp=timestamp)
            for name, grades, comments, penalty in notebooks:
                for grade_id, auto_score, needs_manual in grades:
                    grade = gb.find_grade(grade_id, name, lab, student)
                    grade.auto_score = auto_score
                    grade.needs_manual_grade = bool(needs_manual or grade.manual_score is not None)
                for comment_id, auto_comment in comments:
                    gb.find_comment(comment_id, name, lab, student).auto_comment = auto_comment
                gb.find_submission_notebook(name, lab, student).late_submission_penalty = penalty
            if not notebooks:  # nothing ran: no grade, so every test counts 0 in the score
                for nb in submission.notebooks:
                    for grade in nb.grades:
                        grade.auto_score, grade.needs_manual_grade = None, True
            gb.db.commit()
            submission = gb.find_submission(lab, student)
            return Recorded(float(submission.score), float(submission.max_score), not notebooks)
