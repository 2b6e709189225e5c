"""The grader on every real lab (found automatically): a correct submission gets every autograded
point, a partial one some, and the blank student version passes no test at all; the grader's
own re-run of every test cell agrees with the kernel's on all of them, and honest work carries
no flag and breaks no rule; on the first lab, parallel grading gives exactly the grades plain
serial ``nbgrader autograde`` gives on the same submissions. On Lab 3, correct ``backward``s in other styles earn every point with
no flag, and ``backward``s that get their gradients from autograd where the kernel's guards do
not look (another thread, an executor) pass in the kernel but earn none of ``backward``'s points,
with the construct and its line named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from submission_factory import (
    filled,
    gradebook_rows,
    read_release,
    read_source,
    standard_set,
    submit,
    with_solution,
)

from instructor.__main__ import main as kit
from instructor.course import Course
from instructor.grading.outcome import load_results
from instructor.notebooks import grade_id, is_test_cell, points
from instructor.words import describe
from labs import SOLUTIONS, discover_labs, make_course, nbgrader

pytestmark = pytest.mark.slow
LABS = discover_labs()


def autograded_tests(source_nb) -> dict[str, float]:
    """grade_id -> points of each autograded test cell."""
    return {grade_id(c): points(c) for c in source_nb.cells if is_test_cell(c)}


def autograded_points(source_nb) -> float:
    return sum(autograded_tests(source_nb).values())


@pytest.fixture(scope="module")
def course(tmp_path_factory, released_labs):
    if not LABS:
        pytest.skip("no lab under solutions/ yet")
    root = Path(shutil.copytree(released_labs, tmp_path_factory.mktemp("labs") / "course"))
    for lab in LABS:
        release, source = read_release(root, lab), read_source(root, lab)
        for student, nb in standard_set(release, source).items():
            submit(root, lab, student, nb)
        if lab == LAB3:
            for student, code in {**LAB3_STYLES, **LAB3_AUTOGRAD_ELSEWHERE}.items():
                submit(root, lab, student, with_solution(filled(release, source), code, "backward"))
        assert kit(["grade", lab, "--course-dir", str(root), "--workers", "2", "--quiet"]) == 0
    return root


LAB3 = "lab3_backprop_mlp"
LAB3_STYLES = {
    "backward_method_calls": """
def backward(params, outputs, Y):
    n = Y.shape[0]
    X, h = outputs["X"], outputs["h"]
    delta_y = outputs["yhat"].sub(Y)                    # by hand, in method-call style
    grad_h = torch.matmul(delta_y, params["Wy"])
    delta_h = grad_h.mul(1.0 - h.pow(2))
    return dict(delta_y=delta_y, grad_h=grad_h, delta_h=delta_h,
                Wy=torch.matmul(delta_y.t(), h).div(n),
                by=delta_y.sum(dim=0, keepdim=True).t().div(n),
                Wh=torch.matmul(delta_h.t(), X).div(n),
                bh=delta_h.sum(dim=0, keepdim=True).t().div(n))
""",
    "backward_einsum": """
def _outer_mean(a, b):
    \"\"\"Batch mean of the outer products a_k b_k^T (a helper of my own).\"\"\"
    return torch.einsum("bi,bj->ij", a, b) / a.shape[0]


def backward(params, outputs, Y):
    dy = outputs["yhat"] - Y
    with torch.no_grad():
        gh = torch.einsum("bj,ji->bi", dy, params["Wy"])
        dh = gh * (1 - outputs["h"] * outputs["h"])
    return {"delta_y": dy, "grad_h": gh, "delta_h": dh,
            "Wy": _outer_mean(dy, outputs["h"]), "by": dy.mean(0).reshape(-1, 1),
            "Wh": _outer_mean(dh, outputs["X"]), "bh": dh.mean(0)[:, None]}
""",
}
LAB3_AUTOGRAD_ELSEWHERE = {
    "backward_autograd_in_a_thread": """
import threading


def backward(params, outputs, Y):
    box = {}
    worker = threading.Thread(
        target=lambda: box.update(lab_utils.backward_reference(params, outputs["X"], Y)))
    worker.start()
    worker.join()
    return box
""",
    "backward_autograd_in_an_executor": """
from concurrent.futures import ThreadPoolExecutor


def backward(params, outputs, Y):
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lab_utils.backward_reference, params, outputs["X"], Y).result()
""",
}

ELSEWHERE_CONSTRUCTS = {  # what the grader may name: the way out, or what it runs there
    "backward_autograd_in_a_thread": {"threading.Thread", "lab_utils.backward_reference"},
    "backward_autograd_in_an_executor": {"concurrent.futures.ThreadPoolExecutor",
                                         "lab_utils.backward_reference"},
}


@pytest.mark.parametrize("lab", LABS)
def test_correct_blank_partial(course, lab):
    rows = gradebook_rows(course / "gradebook.db", lab)
    total = {}
    for (student, _, _), (auto, _, _) in rows.items():
        total[student] = total.get(student, 0.0) + (auto or 0.0)
    full = autograded_points(read_source(course, lab))
    assert full > 0
    assert total["correct"] == pytest.approx(full), total
    for style in (LAB3_STYLES if lab == LAB3 else ()):
        assert total[style] == pytest.approx(full), (style, total)
    assert total["blank"] == 0.0, total
    assert 0.0 < total["partial"] < full, total


@pytest.mark.parametrize("lab", LABS)
def test_every_test_fails_on_the_blank_student_version(course, lab):
    """The student version as released, untouched, passes no autograded test: each one scores 0
    (what ``nbgrader validate --invert`` checks; tests/test_labs.py checks that the committed
    student version is this release)."""
    tests = autograded_tests(read_source(course, lab))
    blank = {cell: auto for (student, _, cell), (auto, _, _) in
             gradebook_rows(course / "gradebook.db", lab).items() if student == "blank"}
    assert tests and set(tests) <= set(blank), (sorted(tests), sorted(blank))
    passed = sorted(cell for cell in tests if blank[cell])
    assert not passed, f"{lab}: the blank student version passes {passed}"


@pytest.mark.parametrize("lab", LABS)
def test_the_grader_agrees_with_the_kernel_and_flags_no_honest_work(course, lab):
    """Replaying every test cell in the grader's process gives the kernel's verdict, for the
    correct, the blank and the partial submission alike; none of them is flagged or breaks a
    rule (an instructor who sees flags on honest work learns to ignore them)."""
    results = load_results(Course.open(course).grading, lab)
    assert {"blank", "correct", "partial"} <= set(results)
    for student, outcome in results.items():
        if student in LAB3_AUTOGRAD_ELSEWHERE:
            continue
        found = [describe(f) for f in outcome.flags + outcome.violations]
        assert not found, (lab, student, found)
        assert outcome.status.value == "graded" and not outcome.problems, (lab, student)


def test_parallel_equals_serial_nbgrader_on_a_lab(course, tmp_path):
    lab = LABS[0]
    serial = make_course(tmp_path / "serial", {lab: SOLUTIONS / lab})
    nbgrader("generate_assignment", lab, "--force", cwd=serial)
    for student in ("correct", "blank", "partial"):
        shutil.copytree(course / "submitted" / student / lab, serial / "submitted" / student / lab)
    nbgrader("autograde", lab, "--force", cwd=serial, timeout=1200)
    assert gradebook_rows(course / "gradebook.db", lab) == gradebook_rows(serial / "gradebook.db", lab)


def test_lab3_backward_from_autograd_elsewhere_earns_none_of_its_points(course):
    """The kernel's guards are thread-local: in another thread autograd runs, and the kernel's
    own verdict passes. The grader reads the source: backward's tests score 0, the rule it
    broke is named with its construct and line, and the other tests keep their points."""
    results = load_results(Course.open(course).grading, LAB3)
    rows = gradebook_rows(course / "gradebook.db", LAB3)
    source = read_source(course, LAB3)
    backward_tests = {grade_id(c) for c in source.cells
                      if is_test_cell(c) and "_check_backward(" in c.source}
    assert backward_tests, "Lab 3 has no test cell of backward"
    for student in LAB3_AUTOGRAD_ELSEWHERE:
        broken = results[student].violations
        assert {v.params["function"] for v in broken} == {"backward"}, (student, broken)
        named = {v.params["resolved"] for v in broken}
        assert named & ELSEWHERE_CONSTRUCTS[student], (student, [describe(v) for v in broken])
        assert all(v.params["line"] >= 1 for v in broken), broken
        scores = {cell: auto for (who, _, cell), (auto, _, _) in rows.items() if who == student}
        assert all(scores[cell] == 0 for cell in backward_tests), (student, scores)
        correct = {cell: auto for (who, _, cell), (auto, _, _) in rows.items() if who == "correct"}
        others = [cell for cell in scores if cell not in backward_tests and correct[cell]]
        assert all(scores[cell] == correct[cell] for cell in others), (student, scores)
