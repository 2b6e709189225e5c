"""``python3 kit.py export``: grades as CSV plus the grading summary.

``grades.csv`` is ``nbgrader export`` with the kit's export plugin
(:mod:`instructor.plugins.export`, configured in ``nbgrader_config.py``): nbgrader's columns,
sorted by lab and student, and what still waits for manual grading. ``grading/summary.md``
(also printed) lists, per lab that has submissions, how many were graded, every submission that
could not be graded normally (status ``failed``, or graded with problems) or was flagged for
review, and why, and the answers that still need a person's score, per student and in total
(graded in Formgrader: ``python3 kit.py lab --instructor``, then Nbgrader > Formgrader > Manual
Grading).
"""

from __future__ import annotations

import csv
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

from ..course import Course
from ..grading.outcome import Status, load_results
from ..nbgrader_runner import run_nbgrader
from ..plugins.export import Pending, pending_by_hand
from ..words import describe

MANUAL_GRADING = ("grade them in Formgrader: `python3 kit.py lab --instructor`, then Nbgrader > "
                  "Formgrader > Manual Grading; then run `kit.py feedback` and `kit.py export` "
                  "again")


def export(course: Course, output: Path | None = None, labs: list[str] | None = None
           ) -> tuple[Path, Path]:
    """Write the grades CSV (default ``grades.csv`` in the course root) and the summary."""
    labs = course.labs() if labs is None else [course.check_lab(lab) for lab in labs]
    output = (output or course.root / "grades.csv").resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    run_nbgrader("export", "--to", str(output), "--db", course.db_url, cwd=course.root)
    summary = course.grading / "summary.md"
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text(summary_text(course, labs, output))
    return output, summary


def _points(points: float) -> str:
    return _count(points, "point")


def _count(n: float, noun: str) -> str:
    return f"{n:g} {noun}{'s' * (n != 1)}"


def _gradebook_view(course: Course, lab: str) -> tuple[list[str], dict[str, list[Pending]]]:
    """The students with a submission of ``lab`` in the gradebook, and for each whose
    submission has answers waiting for a person, those answers."""
    with Gradebook(course.db_url) as gradebook:
        try:
            students = sorted(s.student.id for s in gradebook.find_assignment(lab).submissions)
        except MissingEntry:
            return [], {}
        found = {s: pending_by_hand(gradebook, lab, s) for s in students}
    return students, {s: p for s, p in found.items() if p}


def summary_text(course: Course, labs: list[str], grades_csv: Path) -> str:
    scores = {}
    if grades_csv.exists():
        for row in csv.DictReader(grades_csv.open()):
            scores[(row["assignment"], row["student_id"])] = (row["score"], row["max_score"])
    body, totals = [], {"answers": 0, "points": 0.0, "submissions": 0}
    for lab in labs:
        results = load_results(course.grading, lab)
        in_gradebook, manual = _gradebook_view(course, lab)
        students = sorted(set(results) | set(in_gradebook))
        if not students:
            continue  # no submission of this lab yet
        failed = {s: r for s, r in results.items() if r.status is not Status.GRADED}
        troubled = {s: r for s, r in results.items()
                    if r.status is Status.GRADED and (r.problems or r.violations)}
        flagged = {s: r for s, r in results.items() if r.flags}
        body += [f"## {lab}", "",
                 f"{_count(len(students), 'submission')}; {len(results)} graded by the kit's "
                 f"grader: "
                 f"{len(results) - len(failed)} graded, {len(failed)} could not be graded, "
                 f"{len(troubled)} graded with problems, {len(flagged)} flagged for review, "
                 f"{len(manual)} with answers to grade by hand.", ""]
        if failed or troubled:
            body += ["Could not be graded normally:", ""]
            for student, r in sorted({**failed, **troubled}.items()):
                score, max_score = scores.get((lab, student), (r.score, r.max_score))
                why = "; ".join(describe(f) for f in r.problems + r.violations) or "unknown"
                body.append(f"- {student}: {r.status.value}, score {float(score):g}/"
                            f"{float(max_score):g}: {why}")
            body.append("")
        if flagged:
            body += ["Flagged for review (code that looks like tampering; scores unchanged):", ""]
            for student, r in sorted(flagged.items()):
                body.append(f"- {student} (flagged): " + "; ".join(describe(f) for f in r.flags))
            body.append("")
        if manual:
            answers = sum(len(p) for p in manual.values())
            points = sum(x.points for p in manual.values() for x in p)
            body += [f"To grade by hand: {_count(answers, 'answer')} ({_points(points)}) in "
                     f"{_count(len(manual), 'submission')}; they count as 0 until then:", ""]
            for student, pending in sorted(manual.items()):
                score, max_score = scores.get((lab, student), ("0", "0"))
                body.append(f"- {student} (score so far {float(score):g}/{float(max_score):g}): "
                            + ", ".join(p.grade_id for p in pending)
                            + f" ({_points(sum(p.points for p in pending))})")
            body.append("")
            totals["answers"] += answers
            totals["points"] += points
            totals["submissions"] += len(manual)
    head = ["# Grading summary", ""]
    if not body:
        head += ["No submission has been graded yet.", ""]
    elif totals["answers"]:
        head += [f"Waiting for manual grading: {_count(totals['answers'], 'answer')} "
                 f"({_points(totals['points'])}) in {_count(totals['submissions'], 'submission')}"
                 f"; {MANUAL_GRADING}.", ""]
    else:
        head += ["Nothing waits for manual grading.", ""]
    return "\n".join(head + body)
