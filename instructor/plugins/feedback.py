"""Feedback pages without hidden tests, by nbgrader's own ``generate_feedback``.

``nbgrader_config.py`` puts :class:`CleanFeedback` after nbgrader's ``GetGrades`` and makes
:class:`FeedbackExporter` the page writer, so ``python3 kit.py feedback``, Formgrader's
"Generate Feedback" button and ``nbgrader generate_feedback`` all write the same page. From the
autograded notebook (read, never changed on disk) the page gets:

- hidden-test regions replaced by a one-line note, and output lines that repeat their code
  dropped;
- every traceback replaced by the error in words (a check that did not hold, not written yet,
  the time limit, a test the grader re-ran on its own, a by-hand rule broken);
- a results section on top: each check with its points and "passed" or why not, the written
  answers a person has not graded yet, and the grader's notes on the submission;
- "not graded yet" instead of a score of 0 on answers waiting for a person (the template
  ``templates/kit_feedback``, which extends nbgrader's own).

The grader's notes come from ``grading/<lab>/results.json`` and ``grading/<lab>/collect.json``
of the course (nbgrader runs converters in the course root).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from nbconvert.exporters import HTMLExporter
from nbformat.v4 import new_markdown_cell
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import GetGrades, NbGraderPreprocessor
from traitlets import List, default, validate

from ..grading.outcome import Outcome, load_results
from ..notebooks import HIDDEN_REGION, is_grade, is_solution
from ..words import describe

TEMPLATES = Path(__file__).resolve().parent / "templates"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
HIDDEN_NOTE = "# (hidden tests run here; their code is not shown)\n"
GRADER_ERROR = "GraderCheckFailed"  # the grading engine's enames (instructor.grading.preprocessors)
RULE_ERROR = "RuleBroken"


def waiting_for_a_person(grade) -> bool:
    """Whether an nbgrader ``Grade`` still needs a person's score."""
    return bool(grade.needs_manual_grade) and grade.manual_score is None


def pending_grades(db_url: str, lab: str, student: str, notebook: str) -> dict[str, float]:
    """grade_id -> points of the cells of ``notebook`` waiting for a person's score."""
    with Gradebook(db_url) as gradebook:
        try:
            submitted = gradebook.find_submission_notebook(notebook, lab, student)
        except MissingEntry:
            return {}
        return {g.name: float(g.max_score or 0) for g in submitted.grades
                if waiting_for_a_person(g)}


def collect_notes(course_root: Path, lab: str, student: str) -> list[str]:
    """What ``collect`` did to this student's files (``grading/<lab>/collect.json``), in words;
    nothing when the submission has been replaced since."""
    path = Path(course_root) / "grading" / lab / "collect.json"
    if not path.exists():
        return []
    entry = json.loads(path.read_text()).get(student) or {}
    notebook = Path(course_root) / "submitted" / student / lab / str(entry.get("renamed_to"))
    if entry.get("renamed_from") and notebook.is_file() and \
            hashlib.sha256(notebook.read_bytes()).hexdigest() == entry.get("sha256"):
        return [f"You handed in {entry['renamed_from']}; it was the only notebook, so it was "
                f"graded as {entry['renamed_to']}. Next time keep the original file name."]
    return []


class CleanFeedback(NbGraderPreprocessor):
    """generate_feedback's cleaning step (see the module's docstring)."""

    # as nbgrader's GetGrades, next to which it runs (Formgrader's configuration sets it for
    # every preprocessor of the run; without this trait that is a warning in its log)
    display_data_priority = List(GetGrades().display_data_priority).tag(config=True)

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        lab, student, notebook = info["assignment"], info["student"], info["notebook"]
        pending = pending_grades(info["db_url"], lab, student, notebook)
        root = Path.cwd()  # nbgrader's converters run in the course root
        outcome = load_results(root / "grading", lab).get(student)
        clean_notebook(nb, outcome, pending, collect_notes(root, lab, student))
        info["not_graded_yet"] = sum(pending.values())
        return nb, resources


class FeedbackExporter(HTMLExporter):
    """nbgrader's feedback page with the kit's template (``templates/kit_feedback``, which
    extends nbgrader's ``feedback``): generate_feedback asks for "feedback", this exporter
    gives the kit's version of it."""

    @validate("template_name")
    def _template_name_validate(self, proposal):  # replaces nbconvert's, which it calls
        name = super()._template_name_validate(proposal)
        return "kit_feedback" if name == "feedback" else name

    @validate("extra_template_basedirs")
    def _kit_templates_first(self, proposal):
        return [str(TEMPLATES), *(d for d in proposal["value"] if d != str(TEMPLATES))]

    @default("template_paths")
    def _template_paths(self, prune=True, root_dirs=None):  # replaces nbconvert's, which it calls
        # the base folders too, so that kit_feedback can extend 'feedback/index.html.j2'
        return [*super()._template_paths(prune, root_dirs),
                *(d for d in self.extra_template_basedirs if Path(d).is_dir())]


def clean_notebook(nb, outcome: Outcome | None, pending: dict[str, float] | None = None,
                   notes: list[str] | None = None):
    """``nb`` (an autograded notebook) cleaned as described in the module's docstring, with the
    results section on top. ``outcome``: the student's entry of results.json; ``pending``: the
    cells waiting for a person (grade_id -> points); ``notes``: more lines for the section."""
    pending = pending or {}
    lines = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        hidden = [h.strip() for region in HIDDEN_REGION.findall(cell.source)
                  for h in region.splitlines() if len(h.strip()) >= 6]
        cell.source = HIDDEN_REGION.sub(HIDDEN_NOTE, cell.source)
        if meta.get("grade_id") in pending:
            meta["kit_not_graded_yet"] = True
        if is_grade(cell) and is_solution(cell):
            points = float(meta.get("points", 0) or 0)
            status = ("not graded yet: a person will read and grade it"
                      if meta.get("grade_id") in pending else "graded by a person")
            lines.append(f"- **{meta.get('grade_id')}** ({_points(points)}, written answer): "
                         f"{status}")
        if cell.cell_type != "code":
            continue
        failure = _clean_outputs(cell, hidden)
        if is_grade(cell) and not is_solution(cell):
            if cell.get("execution_count") is None and not cell.get("outputs"):
                status = "not run (the notebook stopped before this check)"
            else:
                status = f"failed: {_scrub(failure, hidden)}" if failure else "passed"
            lines.append(f"- **{meta.get('grade_id')}** ({_points(meta.get('points', 0))}): "
                         f"{status}")
    grader_notes = [describe(f) for f in outcome.problems + outcome.violations] if outcome else []
    grader_notes += notes or []
    summary = ["## Autograder results", "", *lines]
    if pending:
        summary += ["", f"{_points(sum(pending.values()))} of written answers are not graded "
                        "yet; the score above counts them as 0 until a person grades them."]
    if grader_notes:
        summary += ["", "Notes from the grader:", "", *[f"- {n}" for n in grader_notes]]
    nb.cells.insert(0, new_markdown_cell("\n".join(summary)))
    return nb


def _clean_outputs(cell, hidden: list[str]) -> str | None:
    """Scrub one code cell's outputs in place; returns its error in words (None: no error)."""
    failure = None
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            ename, evalue = output.get("ename", ""), output.get("evalue", "")
            failure = explain_error(ename, evalue)
            output["traceback"] = [_scrub(ANSI.sub("", f"{ename or 'Error'}: {evalue}"), hidden)]
            output["evalue"] = _scrub(evalue, hidden)
        elif output.get("output_type") == "stream":
            output["text"] = _scrub(output.get("text", ""), hidden)
        for key, value in list(output.get("data", {}).items()):
            if isinstance(value, str) and key.startswith("text/"):
                output["data"][key] = _scrub(value, hidden)
    return failure


def explain_error(ename: str, evalue: str) -> str:
    """A failed check's error in words for the student."""
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
    if ename == GRADER_ERROR:
        return ("it passed in your notebook, but failed when the grader ran it again on its own, "
                f"where only your functions' results count: {evalue or 'no reason given'}")
    if ename == RULE_ERROR:
        return (f"it checks a function that must follow a rule and does not: {evalue} "
                "(your instructor can review this)")
    return f"it raised {ename}: {evalue}" if evalue else f"it raised {ename}"


def _points(points) -> str:
    points = float(points or 0)
    return f"{points:g} point{'s' * (points != 1)}"


def _scrub(text: str | None, hidden: list[str]) -> str:
    """``text`` without the lines that repeat hidden-test code."""
    if not text:
        return text or ""
    return "\n".join(line for line in text.split("\n") if not any(h in line for h in hidden))
