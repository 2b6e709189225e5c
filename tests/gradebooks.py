"""Read any nbgrader gradebook (SQLite or PostgreSQL, through SQLAlchemy) as plain data, so that
tests can say "this gradebook equals that one": every score, comment and late penalty, and how
many rows each table holds. Also: small gradebooks made with nbgrader's API, and a grader that
records while another one seeds (the same scenario on either database)."""

from __future__ import annotations

import re
import threading
from datetime import datetime
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

SUBMISSIONS = """
    SELECT student.id, submitted_assignment.timestamp
    FROM submitted_assignment
    JOIN assignment ON submitted_assignment.assignment_id = assignment.id
    JOIN student ON submitted_assignment.student_id = student.id
    WHERE assignment.name = :lab"""

NOTEBOOKS = """
    SELECT student.id, notebook.name, submitted_notebook.late_submission_penalty
    FROM submitted_notebook
    JOIN submitted_assignment ON submitted_notebook.assignment_id = submitted_assignment.id
    JOIN assignment ON submitted_assignment.assignment_id = assignment.id
    JOIN student ON submitted_assignment.student_id = student.id
    JOIN notebook ON submitted_notebook.notebook_id = notebook.id
    WHERE assignment.name = :lab"""

CELLS = """
    SELECT student.id, notebook.name, base_cell.name, {columns}
    FROM {table}
    JOIN submitted_notebook ON {table}.notebook_id = submitted_notebook.id
    JOIN submitted_assignment ON submitted_notebook.assignment_id = submitted_assignment.id
    JOIN assignment ON submitted_assignment.assignment_id = assignment.id
    JOIN student ON submitted_assignment.student_id = student.id
    JOIN notebook ON submitted_notebook.notebook_id = notebook.id
    JOIN base_cell ON {table}.cell_id = base_cell.id
    WHERE assignment.name = :lab"""

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?$")
TABLES = ("student", "assignment", "notebook", "base_cell", "submitted_assignment",
          "submitted_notebook", "grade", "comment")


def _rows(db_url: str, query: str, **params) -> list[tuple]:
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return [tuple(r) for r in connection.execute(text(query), params)]
    finally:
        engine.dispose()


def snapshot(db_url: str, lab: str) -> dict[str, dict]:
    """What the gradebook holds for ``lab``: per student its submission timestamp; per
    (student, notebook) the late penalty; per (student, notebook, cell) the grade (auto score,
    manual score, needs manual grade) and the comment (auto comment, manual comment)."""
    grades = CELLS.format(table="grade", columns="grade.auto_score, grade.manual_score, "
                                                 "grade.needs_manual_grade")
    comments = CELLS.format(table="comment", columns="comment.auto_comment, comment.manual_comment")

    def keyed(rows, width):
        return {r[:width]: (r[width:] if len(r) > width + 1 else r[width]) for r in rows}

    def normal(value):
        """SQLite hands back numbers as int or float and timestamps as text: make them alike."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and TIMESTAMP.match(value):
            return datetime.fromisoformat(value)
        return value

    return {
        "timestamps": {k: normal(v) for k, v in keyed(_rows(db_url, SUBMISSIONS, lab=lab), 1).items()},
        "penalties": {k: normal(v) for k, v in keyed(_rows(db_url, NOTEBOOKS, lab=lab), 2).items()},
        "grades": {k: tuple(normal(x) for x in v)
                   for k, v in keyed(_rows(db_url, grades, lab=lab), 3).items()},
        "comments": keyed(_rows(db_url, comments, lab=lab), 3),
    }


def row_counts(db_url: str) -> dict[str, int]:
    """How many rows each of nbgrader's main tables holds."""
    return {table: _rows(db_url, f"SELECT count(*) FROM {table}")[0][0] for table in TABLES}


def scores(db_url: str, lab: str) -> dict[str, float]:
    """student -> autograded points of ``lab`` before any late penalty."""
    total: dict[str, float] = {}
    for (student, _, _), (auto, _, _) in snapshot(db_url, lab)["grades"].items():
        total[student] = total.get(student, 0.0) + (auto or 0.0)
    return total


def seeded_gradebook(url: str, lab: str, cells: list[str]) -> str:
    """The gradebook at ``url`` given ``lab`` with one notebook of autograded ``cells`` (1 point
    each), stamped as the kit's nbgrader processes stamp theirs (without an ``alembic``
    process); returns ``url``."""
    from nbgrader.api import Gradebook

    from instructor.nbgrader_runner import stamp_gradebooks_in_process

    stamp_gradebooks_in_process()
    with Gradebook(url) as gb:
        gb.update_or_create_assignment(lab)
        gb.add_notebook(lab, lab)
        for cell in cells:
            gb.add_grade_cell(cell, lab, lab, max_score=1, cell_type="code")
    return url


def scratch_gradebook(path: Path, lab: str, cells: list[str], students: list[str]) -> Path:
    """A scratch SQLite gradebook at ``path`` as nbgrader leaves it, for several students at once:
    each scored 1 per cell."""
    from nbgrader.api import Gradebook

    with Gradebook(seeded_gradebook(f"sqlite:///{path}", lab, cells)) as gb, gb.db.no_autoflush:
        for student in students:
            gb.update_or_create_student(student)
            gb.add_submission(lab, student)
            for cell in cells:
                gb.find_grade(cell, lab, lab, student).auto_score = 1.0
        gb.db.commit()
    return path


def record_while_another_grader_seeds(course: str, scratch: Path) -> None:
    """While a grader seeds, nbgrader removes a notebook that has no submission yet and creates its
    cells again one at a time. Another grader's recording into the new gradebook at ``course``
    waits for that to end, so the submission it creates has every cell's grade: here the seeder
    stops halfway, with one cell of the two, long enough for a recording that does not wait to
    run. ``scratch``: where the recorded submission's scratch gradebook is made."""
    from nbgrader.api import Gradebook

    from instructor.grading import gradebook, gradebook_lock

    lab, cells = "lab", ["test_a", "test_b"]
    seeded_gradebook(course, lab, cells)
    scratch = scratch_gradebook(scratch, lab, cells, ["ada"])
    recorded, failed = [], []

    def record_in_another_grader():
        try:
            recorded.append(gradebook.record(course, scratch, lab, "ada"))
        except Exception as error:
            failed.append(error)

    with gradebook_lock.seeding(course):
        with Gradebook(course) as gb:  # as generate_assignment does, up to its first cell
            gb.remove_notebook(lab, lab)
            gb.add_notebook(lab, lab)
            gb.add_grade_cell(cells[0], lab, lab, max_score=1, cell_type="code")
        recorder = threading.Thread(target=record_in_another_grader)
        recorder.start()
        recorder.join(timeout=2.0)
        assert not recorded and not failed, f"recorded from a half-seeded notebook: {failed}"
        with Gradebook(course) as gb:
            gb.add_grade_cell(cells[1], lab, lab, max_score=1, cell_type="code")
    recorder.join(timeout=60)
    assert not failed, failed
    assert [(r.score, r.max_score) for r in recorded] == [(2.0, 2.0)]
