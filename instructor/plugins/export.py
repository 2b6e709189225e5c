"""``nbgrader export``'s CSV as the kit writes it (``c.ExportApp.plugin_class`` in
``nbgrader_config.py``): nbgrader's columns, rows sorted by lab then student, and two more
columns saying what still waits for a person, so that a score is never read as final while
written answers are ungraded:

- ``to_grade_by_hand``: the ids of the answers that need a person's score (``;``-separated);
- ``points_to_grade_by_hand``: their points (counted as 0 in ``score`` until graded).

A student with no submission gets a row with score 0, as in nbgrader's own export.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins.export import ExportPlugin

from .feedback import waiting_for_a_person

COLUMNS = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name",
           "email", "raw_score", "late_submission_penalty", "score", "max_score",
           "to_grade_by_hand", "points_to_grade_by_hand"]


@dataclass(frozen=True)
class Pending:
    """An answer waiting for a person's score."""

    notebook: str
    grade_id: str
    points: float


def pending_by_hand(gradebook: Gradebook, lab: str, student: str) -> list[Pending]:
    """The answers of ``student``'s submission of ``lab`` that wait for a person, in notebook
    order (none when there is no submission)."""
    try:
        submission = gradebook.find_submission(lab, student)
    except MissingEntry:
        return []
    found = []
    for notebook in sorted(submission.notebooks, key=lambda n: n.name):
        order = {cell.name: i for i, cell in enumerate(notebook.notebook.grade_cells)}
        grades = sorted(notebook.grades, key=lambda g: order.get(g.name, len(order)))
        found += [Pending(notebook.name, g.name, float(g.max_score or 0))
                  for g in grades if waiting_for_a_person(g)]
    return found


def rows(gradebook: Gradebook, labs: list[str] | None = None,
         students: list[str] | None = None) -> list[dict[str, str]]:
    """One row per lab and student (restricted to ``labs``/``students`` when given), sorted."""
    out = []
    for assignment in sorted(gradebook.assignments, key=lambda a: a.name):
        if labs and assignment.name not in labs:
            continue
        for student in sorted(gradebook.students, key=lambda s: s.id):
            if students and student.id not in students:
                continue
            row = {"assignment": assignment.name, "duedate": assignment.duedate,
                   "student_id": student.id, "last_name": student.last_name,
                   "first_name": student.first_name, "email": student.email,
                   "max_score": assignment.max_score}
            try:
                submission = gradebook.find_submission(assignment.name, student.id)
            except MissingEntry:
                row.update(timestamp="", raw_score=0.0, late_submission_penalty=0.0, score=0.0)
            else:
                penalty = submission.late_submission_penalty or 0.0
                row.update(timestamp=submission.timestamp, raw_score=submission.score,
                           late_submission_penalty=penalty,
                           score=max(0.0, submission.score - penalty))
            pending = pending_by_hand(gradebook, assignment.name, student.id)
            row["to_grade_by_hand"] = ";".join(p.grade_id for p in pending)
            row["points_to_grade_by_hand"] = f"{sum(p.points for p in pending):g}"
            out.append({k: "" if row[k] is None else str(row[k]) for k in COLUMNS})
    return out


class GradesCsv(ExportPlugin):
    """The kit's CSV export (see the module's docstring)."""

    def export(self, gradebook: Gradebook) -> None:
        destination = self.to or "grades.csv"
        self.log.info("Exporting grades to %s", destination)
        found = rows(gradebook, [str(a) for a in self.assignment] or None,
                     [str(s) for s in self.student] or None)
        with open(destination, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(found)
