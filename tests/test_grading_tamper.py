"""The tamper catalogue: adversarial submissions to a small gradient lab (built here with
instructor.authoring). Each pairs a wrong ``tanh_backward`` with a trick; none earns a point, an
honest submission in the same batch keeps all of its points, and nothing outside the submission's
working copy (gradebook, other students' folders, solutions) changes. Plain serial nbgrader, run
on a few of the same tricks, is shown to fall for them."""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
import pytest
from submission_factory import (
    build_course,
    read_release,
    scores,
    submit,
    tree_hashes,
    with_solution,
)

import instructor.commands.authoring as authoring
from instructor.__main__ import main as kit
from instructor.commands.authoring import code, markdown, notebook, solution
from instructor.course import Course
from instructor.grading.outcome import load_results
from labs import nbgrader

pytestmark = pytest.mark.slow
LAB = "tamper"

SETUP = '''
import torch
from lab_utils import check_gradients


def assert_close(actual, expected, what):
    """Fail with a message saying what differs."""
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-7,
                               msg=lambda m: f"{what} differs from autograd: {m}")


def autograd_reference(x, grad_out):
    """The gradient of sum(grad_out * tanh(x)) from autograd."""
    x = x.detach().clone().requires_grad_(True)
    torch.tanh(x).backward(grad_out)
    return x.grad


def by_hand(fn, *args):
    """Call fn with autograd's engine switched off: a by-hand backward must not need it."""
    import torch.autograd.graph as graph

    def refuse(*a, **k):
        raise RuntimeError("tanh_backward must compute the gradient by hand, not with autograd")

    saved = torch.autograd._engine_run_backward, graph._engine_run_backward
    torch.autograd._engine_run_backward = graph._engine_run_backward = refuse
    try:
        return fn(*args)
    finally:
        torch.autograd._engine_run_backward, graph._engine_run_backward = saved
'''

ANSWER = '''
def tanh_backward(x, grad_out):
    """d/dx of sum(grad_out * tanh(x)), by hand; x and grad_out have one shape."""
    ### BEGIN SOLUTION
    return grad_out * (1 - torch.tanh(x) ** 2)
    ### END SOLUTION
'''

TEST_CLOSE = '''
"""tanh_backward agrees with autograd (torch.testing.assert_close)."""
x, g = torch.tensor([0.0, 0.5, -1.0]), torch.ones(3)
assert_close(by_hand(tanh_backward, x, g), autograd_reference(x, g), "tanh_backward")
### BEGIN HIDDEN TESTS
torch.manual_seed(7)
xh, gh = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
assert_close(by_hand(tanh_backward, xh, gh), autograd_reference(xh, gh), "tanh_backward (batch)")
### END HIDDEN TESTS
'''

TEST_CHECKER = '''
"""tanh_backward passes torch.allclose and the kit's gradient checker."""
x, g = torch.linspace(-2, 2, 7), torch.full((7,), 0.5)
assert torch.allclose(by_hand(tanh_backward, x, g), autograd_reference(x, g), atol=1e-6), \\
    "tanh_backward differs from autograd"
### BEGIN HIDDEN TESTS
xh = torch.linspace(-3, 1, 9, dtype=torch.float64)
gh = torch.linspace(1, 2, 9, dtype=torch.float64)
check_gradients({"x": by_hand(tanh_backward, xh, gh)}, {"x": autograd_reference(xh, gh)},
                verbose=False)
### END HIDDEN TESTS
'''

WRONG = "def tanh_backward(x, grad_out):\n    return grad_out * (1 - x ** 2)\n"
RIGHT = "def tanh_backward(x, grad_out):\n    return grad_out * (1 - torch.tanh(x) ** 2)\n"
HARD_CODED = '''
def tanh_backward(x, grad_out):
    known = {(0.0, 0.5, -1.0): [1.0, 0.7864477, 0.4199743]}
    key = tuple(round(v, 4) for v in x.flatten().tolist())
    if key in known:
        return torch.tensor(known[key], dtype=x.dtype)
    if x.numel() == 7:
        return grad_out * (1 - torch.tanh(x) ** 2)
    return torch.zeros_like(x)
'''


def tamper_lab() -> nbformat.NotebookNode:
    return notebook([
        markdown("# Tamper lab\nOne by-hand gradient, checked three ways.", "intro"),
        code(SETUP, "setup"),
        solution(ANSWER, "tanh_backward"),
        authoring.tests(TEST_CLOSE, "test_assert_close", points=2),
        authoring.tests(TEST_CHECKER, "test_allclose_and_checker", points=2),
    ])


def catalogue(release, course: Path) -> dict:
    """student -> submission (all of them must score 0, except `honest`: 4)."""
    def trick(prefix: str, body: str = WRONG):
        return with_solution(release, prefix.strip("\n") + "\n" + body, "tanh_backward")

    def edited(keep_metadata: bool):
        nb = copy.deepcopy(trick(""))
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("grade") and not cell.metadata["nbgrader"].get("solution"):
                cell.source = "assert True"
                if not keep_metadata:
                    del cell.metadata["nbgrader"]
        return nb

    deleted = copy.deepcopy(trick(""))
    deleted.cells = [c for c in deleted.cells if not c.metadata.get("nbgrader", {}).get("points")]
    forged = copy.deepcopy(trick(""))
    forged.cells.append(nbformat.v4.new_code_cell("tanh_backward"))
    forged.cells[-1].metadata["nbgrader"] = {"grade": True, "grade_id": "bonus", "locked": True,
                                             "points": 100, "schema_version": 3,
                                             "solution": False, "task": False}
    gradebook, victim = course / "gradebook.db", course / "submitted" / "honest" / LAB / f"{LAB}.ipynb"
    source = course / "solutions" / LAB / f"{LAB}.ipynb"
    attack = f'''
import glob, json, os, sqlite3
for db in ["../../../gradebook.db", "../../../../gradebook.db", "../../gradebook.db", {str(gradebook)!r},
           *glob.glob("/tmp/kit-grade-*/*/db/gradebook.db"), *glob.glob("/tmp/kit-grade-*/template/gradebook.db")]:
    try:
        with sqlite3.connect(db) as con:
            con.execute("UPDATE grade SET auto_score = 100")
        print("WROTE", db)
    except Exception as error:
        print("denied", db, type(error).__name__)
for path in [{str(victim)!r}, {str(source)!r}, "../honest/{LAB}/{LAB}.ipynb", "../../../submitted/honest/{LAB}/{LAB}.ipynb"]:
    try:
        with open(path, "a") as f:
            f.write("tampered")
        print("WROTE", path)
    except Exception as error:
        print("denied", path, type(error).__name__)
try:
    stolen = json.load(open({str(source)!r}))
    exec("\\n".join(l for c in stolen["cells"] for l in c["source"].splitlines() if "###" not in l and "tanh" in c["source"] and c["metadata"].get("nbgrader", {{}}).get("solution")))
    print("WROTE stole the solution")
except Exception as error:
    print("denied reading the solution", type(error).__name__)
'''
    return {
        "honest": trick("", RIGHT),
        "edit_test_cells": edited(keep_metadata=True),
        "unmark_test_cells": edited(keep_metadata=False),
        "delete_test_cells": deleted,
        "forge_test_cell": forged,
        "redefine_assert_helper": trick("def assert_close(*args, **kwargs):\n    pass"),
        "patch_allclose": trick("torch.allclose = lambda *a, **k: True"),
        "patch_assert_close": trick("torch.testing.assert_close = lambda *a, **k: None"),
        "patch_lab_utils_checker": trick(
            "import lab_utils, lab_utils.checking\nlab_utils.check_gradients = "
            "lab_utils.checking.check_gradients = lambda *a, **k: None\n"
            "check_gradients = lab_utils.check_gradients\n"
            "torch.testing.assert_close = lambda *a, **k: None\ntorch.allclose = lambda *a, **k: True"),
        "patch_tensor_methods": trick(
            "torch.Tensor.__sub__ = lambda self, other: torch.zeros_like(self)\n"
            "torch.Tensor.abs = lambda self: torch.zeros_like(self)\n"
            "torch.testing.assert_close = lambda *a, **k: None"),
        "hard_coded_visible": trick("", HARD_CODED),
        "autograd_backward_inside": trick("", "def tanh_backward(x, grad_out):\n"
                                          "    x = x.detach().requires_grad_(True)\n"
                                          "    torch.tanh(x).backward(grad_out)\n    return x.grad\n"),
        "autograd_grad_inside": trick("", "def tanh_backward(x, grad_out):\n"
                                      "    x = x.detach().requires_grad_(True)\n"
                                      "    return torch.autograd.grad(torch.tanh(x), x, grad_out)[0]\n"),
        "catch_every_exception": trick(
            "import sys\nget_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)\n"
            "sys.excepthook = lambda *a: None"),
        "remove_guard_then_patch": trick(
            "for hooks in get_ipython().events.callbacks.values():\n    hooks.clear()\n"
            "import builtins\nbuiltins.__import__ = builtins.__import__\n"
            "torch.testing.assert_close = lambda *a, **k: None\ntorch.allclose = lambda *a, **k: True\n"
            "def assert_close(*a, **k):\n    pass"),
        "sys_exit": trick("", WRONG + "import sys\nsys.exit(0)\n"),
        "os_exit": trick("", WRONG + "import os\nos._exit(0)\n"),
        "write_gradebook_and_others": trick(attack),
    }


FOOLS_NBGRADER = ["redefine_assert_helper", "patch_assert_close",
                  "patch_lab_utils_checker"]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("tamper")
    source_path = base / "tamper_source.ipynb"
    nbformat.write(tamper_lab(), source_path)
    root = build_course(base / "course", LAB, source_path)
    subs = catalogue(read_release(root, LAB), root)
    for student, nb in subs.items():
        submit(root, LAB, student, nb)
    before = {name: tree_hashes(root / name) for name in ("submitted", "solutions")}
    assert kit(["grade", LAB, "--course-dir", str(root), "--workers", "2", "--cell-timeout", "30",
                "--timeout", "300", "--quiet"]) == 0
    return root, subs, before, source_path


def test_tamper_lab_is_sound(graded, tmp_path):
    """The lab used here is a fair one: its solution passes and the blank version fails."""
    _, _, _, source_path = graded
    ok = nbgrader("validate", str(source_path), cwd=source_path.parent)
    assert "Success! Your notebook passes all the tests." in ok.stdout, ok.stdout[-2000:]


def test_no_tamper_earns_a_point(graded):
    root, subs, _, _ = graded
    got = scores(root / "gradebook.db", LAB)
    assert got == {student: (4.0 if student == "honest" else 0.0) for student in subs}


def test_nothing_outside_the_working_copy_changed(graded):
    """Submitted folders and the solutions are byte-for-byte what they were."""
    root, _, before, _ = graded
    assert {name: tree_hashes(root / name) for name in before} == before


def test_the_attack_cell_was_denied_everything(graded):
    """In its sandbox the attacker could write no gradebook, no other folder, read no solution."""
    root, _, _, _ = graded
    nb = nbformat.read(root / "autograded" / "write_gradebook_and_others" / LAB / f"{LAB}.ipynb",
                       as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "denied" in text and "WROTE" not in text, text


def test_tricks_are_flagged_for_review(graded):
    root, _, _, _ = graded
    results = load_results(Course.open(root).grading, LAB)
    assert not results["honest"].flags
    for student in ["patch_allclose", "catch_every_exception", "autograd_grad_inside",
                    "write_gradebook_and_others", "os_exit"]:
        assert results[student].flags, student


def test_plain_nbgrader_falls_for_the_monkeypatches(graded, tmp_path):
    """Without the kit's guard, serial nbgrader gives these tricks points: the catalogue bites."""
    root, _, _, source_path = graded
    serial = build_course(tmp_path / "serial", LAB, source_path)
    nbgrader("generate_assignment", LAB, "--force", cwd=serial)
    for student in FOOLS_NBGRADER:
        folder = serial / "submitted" / student / LAB
        folder.mkdir(parents=True)
        (folder / f"{LAB}.ipynb").write_bytes((root / "submitted" / student / LAB / f"{LAB}.ipynb").read_bytes())
    nbgrader("autograde", LAB, "--force", cwd=serial, timeout=900)
    fooled = scores(serial / "gradebook.db", LAB)
    assert all(fooled[s] > 0 for s in FOOLS_NBGRADER), fooled
