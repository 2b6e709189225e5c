"""The nbgrader wiring works end to end, independently of any lab: a fixture notebook goes
through generate → validate → submit (a correct and a blank copy) → autograde → export."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from labs import make_course, nbgrader

FIXTURE = Path(__file__).parent / "fixtures" / "fixture_lab.ipynb"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = make_course(tmp_path_factory.mktemp("course"), {"fixture": FIXTURE})
    nbgrader("generate_assignment", "fixture", "--force", cwd=root)
    return root


def test_generate_clears_solutions_and_hidden_tests(course):
    """The released notebook keeps the visible test and loses the solution and hidden test."""
    text = (course / "notebooks" / "fixture" / "fixture.ipynb").read_text()
    assert "raise NotImplementedError()" in text
    assert "return a + b" not in text
    assert "add(2.5, 0.5)" not in text
    assert "add(1, 2) == 3" in text


def test_validate_passes_solution_and_fails_student_version(course):
    """validate accepts the solution; validate --invert confirms every test fails on the blank copy."""
    good = nbgrader("validate", "solutions/fixture/fixture.ipynb", cwd=course).stdout
    assert "Success! Your notebook passes all the tests." in good
    blank = nbgrader("validate", "--invert", "notebooks/fixture/fixture.ipynb", cwd=course).stdout
    assert "Success! The notebook does not pass any tests." in blank
    failing = nbgrader("validate", "notebooks/fixture/fixture.ipynb", cwd=course, check=False)
    assert "Success!" not in failing.stdout


def test_autograde_and_export_give_full_and_zero_marks(course):
    """A correct submission gets every autograded point, a blank one gets none."""
    for student, source in [("correct", course / "solutions"), ("blank", course / "notebooks")]:
        target = course / "submitted" / student / "fixture"
        target.mkdir(parents=True)
        shutil.copy(source / "fixture" / "fixture.ipynb", target / "fixture.ipynb")
    nbgrader("autograde", "fixture", "--create", cwd=course)
    nbgrader("export", cwd=course)
    rows = {r["student_id"]: r for r in csv.DictReader((course / "grades.csv").open())}
    assert float(rows["correct"]["score"]) == 3.0   # 2 + 1 autograded; the written answer is manual
    assert float(rows["blank"]["score"]) == 0.0
    assert float(rows["correct"]["max_score"]) == 4.0
