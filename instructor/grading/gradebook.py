"""The only writer of the course's gradebook during grading: the grader's main process.

Each submission is graded into its own scratch SQLite gradebook; :func:`record` copies that
submission's scores, comments and late penalty into the course's gradebook with nbgrader's own
``Gradebook`` API (any database nbgrader supports: SQLite, PostgreSQL). Recording a submission
again overwrites the same rows, so a rerun after a failure ends with the gradebook an
uninterrupted run would have given. Manual grades are never touched.

Several graders may share one gradebook (PostgreSQL; e.g. two ``kit.py grade`` runs, on different
or on the same students):

- a submission's scores, comments, timestamp and late penalty are written in one transaction that
  first locks the submission's row (``SELECT ... FOR UPDATE``): two graders recording the same
  submission write one after the other, never interleaved;
- what a concurrent writer can make fail (both create the same student or submission and one hits
  the unique key; a deadlock or serialization failure; a dropped connection; SQLite's "database is
  locked") is retried after a short random wait (:func:`retrying`), and the retry finds the rows
  the other writer made. The database's unique keys keep rows from being duplicated;
- seeding the gradebook with ``nbgrader generate_assignment`` happens alone, and recording
  happens only while nobody seeds (:mod:`.gradebook_lock`): two graders never create the same
  assignment, notebooks and cells at once, and no submission is created from a half-seeded
  notebook.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from nbgrader.api import Gradebook, InvalidEntry, MissingEntry

from .gradebook_lock import recording

#: What :func:`record` raises when the course gradebook refuses a write.
try:
    from sqlalchemy.exc import SQLAlchemyError as GradebookError
except ImportError:  # pragma: no cover
    GradebookError = OSError

T = TypeVar("T")

#: How often :func:`retrying` tries, and its longest wait between tries (seconds).
ATTEMPTS = 12
LONGEST_WAIT = 2.0


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


def transient(error: BaseException) -> bool:
    """True for the failures a concurrent writer or a brief outage causes, which a new attempt
    can get past: a unique-key clash (nbgrader reports it as ``InvalidEntry``), and SQLAlchemy's
    ``OperationalError`` (deadlock, serialization failure, lock timeout, lost connection, SQLite's
    "database is locked")."""
    from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
    if isinstance(error, (IntegrityError, InvalidEntry, OperationalError)):
        return True
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


def retrying(attempt: Callable[[], T], *, attempts: int = ATTEMPTS,
             longest_wait: float = LONGEST_WAIT) -> T:
    """``attempt()``, tried again after a random wait (doubling up to ``longest_wait``) while it
    fails with a :func:`transient` error, ``attempts`` times at most; the last error is raised."""
    for number in range(1, attempts + 1):
        try:
            return attempt()
        except Exception as error:
            if number == attempts or not transient(error):
                raise
            time.sleep(random.uniform(0, min(longest_wait, 0.05 * 2 ** number)))
    raise AssertionError("unreachable")  # pragma: no cover


class _QuietRollbacks(logging.Filter):
    """Drops nbgrader's "Rolling back session" tracebacks: the error it then raises is retried
    or raised by :func:`retrying`, so the log needs no second copy."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Rolling back session due to database error")


def record(db_url: str, scratch_db: Path, lab: str, student: str) -> Recorded:
    """Copy one submission from ``scratch_db`` into the gradebook at ``db_url`` (retried while a
    concurrent writer is in the way, see the module's docstring)."""
    from tornado.log import app_log  # where nbgrader's gradebook logs
    quiet = _QuietRollbacks()
    app_log.addFilter(quiet)
    try:
        timestamp, notebooks = _scratch_results(scratch_db, lab, student)

        def attempt() -> Recorded:
            with recording(db_url):  # never while another grader seeds the gradebook
                return _write(db_url, lab, student, timestamp, notebooks)
        return retrying(attempt)
    finally:
        app_log.removeFilter(quiet)


def _write(db_url: str, lab: str, student: str, timestamp, notebooks) -> Recorded:
    with Gradebook(db_url) as gb, gb.db.no_autoflush:
        # without autoflush: nbgrader builds a new submission attached to its assignment, then
        # looks the student up, and an autoflush there warns that the half-built row is "not in
        # session". Each write below is flushed by its commit.
        gb.update_or_create_student(student)
        submission = gb.update_or_create_submission(lab, student)  # committed: the rows exist
        gb.db.refresh(submission, with_for_update=True)  # the transaction that writes them
        submission.timestamp = timestamp
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


# ----------------------------------------------------------------------------- due dates


def printable(db_url: str) -> str:
    """``db_url`` without its password, for messages."""
    from sqlalchemy.engine import make_url
    try:
        return make_url(db_url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy understands: show nothing of it but the scheme
        return db_url.split("://", 1)[0] + "://..."


def duedate(db_url: str, lab: str) -> datetime | None:
    """The due date (naive UTC) the gradebook at ``db_url`` holds for ``lab``, or None (no due
    date, no such assignment, or no gradebook yet: nothing is created here). Raises
    ``RuntimeError`` naming the gradebook when it cannot be reached."""
    from nbgrader.api import Assignment
    from sqlalchemy import create_engine, inspect, select
    from sqlalchemy.pool import NullPool

    engine = create_engine(db_url, poolclass=NullPool)

    def read() -> datetime | None:
        with engine.connect() as connection:
            if not inspect(connection).has_table(Assignment.__tablename__):
                return None
            query = select(Assignment.duedate).where(Assignment.name == lab)
            return connection.execute(query).scalar_one_or_none()
    try:
        return retrying(read, attempts=4)
    except GradebookError as error:
        raise RuntimeError(f"--db: cannot read the gradebook {printable(db_url)}: "
                           f"{str(getattr(error, 'orig', error)).strip()}") from None
    finally:
        engine.dispose()


def set_duedate(db_url: str, lab: str, when: datetime | None) -> None:
    """Give ``lab`` the due date ``when`` (naive UTC, or None) in the gradebook at ``db_url``."""
    def write() -> None:
        with Gradebook(db_url) as gb, gb.db.no_autoflush:
            gb.update_or_create_assignment(lab, duedate=when)
    retrying(write)
