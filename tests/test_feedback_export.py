"""Feedback and export after grading, the way an instructor meets them: a lab with math, a hidden
test and a written answer, three graded submissions and a second lab nobody submitted yet.

- feedback: no hidden-test code, errors in words, a results section, math as MathML, "not graded
  yet" on written answers waiting for a person (a score once graded), and plain
  ``nbgrader generate_feedback`` (what Formgrader's button runs) writes the very same page;
- export: grades.csv sorted, saying what is left to grade by hand; the summary names those
  answers per student and in total, and leaves out labs without submissions.

Graded with plain ``nbgrader autograde`` (the kit's grader is tested elsewhere): what is tested
here only reads the gradebook and the autograded notebooks."""

from __future__ import annotations

import csv
import html
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook
from submission_factory import read_release, with_solution

from instructor.__main__ import main as kit
from instructor.commands.authoring import markdown, notebook
from labs import make_course, nbgrader

pytestmark = pytest.mark.slow
FIXTURE = Path(__file__).parent / "fixtures" / "fixture_lab.ipynb"
LAB, UNSUBMITTED = "feedback_lab", "later_lab"
CORRECT = 'def add(a, b):\n    """Return a + b."""\n    return a + b'
MATH = "The gradient $\\frac{\\partial \\ell}{\\partial w}$ and the sum $$\\sum_i x_i$$"


def math_lab(path: Path) -> Path:
    """The fixture lab with a markdown cell of math after its title."""
    cells = nbformat.read(FIXTURE, as_version=4).cells
    cells.insert(1, markdown(MATH, "math"))
    nbformat.write(notebook(cells), path)
    return path


def page_text(path: Path) -> str:
    """The text a reader sees in an HTML page (tags removed, spaces collapsed)."""
    text = path.read_text()
    body = text[text.find("<body"):]
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("feedback")
    root = make_course(tmp / "course", {LAB: math_lab(tmp / "lab.ipynb"), UNSUBMITTED: FIXTURE})
    for lab in (LAB, UNSUBMITTED):
        nbgrader("generate_assignment", lab, "--force", cwd=root)
    release = read_release(root, LAB)
    answered = with_solution(with_solution(release, CORRECT, "add"),
                             "Because $a + b = b + a$ for numbers.", "why")
    submissions = {"carol": answered, "alice": answered,
                   "bob": with_solution(release, "def add(a, b):\n    return int(a) + int(b)",
                                        "add")}
    for student, nb in submissions.items():
        target = root / "submitted" / student / LAB / f"{LAB}.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(nb, target)
    nbgrader("autograde", LAB, "--force", cwd=root)
    assert kit(["feedback", LAB, "--course-dir", str(root)]) == 0
    assert kit(["export", "--course-dir", str(root)]) == 0
    return root


def _page(root: Path, student: str) -> Path:
    return root / "feedback" / student / LAB / f"{LAB}.html"


def test_feedback_hides_hidden_tests_and_explains_failures(course):
    for student in ("alice", "bob", "carol"):
        text = page_text(_page(course, student))
        assert "add(2.5, 0.5)" not in text and "HIDDEN TESTS" not in text, student
        assert "Autograder results" in text and "hidden tests run here" in text, student
    bob = page_text(_page(course, "bob"))
    assert "test_add_hidden (1 point): failed: a check did not hold" in bob
    assert "test_add_visible (2 points): passed" in bob


def test_feedback_renders_math_as_mathml_without_a_script(course):
    page = _page(course, "alice").read_text()
    body = page[page.find("<body"):]
    assert body.count("<math") >= 3  # the lab's two formulas and the student's answer
    assert "\\frac" not in body and "$a + b" not in body


def test_feedback_says_not_graded_yet_for_a_written_answer_waiting_for_a_person(course):
    text = page_text(_page(course, "alice"))
    assert "Score: 3.0 / 4.0; 1.0 points not graded yet" in text
    assert "Written response (not graded yet, 1.0 points)" in text
    assert "Score: 0.0 / 1.0" not in text
    assert "why (1 point, written answer): not graded yet" in text
    # bob left the answer blank: nbgrader scores that 0 itself, nothing waits
    assert "not graded yet" not in page_text(_page(course, "bob"))


def test_nbgraders_own_generate_feedback_writes_the_same_page(course, tmp_path):
    """What Formgrader's "Generate Feedback" button runs (nbgrader's generate_feedback with the
    course's configuration) gives byte for byte the kit's page: there is no unsafe path."""
    kept = {s: _page(course, s).read_bytes() for s in ("alice", "bob", "carol")}
    shutil.rmtree(course / "feedback")
    nbgrader("generate_feedback", LAB, "--force", cwd=course)
    assert {s: _page(course, s).read_bytes() for s in kept} == kept


def test_export_csv_is_sorted_and_says_what_is_left_to_grade_by_hand(course):
    rows = list(csv.DictReader((course / "grades.csv").open()))
    keys = [(r["assignment"], r["student_id"]) for r in rows]
    assert keys == sorted(keys) and len(keys) == 6  # 3 students x 2 labs
    mine = {r["student_id"]: r for r in rows if r["assignment"] == LAB}
    assert (mine["alice"]["to_grade_by_hand"], mine["alice"]["points_to_grade_by_hand"]) == \
        ("why", "1")
    assert (mine["bob"]["to_grade_by_hand"], mine["bob"]["points_to_grade_by_hand"]) == ("", "0")
    assert float(mine["alice"]["score"]) == 3.0 and float(mine["bob"]["score"]) == 2.0


def test_summary_lists_manual_grading_per_student_and_in_total_and_skips_empty_labs(course):
    summary = (course / "grading" / "summary.md").read_text()
    assert "Waiting for manual grading: 2 answers (2 points) in 2 submissions" in summary
    assert "Formgrader" in summary
    assert "- alice (score so far 3/4): why (1 point)" in summary
    assert "- carol (score so far 3/4): why (1 point)" in summary
    assert "- bob" not in summary
    assert f"## {LAB}" in summary and f"## {UNSUBMITTED}" not in summary


def test_after_manual_grading_feedback_and_export_show_the_grade(course):
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        grade = gradebook.find_grade("why", LAB, LAB, "alice")
        grade.manual_score, grade.needs_manual_grade = 1.0, False
        gradebook.db.commit()
    assert kit(["feedback", LAB, "--course-dir", str(course), "--students", "alice"]) == 0
    text = page_text(_page(course, "alice"))
    assert "not graded yet" not in text and "Score: 4.0 / 4.0" in text
    assert "why (1 point, written answer): graded by a person" in text
    assert kit(["export", "--course-dir", str(course)]) == 0
    summary = (course / "grading" / "summary.md").read_text()
    assert "Waiting for manual grading: 1 answer (1 point) in 1 submission" in summary
    assert "- alice" not in summary
