"""``python3 kit.py export``: grades as CSV (nbgrader's exporter) plus the grading summary.

``grades.csv`` is nbgrader's own CSV export of the gradebook. ``grading/summary.md`` (also
printed) lists, per lab, how many submissions were graded and every submission that could not be
graded normally (status ``failed``, or graded with problems) or was flagged for review, and why.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..course import Course
from ..grading.outcome import Status, load_results
from ..nbgrader_runner import run_nbgrader
from ..words import describe


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


def summary_text(course: Course, labs: list[str], grades_csv: Path) -> str:
    scores = {}
    if grades_csv.exists():
        for row in csv.DictReader(grades_csv.open()):
            scores[(row["assignment"], row["student_id"])] = (row["score"], row["max_score"])
    out = ["# Grading summary", ""]
    for lab in labs:
        results = load_results(course.grading, lab)
        failed = {s: r for s, r in results.items() if r.status is not Status.GRADED}
        troubled = {s: r for s, r in results.items()
                    if r.status is Status.GRADED and (r.problems or r.violations)}
        flagged = {s: r for s, r in results.items() if r.flags}
        out += [f"## {lab}", "",
                f"{len(results)} submissions graded by the kit's grader: "
                f"{len(results) - len(failed)} graded, {len(failed)} could not be graded, "
                f"{len(troubled)} graded with problems, {len(flagged)} flagged for review.", ""]
        if failed or troubled:
            out += ["Could not be graded normally:", ""]
            for student, r in sorted({**failed, **troubled}.items()):
                score, max_score = scores.get((lab, student), (r.score, r.max_score))
                why = "; ".join(describe(f) for f in r.problems + r.violations) or "unknown"
                out.append(f"- {student}: {r.status.value}, score {float(score):g}/"
                           f"{float(max_score):g}: {why}")
            out.append("")
        if flagged:
            out += ["Flagged for review (code that looks like tampering; scores unchanged):", ""]
            for student, r in sorted(flagged.items()):
                out.append(f"- {student} (flagged): " + "; ".join(describe(f) for f in r.flags))
            out.append("")
    return "\n".join(out)
