"""``python3 kit.py feedback LAB``: per-student HTML feedback that explains in words which checks
failed and why, without showing hidden-test code (unlike nbgrader's own feedback, its #917).

For each autograded notebook the grader writes a cleaned copy: hidden-test regions replaced by a
one-line note, every traceback replaced by its error type and message, output lines that repeat
hidden-test code removed, and a results section on top (each check, its points, passed or why
not). nbgrader's ``generate_feedback`` turns those copies into HTML with the gradebook's scores.
A submission nbgrader could not grade gets a short HTML page with the reasons.
"""

from __future__ import annotations

import html
import re
import shutil
import tempfile
from pathlib import Path

import nbformat
from nbformat.v4 import new_markdown_cell

from ..course import Course
from ..grading.outcome import Outcome, load_results
from ..nbgrader_runner import run_nbgrader
from ..notebooks import HIDDEN_REGION as HIDDEN
from ..words import describe

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
HIDDEN_NOTE = "# (hidden tests run here; their code is not shown)\n"


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
    written = []
    sources = {p.name: nbformat.read(p, as_version=4) for p in course.source_notebooks(lab)}
    with tempfile.TemporaryDirectory(prefix="kit-feedback-") as scratch:
        root = Path(scratch)
        shutil.copy(course.root / "nbgrader_config.py", root / "nbgrader_config.py")
        todo = []
        for student in students:
            for name in sources:
                path = course.autograded / student / lab / name
                if not path.exists():
                    continue
                nb = clean_notebook(nbformat.read(path, as_version=4),
                                    results.get(student))
                target = root / "autograded" / student / lab / name
                target.parent.mkdir(parents=True, exist_ok=True)
                nbformat.write(nb, target)
                todo.append(student)
        if todo:
            run_nbgrader("generate_feedback", lab, "--force", "--db", course.db_url, cwd=root)
        for student in students:
            out = course.feedback / student / lab
            made = sorted((root / "feedback" / student / lab).glob("*.html"))
            if made or student in todo:
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir(parents=True)
            for page in made:
                shutil.copy(page, out / page.name)
                written.append(out / page.name)
            if made or student in todo:
                release_files(course, lab, student, out)
            for name in sources:
                page = out / (Path(name).stem + ".html")
                if not page.exists():  # nothing was graded: explain why
                    out.mkdir(parents=True, exist_ok=True)
                    page.write_text(failure_page(student, lab, results.get(student)))
                    written.append(page)
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


def clean_notebook(nb, result: Outcome | None):
    """The autograded notebook ``nb`` without hidden-test code or tracebacks, with a results
    section on top (``result``: this student's outcome from grading/<lab>/results.json)."""
    lines = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        hidden = [h.strip() for region in HIDDEN.findall(cell.source)
                  for h in region.splitlines() if len(h.strip()) >= 6]
        cell.source = HIDDEN.sub(HIDDEN_NOTE, cell.source)
        if cell.cell_type != "code":
            continue
        failure = None
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                message = ANSI.sub("", f"{output.get('ename', 'Error')}: {output.get('evalue', '')}")
                failure = explain_error(output.get("ename", ""), output.get("evalue", ""))
                output["traceback"] = [_scrub(message, hidden)]
                output["evalue"] = _scrub(output.get("evalue", ""), hidden)
            elif output.get("output_type") == "stream":
                output["text"] = _scrub(output.get("text", ""), hidden)
            for key, value in list(output.get("data", {}).items()):
                if isinstance(value, str) and key.startswith("text/"):
                    output["data"][key] = _scrub(value, hidden)
        if meta.get("grade") and not meta.get("solution"):
            points = meta.get("points", 0)
            if cell.get("execution_count") is None and not cell.get("outputs"):
                status = "not run (the notebook stopped before this check)"
            else:
                status = f"failed: {_scrub(failure, hidden)}" if failure else "passed"
            lines.append(f"- **{meta.get('grade_id')}** ({points:g} point{'s' * (points != 1)}): "
                         f"{status}")
    notes = [describe(f) for f in result.problems + result.violations] if result else []
    summary = ["## Autograder results", "", *lines]
    if notes:
        summary += ["", "Notes from the grader:", "", *[f"- {n}" for n in notes]]
    nb.cells.insert(0, new_markdown_cell("\n".join(summary)))
    return nb


def explain_error(ename: str, evalue: str) -> str:
    ename, evalue = ANSI.sub("", ename), ANSI.sub("", evalue).strip()
    if ename == "CellTimeoutError":
        return "it did not finish within the time limit (an infinite loop?)"
    if ename == "NotImplementedError":
        return "the function it checks is not written yet (NotImplementedError)"
    if ename == "AssertionError":
        return f"a check did not hold: {evalue}" if evalue else \
            "a check did not hold (a hidden test, or an assert without a message)"
    if ename == "MemoryError":
        return "it ran out of memory"
    return f"it raised {ename}: {evalue}" if evalue else f"it raised {ename}"


def _scrub(text: str | None, hidden: list[str]) -> str:
    if not text:
        return text or ""
    keep = [line for line in text.split("\n") if not any(h in line for h in hidden)]
    return "\n".join(keep)


def failure_page(student: str, lab: str, result: Outcome | None) -> str:
    problems = [describe(f) for f in result.problems] if result else []
    problems = problems or ["the submission has not been graded"]
    items = "\n".join(f"<li>{html.escape(p)}</li>" for p in problems)
    score = f"{result.score:g} / {result.max_score:g}" if result else "0 / 0"
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(lab)}: "
            f"feedback for {html.escape(student)}</title></head><body>\n"
            f"<h1>{html.escape(lab)}: feedback for {html.escape(student)}</h1>\n"
            f"<p>Score: {score}. Your notebook could not be graded normally:</p>\n<ul>\n{items}\n"
            "</ul>\n<p>Fix the problem above and run the notebook from the top (Kernel &rarr; "
            "Restart and Run All) before handing it in again.</p>\n</body></html>\n")
