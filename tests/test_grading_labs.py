"""The grader on every real lab (found automatically): a correct submission gets every autograded
point, a blank one none, a partial one some; the grader's own re-run of every test cell agrees
with the kernel's on all of them, and honest work carries no flag and breaks no rule; on the
first lab, parallel grading gives exactly the grades plain serial ``nbgrader autograde`` gives
on the same submissions."""

from __future__ import annotations

import shutil

import pytest
from submission_factory import gradebook_rows, read_release, read_source, standard_set, submit

from instructor.__main__ import main as kit
from instructor.course import Course
from instructor.grading.outcome import load_results
from instructor.words import describe
from labs import discover_labs, make_course, nbgrader, solution_path

pytestmark = pytest.mark.slow
LABS = discover_labs()


def autograded_points(source_nb) -> float:
    return sum(c.metadata["nbgrader"].get("points", 0) for c in source_nb.cells
               if c.metadata.get("nbgrader", {}).get("grade")
               and not c.metadata["nbgrader"].get("solution"))


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    if not LABS:
        pytest.skip("no lab under solutions/ yet")
    root = make_course(tmp_path_factory.mktemp("labs"), {lab: solution_path(lab) for lab in LABS})
    for lab in LABS:
        nbgrader("generate_assignment", lab, "--force", "--db", f"sqlite:///{root / 'r.db'}", cwd=root)
        for student, nb in standard_set(read_release(root, lab), read_source(root, lab)).items():
            submit(root, lab, student, nb)
        assert kit(["grade", lab, "--course-dir", str(root), "--workers", "2", "--quiet"]) == 0
    return root


@pytest.mark.parametrize("lab", LABS)
def test_correct_blank_partial(course, lab):
    rows = gradebook_rows(course / "gradebook.db", lab)
    total = {}
    for (student, _, _), (auto, _, _) in rows.items():
        total[student] = total.get(student, 0.0) + (auto or 0.0)
    full = autograded_points(read_source(course, lab))
    assert full > 0
    assert total["correct"] == pytest.approx(full), total
    assert total["blank"] == 0.0, total
    assert 0.0 < total["partial"] < full, total


@pytest.mark.parametrize("lab", LABS)
def test_the_grader_agrees_with_the_kernel_and_flags_no_honest_work(course, lab):
    """Replaying every test cell in the grader's process gives the kernel's verdict, for the
    correct, the blank and the partial submission alike; none of them is flagged or breaks a
    rule (an instructor who sees flags on honest work learns to ignore them)."""
    results = load_results(Course.open(course).grading, lab)
    assert sorted(results) == ["blank", "correct", "partial"]
    for student, outcome in results.items():
        found = [describe(f) for f in outcome.flags + outcome.violations]
        assert not found, (lab, student, found)
        assert outcome.status.value == "graded" and not outcome.problems, (lab, student)


def test_parallel_equals_serial_nbgrader_on_a_lab(course, tmp_path):
    lab = LABS[0]
    serial = make_course(tmp_path / "serial", {lab: solution_path(lab)})
    nbgrader("generate_assignment", lab, "--force", cwd=serial)
    for student in ("correct", "blank", "partial"):
        shutil.copytree(course / "submitted" / student / lab, serial / "submitted" / student / lab)
    nbgrader("autograde", lab, "--force", cwd=serial, timeout=1200)
    assert gradebook_rows(course / "gradebook.db", lab) == gradebook_rows(serial / "gradebook.db", lab)
