"""``python3 kit.py feedback LAB``: per-student HTML feedback that explains in words which checks
failed and why, without showing hidden-test code (unlike nbgrader's own feedback, its #917).

The page is nbgrader's ``generate_feedback`` run in the course, with the kit's cleaning step and
template configured in ``nbgrader_config.py`` (:mod:`instructor.plugins.feedback`): Formgrader's
"Generate Feedback" button and ``nbgrader generate_feedback`` write exactly the same page. A
submission nbgrader could not grade (no autograded notebook) gets a short page saying why and
what to do, written here.
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path

from ..course import Course
from ..grading.outcome import Finding, Outcome, load_results
from ..nbgrader_runner import run_nbgrader
from ..words import describe


def feedback(course: Course, lab: str, students: list[str] | None = None) -> list[Path]:
    """Write ``feedback/<student>/<lab>/*.html`` for ``students`` (default: all graded ones)."""
    course.check_lab(lab)
    graded = sorted(p.parent.name for p in course.autograded.glob(f"*/{lab}") if p.is_dir())
    results = load_results(course.grading, lab)
    everyone = sorted(set(graded) | set(results))
    students = everyone if students is None else students
    unknown = sorted(set(students) - set(everyone))
    if unknown:
        raise ValueError(f"students: {unknown} have not been graded for {lab} (graded: {everyone})")
    names = [p.name for p in course.source_notebooks(lab)]
    with_notebooks = [s for s in students
                      if any((course.autograded / s / lab / n).exists() for n in names)]
    everyone_with_notebooks = [s for s in graded
                               if any((course.autograded / s / lab / n).exists() for n in names)]
    runs = ([[]] if with_notebooks and set(with_notebooks) == set(everyone_with_notebooks)
            else [["--student", s] for s in with_notebooks])
    for selection in runs:
        run_nbgrader("generate_feedback", lab, "--force", *selection, "--db", course.db_url,
                     cwd=course.root)
    written = []
    for student in students:
        out = course.feedback / student / lab
        for name in names:
            page = out / (Path(name).stem + ".html")
            if student not in with_notebooks:  # nothing was graded: say why
                out.mkdir(parents=True, exist_ok=True)
                page.write_text(failure_page(student, lab, results.get(student)))
            if page.exists():
                written.append(page)
        if student in with_notebooks:
            release_files(course, lab, student, out)
    return written


def release_files(course: Course, lab: str, student: str, out: Path) -> None:
    """Next to the pages, what ``nbgrader release_feedback`` reads to put them in the exchange
    where only their student finds them: the graded submission's ``timestamp.txt`` and
    ``submission_secret.txt`` (present when it came through the exchange)."""
    for name in ("timestamp.txt", "submission_secret.txt"):
        for folder in (course.autograded / student / lab, course.submitted / student / lab):
            if (folder / name).is_file():
                shutil.copy(folder / name, out / name)
                break


STUDENT_WORDS = {  # what a student should do, for the problems a student can fix
    "notebook_missing": lambda p: (
        f"We received {_names(p.get('found'))} but no notebook named {p['notebook']}: the "
        f"grader looks for the notebook under its original name, so nothing could be graded. "
        f"Rename your notebook to {p['notebook']} (or download a fresh copy and move your "
        "answers into it) and hand it in again."),
    "not_a_notebook": lambda p: (
        f"{p['notebook']} could not be opened as a notebook ({p.get('error', 'unreadable')}). "
        "Hand in the .ipynb file itself as saved by Jupyter, not a copy edited as text."),
    "cells_duplicated": lambda p: (
        f"{p['notebook']} has copies of test cells ({_names(p.get('cells'))}); the grader cannot "
        "grade such a notebook. Delete the copies and hand it in again."),
}


def _names(items) -> str:
    items = [str(i) for i in items or []]
    return ", ".join(items) if items else "no notebook"


def failure_page(student: str, lab: str, result: Outcome | None) -> str:
    """A page for a submission that produced no autograded notebook: what happened, in words a
    student can act on."""
    problems: list[Finding] = result.problems if result else []
    fixable = [STUDENT_WORDS[f.code](f.params) for f in problems if f.code in STUDENT_WORDS]
    other = [describe(f) for f in problems if f.code not in STUDENT_WORDS]
    if not problems:
        other = ["the submission has not been graded yet"]
    score = f"{result.score:g} / {result.max_score:g}" if result else "0 / 0"
    items = "\n".join(f"<li>{html.escape(p)}</li>" for p in fixable + other)
    advice = ("" if fixable else "<p>Check that the notebook runs from the top (Kernel &rarr; "
              "Restart Kernel and Run All Cells) before handing it in again, or ask your "
              "instructor.</p>\n")
    title = f"{html.escape(lab)}: feedback for {html.escape(student)}"
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body>\n<h1>{title}</h1>\n<p>Score: {score}. Your submission could not be graded "
            f"normally:</p>\n<ul>\n{items}\n</ul>\n{advice}</body></html>\n")
