"""The rule checker (instructor.grading.rules) reads submissions without running them: every
way around Lab 3's by-hand rule in the catalogue is caught at the right construct and line, no
honest style and no lab's own solution or blank notebook is ever flagged, a graded function is
charged only for its own breaks, the kit's install cell is the kit's only as released,
suspicious code is flagged with the right code, and hostile cells give flags instead of
crashing the grader."""

from __future__ import annotations

import copy
import re
import sys
import time

import nbformat
import pytest
import torch
from by_hand_catalogue import (
    ATTACKS,
    HONEST,
    LAB,
    LAB3_RULES,
    Submission,
    cell_index,
    submission,
    with_rules,
)
from submission_factory import filled

import instructor.commands.authoring as authoring
import lab_utils
from instructor.grading import rules as rules_module
from instructor.grading.rules import Flag, Violation, check_rules, review, rules_of, scan
from instructor.grading.rules import sentences as rule_words
from instructor.grading.rules.forbidden import GRADIENT_HELPER_NAMES, rule_family
from instructor.grading.rules.parsing import MAX_CELLS, _parse_cached
from instructor.grading.rules.vocabulary import GRADIENT_HELPERS, PROHIBITIVE
from instructor.notebooks import MARKER_LINE
from instructor.notebooks import grade_id as graded_id
from instructor.plugins.install_cell import install_cell_source
from labs import discover_labs, solution_path, student_path


def read(path):
    return nbformat.read(path, as_version=4)


def ruled_source(lab: str):
    """The lab's source notebook, with the rules its solution cells declare."""
    return read(solution_path(lab))


@pytest.fixture(scope="module")
def lab3():
    return ruled_source(LAB), read(student_path(LAB))


def position(nb, grade_id: str) -> int:
    """The index of the cell ``grade_id`` in ``nb``."""
    return next(i for i, c in enumerate(nb.cells) if graded_id(c) == grade_id)


def prohibitive_functions(source) -> set[str]:
    """The graded functions of ``source`` with a rule that forbids something."""
    return {name for name, rules in rules_of(source).items()
            if any(rule in PROHIBITIVE for rule in rules)}


def added(nb, *sources: str, at: int | None = None):
    """A copy of ``nb`` with code cells the student added (at the end by default)."""
    nb = copy.deepcopy(nb)
    at = len(nb.cells) if at is None else at
    nb.cells[at:at] = [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


def replaced(nb, grade_id: str, new_source: str):
    """A copy of ``nb`` whose cell ``grade_id`` holds ``new_source``."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if graded_id(cell) == grade_id:
            cell.source = new_source
    return nb


def line_of(source: str, marker: str) -> int:
    return next(n for n, text in enumerate(source.splitlines(), 1) if marker in text)


# -------------------------------------------------------------------- the by-hand catalogue

def test_the_catalogue_holds_enough_distinct_attacks_and_honest_styles():
    assert len(ATTACKS) >= 15 and len(HONEST) >= 8
    assert len({a.construct for a in ATTACKS.values()}) >= 15
    for name, entry in {**ATTACKS, **HONEST}.items():
        if entry.marker:
            assert entry.line() >= 1, name  # the marker is on a line of its cell


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_each_attack_breaks_the_rule_of_backward_at_the_right_construct_and_line(lab3, name):
    source, release = lab3
    entry = ATTACKS[name]
    violations, flags = review(source, submission(release, source, entry))
    where, line = cell_index(release, entry), entry.line()
    if entry.flag:
        assert any(f.code == entry.flag and f.resolved == entry.construct and f.index == where
                   and f.line == line for f in flags), flags
        return
    hits = [v for v in violations if v.function == "backward" and v.rule == "by_hand"
            and v.code == entry.code and v.resolved == entry.construct and v.index == where
            and v.line == line]
    assert hits, f"expected {entry.construct} at cell {where} line {line}, got {violations}"
    assert all(v.chain[:1] == ("backward",) if v.code == "forbidden" else v.chain == ()
               for v in hits)
    # nothing the attack did is blamed on another function, unless it could redefine any
    assert {v.function for v in violations if v.code != "unverifiable"} <= {"backward"}


def test_a_helper_in_another_cell_is_reported_with_the_call_chain(lab3):
    source, release = lab3
    entry = ATTACKS["helper_in_another_cell"]
    violations = check_rules(source, submission(release, source, entry))
    hit = next(v for v in violations if v.resolved == "Tensor.backward")
    assert hit.chain == ("backward", "_grads_of") and hit.cell is None
    assert hit.construct == "loss.backward" and hit.family == "autograd"


def test_aliases_name_the_construct_as_written_and_as_resolved(lab3):
    source, release = lab3
    entry = ATTACKS["alias_from_import"]
    violations = check_rules(source, submission(release, source, entry))
    hit = next(v for v in violations if v.resolved == "torch.autograd.grad")
    assert (hit.construct, hit.cell, hit.chain) == ("A.grad", "backward", ("backward",))


@pytest.mark.parametrize("name", sorted(HONEST))
def test_honest_styles_carry_no_violation_and_no_flag(lab3, name):
    source, release = lab3
    violations, flags = review(source, submission(release, source, HONEST[name]))
    assert violations == [] and flags == []


# the solution cells a student's backward may use, run before it as a kernel would
SOLUTION_CELLS = ("forward", "loss_accuracy", "softmax_jacobian", "cross_entropy_grad",
                  "output_error")


def _namespace(source_nb) -> dict:
    """A namespace with the notebook's setup and the solution's functions that come before
    backward, as a kernel would have it when the student's backward cell runs."""
    namespace = {"__name__": "__main__"}
    exec("import torch\nimport torch.nn.functional as F\nimport lab_utils\n"
         "device = torch.device('cpu')\n", namespace)
    for cell in source_nb.cells:
        if graded_id(cell) in SOLUTION_CELLS:
            exec(MARKER_LINE.sub("", cell.source), namespace)
    return namespace


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")
@pytest.mark.parametrize("name", sorted(n for n, e in {**ATTACKS, **HONEST}.items() if e.runs))
def test_each_catalogue_entry_really_computes_the_gradients(lab3, name):
    """The attacks are real (they get every value Lab 3's backward returns right, the
    per-sample steps and the parameter gradients, just not by hand) and the honest styles are
    correct solutions: both pass the lab's own step-by-step check."""
    source, _ = lab3
    entry: Submission = {**ATTACKS, **HONEST}[name]
    namespace = _namespace(source)
    for cell in (*entry.extra, entry.backward, *entry.after):
        exec(cell, namespace)
    g = torch.Generator().manual_seed(5)
    params = {"Wh": torch.randn(4, 2, generator=g), "bh": torch.randn(4, 1, generator=g) * 0.1,
              "Wy": torch.randn(3, 4, generator=g), "by": torch.randn(3, 1, generator=g) * 0.1}
    X = torch.randn(6, 2, generator=g)
    Y = torch.nn.functional.one_hot(torch.randint(0, 3, (6,), generator=g), 3).float()
    with torch.no_grad():
        outputs = namespace["forward"](params, X)
    grads = namespace["backward"](params, outputs, Y)
    reference = lab_utils.backward_reference(params, X, Y)
    assert set(reference) == {"delta_y", "grad_h", "delta_h", "Wh", "bh", "Wy", "by"}
    for key, want in reference.items():
        assert key in grads, f"{name} returns no {key!r}"
        torch.testing.assert_close(grads[key].detach(), want, rtol=1e-4, atol=1e-5)
    lab_utils.check_backward_steps({k: v.detach() for k, v in grads.items()}, params, X, Y,
                                   verbose=False)


@pytest.mark.parametrize("setup, construct, resolved", [
    ("import torch as t", "t.autograd.grad", "torch.autograd.grad"),
    ("from torch import autograd as A", "A.grad", "torch.autograd.grad"),
    ("from torch.autograd import grad as g", "g", "torch.autograd.grad"),
    ("import torch.autograd.functional as AF", "AF.jacobian",
     "torch.autograd.functional.jacobian"),
    ("from torch.func import grad, vjp", "vjp", "torch.func.vjp"),
    ("import functorch", "functorch.vjp", "functorch.vjp"),
    ("g = torch.autograd.grad", "g", "torch.autograd.grad"),
    ("t = getattr(torch, 'autograd')", "t.grad", "torch.autograd.grad"),
    ("", "torch.__dict__['autograd'].grad", "torch.autograd.grad"),
    ("", "vars(torch)['autograd'].grad", "torch.autograd.grad"),
    ("import sys", "sys.modules['torch'].autograd.grad", "torch.autograd.grad"),
    ("", "__import__('torch').autograd.grad", "torch.autograd.grad"),
    ("import importlib as il", "il.import_module('torch.func').grad", "torch.func.grad"),
    ("", "globals()['torch'].autograd.grad", "torch.autograd.grad"),
    ("class Tools:\n    engine = torch.autograd", "Tools.engine.grad", "torch.autograd.grad"),
])
def test_names_are_resolved_through_every_kind_of_alias(lab3, setup, construct, resolved):
    source, release = lab3
    backward = f"def backward(params, outputs, Y):\n    return {construct}\n"
    correct = filled(release, source)
    nb = replaced(added(correct, setup, at=position(correct, "backward")), "backward", backward)
    violations = check_rules(source, nb)
    assert any((v.construct, v.resolved, v.cell, v.line) == (construct, resolved, "backward", 2)
               for v in violations), violations


def test_scopes_decide_what_a_name_means(lab3):
    """A local that shadows a global alias is harmless; a lambda's parameter does not hide
    the global from the code around it."""
    source, release = lab3
    correct = filled(release, source)
    correct = added(correct, "g = torch.autograd.grad", at=position(correct, "backward"))
    honest = HONEST["matmul_operator"].backward.replace(
        "    B = Y.shape[0]\n", "    g = Y.shape[0]\n    B = g\n")
    assert "g = Y.shape[0]" in honest
    assert check_rules(source, replaced(correct, "backward", honest)) == []
    sneaky = ("def backward(params, outputs, Y):\n    ignore = (lambda g: g)(0)\n"
              "    return g\n")
    violations = check_rules(source, replaced(correct, "backward", sneaky))
    assert [(v.construct, v.line) for v in violations] == [("g", 3)]


# ------------------------------------------------------------------ every lab's own notebooks

@pytest.mark.parametrize("lab", discover_labs())
def test_solution_and_blank_notebooks_give_no_violation_and_no_flag(lab):
    source = ruled_source(lab)
    assert rules_of(source), f"{lab} declares no rules"
    release = read(student_path(lab))
    for name, nb in [("solution", filled(release, source)), ("blank", release),
                     ("source", source)]:
        violations, flags = review(source, nb)
        assert violations == [], f"{lab} {name}: {violations}"
        assert flags == [], f"{lab} {name}: {flags}"


def test_a_whole_notebook_is_checked_well_under_100_ms(lab3):
    """Processor time, the best of five fresh checks (the machines the suite runs on are
    shared, so wall-clock time says more about the neighbours than about the checker)."""
    source, release = lab3
    submitted = filled(release, source)
    review(source, submitted)
    seconds = []
    for _ in range(5):
        _parse_cached.cache_clear()  # a fresh submission: nothing parsed yet
        start = time.process_time()
        review(source, submitted)
        seconds.append(time.process_time() - start)
    assert min(seconds) < 0.1, f"review took {min(seconds) * 1e3:.0f} ms at best"


@pytest.mark.parametrize("lab, function, helper, resolved", [
    ("lab1_chain_rule", "affine_jacobians", "affine_reference",
     "torch.autograd.functional.jacobian"),
    ("lab2_dynamic_programming", "adjoints_tab", "torch_adjoints", "Tensor.backward"),
    (LAB, "softmax_jacobian", "_reference_softmax_jacobian",
     "torch.autograd.functional.jacobian"),
    (LAB, "cross_entropy_grad", "_reference_cross_entropy_grad", "lab_utils.autograd_gradients"),
    (LAB, "backward", "_reference_backward", "lab_utils.backward_reference"),
])
def test_a_ruled_function_that_calls_the_tests_own_reference_breaks_its_rule(
        lab, function, helper, resolved):
    """Locked cells define autograd references for the tests; calling one from a by-hand
    function is caught, with the locked cell read from the source."""
    source = ruled_source(lab)
    cheat = {
        "affine_jacobians": "def affine_jacobians(W, x, b):\n"
                            "    return affine_reference(W, x, b)\n",
        "adjoints_tab": "def adjoints_tab(graph, counter=None):\n"
                        "    spec = [(n.name, n.op, n.parents) for n in graph]\n"
                        "    inputs = {n.name: n.value for n in graph if n.op == 'input'}\n"
                        "    adjoints = torch_adjoints(spec, inputs)\n"
                        "    return {k: float(v) for k, v in adjoints.items()}\n",
        "softmax_jacobian": "def softmax_jacobian(yhat):\n"
                            "    return _reference_softmax_jacobian(yhat)\n",
        "cross_entropy_grad": "def cross_entropy_grad(yhat, y):\n"
                              "    return _reference_cross_entropy_grad(yhat, y)\n",
        "backward": "def backward(params, outputs, Y):\n"
                    "    return _reference_backward(params, outputs, Y)\n",
    }[function]
    nb = replaced(filled(read(student_path(lab)), source), function, cheat)
    violations = check_rules(source, nb)
    assert any(v.function == function and v.chain == (function, helper)
               and v.resolved == resolved for v in violations), violations


# ------------------------------------------------------------------------- the other rules

FORWARD = '''def forward(params, X):
    htilde = X @ params["Wh"].T + params["bh"].T
    h = torch.tanh(htilde)
    ytilde = h @ params["Wy"].T + params["by"].T
    yhat = {softmax}
    return {{"X": X, "htilde": htilde, "h": h, "ytilde": ytilde, "yhat": yhat}}
'''


@pytest.mark.parametrize("softmax, resolved", [
    ("F.softmax(ytilde, dim=1)", "torch.nn.functional.softmax"),
    ("torch.softmax(ytilde, 1)", "torch.softmax"),
    ("ytilde.softmax(dim=1)", "Tensor.softmax"),
    ("torch.nn.Softmax(dim=1)(ytilde)", "torch.nn.Softmax"),
    ("torch.exp(F.log_softmax(ytilde, dim=1))", "torch.nn.functional.log_softmax"),
])
def test_own_softmax_forbids_a_library_softmax(lab3, softmax, resolved):
    source, release = lab3
    nb = replaced(filled(release, source), "forward", FORWARD.format(softmax=softmax))
    violations = check_rules(source, nb)
    assert [(v.function, v.rule, v.resolved, v.cell, v.line) for v in violations] == [
        ("forward", "own_softmax", resolved, "forward", 5)]


def test_own_softmax_follows_a_call_into_a_locked_test_helper(lab3):
    """The locked helpers cell defines _reference_forward with torch.softmax: calling it from
    forward is caught there, in the locked cell read from the source, at that cell's place in
    the submission. A second definition of the name in a student's cell counts as well."""
    source, release = lab3
    nb = replaced(filled(release, source), "forward",
                  FORWARD.format(softmax="_reference_forward(params, X)['yhat']"))
    helpers = next(c for c in source.cells if graded_id(c) == "test_helpers")
    assert helpers.metadata["nbgrader"]["locked"]
    in_helpers = ("forward", "torch.softmax", "test_helpers", position(nb, "test_helpers"),
                  ("forward", "_reference_forward"),
                  line_of(helpers.source, '"yhat": torch.softmax('))
    assert [(v.function, v.resolved, v.cell, v.index, v.chain, v.line)
            for v in check_rules(source, nb)] == [in_helpers]
    mine = "def _reference_forward(params, X):\n    return {'yhat': F.softmax(X, dim=1)}\n"
    nb = added(nb, mine, at=position(nb, "forward"))
    assert sorted((v.resolved, v.cell, v.index, v.chain, v.line)
                  for v in check_rules(source, nb)) == sorted([
        in_helpers[1:],
        ("torch.nn.functional.softmax", None, position(nb, "forward") - 1,
         ("forward", "_reference_forward"), 2)])


def test_uses_autograd_needs_a_gradient_computation_but_not_in_the_blank_stub(lab3):
    source, release = lab3
    by_hand = '''def autograd_step(params, X, Y, eta):
    outputs = forward(params, X)
    loss, _ = loss_accuracy(outputs["yhat"], Y)
    with torch.no_grad():
        sgd(params, backward(params, outputs, Y), eta)
    return loss.item()
'''
    nb = replaced(filled(release, source), "autograd_step", by_hand)
    violations = check_rules(source, nb)
    assert [(v.function, v.code, v.line) for v in violations] == [
        ("autograd_step", "missing_autograd", 1)]
    assert check_rules(source, release) == []
    helper = added(replaced(filled(release, source), "autograd_step", by_hand.replace(
        "sgd(params, backward(params, outputs, Y), eta)", "_update(params, loss, eta)")),
        "def _update(params, loss, eta):\n    loss.backward()\n    for p in params.values():\n"
        "        p -= eta * p.grad\n        p.grad.zero_()\n",
        at=position(release, "autograd_step"))
    assert check_rules(source, helper) == []  # gradients from a helper of its own count


TRAIN_MINIBATCH = """def train_minibatch(params, X, Y, eta, batch_size, epochs, generator):
    losses = []
    for _ in range(epochs):
        order = torch.randperm(X.shape[0], generator=generator).to(X.device)
        for start in range(0, X.shape[0], batch_size):
            rows = order[start:start + batch_size]
            outputs = forward(params, X[rows])
            loss, _ = loss_accuracy(outputs["yhat"], Y[rows])
            sgd(params, backward(params, outputs, Y[rows]), eta)
            losses.append(float(loss))
    return losses
"""


def test_a_ruled_function_may_call_another_graded_function_but_not_autograd_step(lab3):
    """forward has no by_hand rule, so backward's call to it is followed and forward's code
    judged by by_hand too (it passes); autograd_step has no by_hand rule either, so a backward
    or a train_minibatch that calls it is charged for the autograd inside it."""
    source, release = lab3
    calls_forward = HONEST["matmul_operator"].backward.replace(
        'delta_y = outputs["yhat"] - Y', 'delta_y = forward(params, outputs["X"])["yhat"] - Y')
    assert "forward(params" in calls_forward
    nb = replaced(filled(release, source), "backward", calls_forward)
    assert check_rules(source, nb) == []
    cheat = ("def backward(params, outputs, Y):\n"
             "    copy = {k: v.clone().requires_grad_(True) for k, v in params.items()}\n"
             "    autograd_step(copy, outputs['X'], Y, 0.0)\n"
             "    return {k: v.grad for k, v in copy.items()}\n")
    violations = check_rules(source, replaced(filled(release, source), "backward", cheat))
    assert ("backward", ("backward", "autograd_step"), "Tensor.backward") in {
        (v.function, v.chain, v.resolved) for v in violations}
    steps_with_autograd = TRAIN_MINIBATCH.replace(
        '            outputs = forward(params, X[rows])\n'
        '            loss, _ = loss_accuracy(outputs["yhat"], Y[rows])\n'
        '            sgd(params, backward(params, outputs, Y[rows]), eta)\n'
        '            losses.append(float(loss))\n',
        '            losses.append(autograd_step(params, X[rows], Y[rows], eta))\n')
    assert "autograd_step" in steps_with_autograd and "sgd" not in steps_with_autograd
    nb = replaced(filled(release, source), "train_minibatch", steps_with_autograd)
    violations = check_rules(source, nb)
    assert {(v.function, v.chain, v.cell) for v in violations} == {
        ("train_minibatch", ("train_minibatch", "autograd_step"), "autograd_step")}
    assert "Tensor.backward" in {v.resolved for v in violations}


# graded functions with a cheat that breaks their own by_hand rule, and graded functions
# that call them (as the lab's solution does)
CHEATS = {
    "softmax_jacobian": ("def softmax_jacobian(yhat):\n"
                         "    return torch.autograd.functional.jacobian(\n"
                         "        lambda s: torch.softmax(s, dim=0), yhat.log())\n",
                         "output_error"),
    "cross_entropy_grad": ("def cross_entropy_grad(yhat, y):\n"
                           "    return lab_utils.autograd_gradients(\n"
                           "        lambda p: -(y * p.log()).sum(), yhat)\n",
                           "output_error"),
    "backward": (ATTACKS["alias_inside_the_function"].backward, "train_minibatch"),
    "sgd": ("def sgd(params, grads, eta):\n"
            "    for name, tensor in params.items():\n"
            "        tensor.grad = grads[name]\n"
            "    torch.optim.SGD(params.values(), lr=eta).step()\n",
            "train_minibatch"),
}


@pytest.mark.parametrize("cheated", sorted(CHEATS))
def test_a_graded_function_is_not_charged_for_another_judged_by_the_same_rule(lab3, cheated):
    """One cheat costs one function's points: output_error calls softmax_jacobian and
    cross_entropy_grad, train_minibatch calls backward and sgd, all by_hand; a cheat in a
    callee is a violation of the callee only."""
    source, release = lab3
    cheat, caller = CHEATS[cheated]
    assert rules_of(source)[caller] == rules_of(source)[cheated] == ("by_hand",)
    correct = filled(release, source)
    caller_cell = next(c for c in correct.cells if graded_id(c) == caller)
    assert re.search(rf"\b{cheated}\(", caller_cell.source)  # the solution calls it
    violations = check_rules(source, replaced(correct, cheated, cheat))
    assert violations and {(v.function, v.cell, v.chain[:1]) for v in violations} == {
        (cheated, cheated, (cheated,))}, violations


def test_a_helper_that_is_not_graded_is_charged_to_every_function_that_calls_it(lab3):
    """The helper is no graded function: backward and train_minibatch both reach it, and
    each is charged for it."""
    source, release = lab3
    helper = ATTACKS["executor"].extra[0]
    backward = ("def backward(params, outputs, Y):\n"
                "    return _autograd_grads(params, outputs, Y)\n")
    train = TRAIN_MINIBATCH.replace("backward(params, outputs, Y[rows])",
                                    "_autograd_grads(params, outputs, Y[rows])")
    assert "_autograd_grads" in train
    nb = replaced(replaced(filled(release, source), "backward", backward), "train_minibatch",
                  train)
    nb = added(nb, helper, at=position(nb, "backward"))
    violations = check_rules(source, nb)
    assert {(v.function, v.chain) for v in violations} == {
        ("backward", ("backward", "_autograd_grads")),
        ("train_minibatch", ("train_minibatch", "_autograd_grads"))}
    assert {v.index for v in violations} == {position(nb, "backward") - 1}


# ------------------------------------------------- Lab 4's own engine: .grad and .backward

ENGINE = '''class Value:
    """A scalar that remembers how it was computed."""

    def __init__(self, data, parents=()):
        self.data, self.grad, self._parents = data, 0.0, parents
        self._backward = lambda: None

    def __mul__(self, other):
        out = Value(self.data * other.data, (self, other))

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out

    def tanh(self):
        out = Value(math.tanh(self.data), (self,))

        def _backward():
            self.grad += (1 - out.data ** 2) * out.grad
        out._backward = _backward
        return out

    def backward(self):
        self.grad = 1.0
        for node in reversed(topological_order(self)):
            node._backward()
'''
ORDER = '''def topological_order(root):
    seen, order = set(), []

    def visit(node):
        if id(node) not in seen:
            seen.add(id(node))
            for parent in node._parents:
                visit(parent)
            order.append(node)
    visit(root)
    return order
'''


def _engine_lab(value_source: str = ENGINE, order_source: str = ORDER):
    """A small Lab 4 like source notebook whose own solution defines Value.grad and
    Value.backward."""
    cells = [authoring.markdown("# Engine", "intro"), authoring.code("import math", "setup"),
             authoring.solution(value_source, "value"),
             authoring.solution(order_source, "topological_order"),
             authoring.tests("a = Value(2.0) * Value(3.0)\na.backward()\nassert a.grad == 1.0",
                             "test_value", points=1)]
    nb = authoring.notebook(cells)
    for cell in nb.cells:
        if graded_id(cell) in ("value", "topological_order"):
            cell.metadata["kit"] = {"rules": ["by_hand", "no_torch"]}
    return nb


def test_an_engine_of_the_labs_own_makes_grad_and_backward_its_own():
    source = _engine_lab()
    assert rules_of(source) == {"Value": ("by_hand", "no_torch"),
                                "topological_order": ("by_hand", "no_torch")}
    assert review(source, source) == ([], [])


def test_in_an_engine_lab_torch_still_counts():
    source = _engine_lab()
    student = replaced(source, "value", ENGINE.replace(
        "math.tanh(self.data)", "__import__('torch').tanh(torch.tensor(self.data)).item()"))
    found = {(v.function, v.rule, v.resolved) for v in check_rules(source, student)}
    assert ("Value", "no_torch", "torch.tanh") in found
    assert ("Value", "by_hand", "builtins.__import__") in found
    student = replaced(source, "topological_order", "import torch\n\n\n" + ORDER.replace(
        "visit(root)", "visit(root)\n    torch.Tensor.backward(root.data)"))
    found = {(v.function, v.resolved) for v in check_rules(source, student)}
    assert ("topological_order", "torch.Tensor.backward") in found  # torch-qualified: counts


def test_a_student_class_cannot_make_backward_its_own_in_lab3(lab3):
    source, release = lab3
    cheat = ATTACKS["helper_in_another_cell"]
    decoy = "class Decoy:\n    grad = None\n\n    def backward(self):\n        pass\n"
    nb = added(submission(release, source, cheat), decoy, at=3)
    assert any(v.resolved == "Tensor.backward" for v in check_rules(source, nb))


# ----------------------------------------------------------------------------------- the scan

SUSPICIOUS = {  # name: (a cell the student adds, flag code, resolved, text on the flag's line)
    "sys_exit": ("import sys\nsys.exit(0)", "exit", "sys.exit", "exit("),
    "raise_system_exit": ("raise SystemExit(0)", "exit", "builtins.SystemExit", "raise"),
    "os_exit": ("import os\nos._exit(0)", "exit", "os._exit", "_exit"),
    "quit": ("quit()", "exit", "builtins.quit", "quit"),
    "kill": ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "exit", "os.kill",
             "kill"),
    "patch_torch": ("torch.allclose = lambda *a, **k: True", "patch", "torch.allclose",
                    "allclose"),
    "patch_tensor_method": ("torch.Tensor.__eq__ = lambda a, b: True", "patch",
                            "torch.Tensor.__eq__", "__eq__"),
    "patch_checker": ("lab_utils.check_mlp_gradients = print", "patch",
                      "lab_utils.check_mlp_gradients", "check_mlp"),
    "setattr_on_a_module": ("setattr(torch.testing, 'assert_close', print)", "patch",
                            "torch.testing", "setattr"),
    "computed_setattr": ("name = 'assert_' + 'close'\nsetattr(torch.testing, name, print)",
                         "dynamic_code", "builtins.setattr", "setattr"),
    "patch_builtins": ("import builtins\nbuiltins.isinstance = lambda *a: True", "patch",
                       "builtins.isinstance", "isinstance"),
    "builtins_namespace": ("__builtins__['len'] = lambda x: 0", "interpreter",
                           "__builtins__", "len"),
    "rebind_a_test_helper": ("def _difference(got, want, name):\n    return None", "rebind",
                             "_difference", "def"),
    "rebind_a_test_guard": ("import contextlib\n"
                            "without_autograd = lambda what: contextlib.nullcontext()",
                            "rebind", "lab_utils.testing.without_autograd", "without_autograd ="),
    "rebind_an_import": ("F = None", "rebind", "torch.nn.functional", "F ="),
    "exec": ("exec(open('helper.py').read())", "dynamic_code", "builtins.exec", "exec"),
    "eval": ("eval('1 + 1')", "dynamic_code", "builtins.eval", "eval"),
    "dunder_import": ("os = __import__('os')", "dynamic_code", "builtins.__import__",
                      "__import__"),
    "importlib": ("import importlib\nmath = importlib.import_module('math')", "dynamic_code",
                  "importlib.import_module", "import_module"),
    "globals_write": ("globals()['backward'] = print", "dynamic_code", "builtins.globals",
                      "globals"),
    "gc": ("import gc\nleaked = gc.get_objects()", "interpreter", "gc.get_objects",
           "get_objects"),
    "ctypes": ("import ctypes\nctypes.pythonapi.PyGILState_Ensure()", "interpreter",
               "ctypes.pythonapi.PyGILState_Ensure", "pythonapi"),
    "inspect": ("import inspect\nframe = inspect.currentframe()", "interpreter",
                "inspect.currentframe", "currentframe"),
    "getframe": ("import sys\ncaller = sys._getframe(1).f_globals", "interpreter",
                 "sys._getframe", "_getframe"),
    "settrace": ("import sys\nsys.settrace(None)", "interpreter", "sys.settrace", "settrace"),
    "sys_modules": ("import sys\nsys.modules['lab_utils'] = None", "interpreter",
                    "sys.modules", "sys.modules"),
    "code_object": ("f = lambda: 0\nf.__code__ = (lambda: 1).__code__", "interpreter",
                    "__code__", "f.__code__ ="),
    "function_globals": ("found = lab_utils.check_mlp_gradients.__globals__", "interpreter",
                         "lab_utils.check_mlp_gradients.__globals__", "__globals__"),
    "kit_module": ("import instructor.kernel_guard as guard", "kit",
                   "instructor.kernel_guard", "import"),
    "nbgrader": ("from nbgrader.api import Gradebook", "kit", "nbgrader.api.Gradebook",
                 "import"),
    "guard_name": ("_kit_guard.restore = print", "kit", "instructor.kernel_guard.restore",
                   "restore"),
    "ipython_events": ("get_ipython().events.register('post_run_cell', print)", "ipython",
                       "get_ipython().events.register", "events"),
    "custom_exc": ("get_ipython().set_custom_exc((AssertionError,), print)", "ipython",
                   "get_ipython().set_custom_exc", "set_custom_exc"),
    "excepthook": ("import sys\nsys.excepthook = print", "ipython", "sys.excepthook",
                   "excepthook"),
    "showtraceback": ("shell = get_ipython()\nshell.showtraceback = print", "ipython",
                      "get_ipython().showtraceback", "showtraceback"),
    "shell_escape": ("!pip install requests", "process", "get_ipython().system", "!pip"),
    "captured_shell": ("files = !ls ..", "process", "get_ipython().getoutput", "!ls"),
    "bash_magic": ("%%bash\nls ../submitted", "process", "%bash", "%%bash"),
    "subprocess": ("import subprocess\nsubprocess.run(['ls'])", "process", "subprocess.run",
                   "run("),
    "thread": ("import threading\nthreading.Thread(target=print).start()", "process",
               "threading.Thread", "Thread("),
    "os_system": ("import os\nos.system('ls')", "process", "os.system", "system("),
    "socket": ("import socket\nsocket.create_connection(('example.org', 80))", "network",
               "socket.create_connection", "create_connection"),
    "urllib": ("from urllib.request import urlopen\npage = urlopen('http://example.org')",
               "network", "urllib.request.urlopen", "urlopen("),
    "requests": ("import requests\nrequests.get('http://example.org')", "network",
                 "requests.get", "get("),
    "absolute_path": ("text = open('/etc/passwd').read()", "filesystem", "'/etc/passwd'",
                      "open"),
    "parent_path": ("text = open('../other/lab3.ipynb').read()", "filesystem",
                    "'../other/lab3.ipynb'", "open"),
    "home": ("from pathlib import Path\nhome = Path.home()", "filesystem",
             "pathlib.Path.home", "home()"),
    "gradebook": ("import sqlite3\nsqlite3.connect('gradebook.db')", "grading_files",
                  "'gradebook.db'", "connect"),
    "submitted_folder": ("import os\nos.listdir('submitted')", "grading_files",
                         "'submitted'", "listdir"),
    "solutions_folder": ("text = open('solutions/lab3_backprop_mlp/x.ipynb').read()",
                         "grading_files", "'solutions/lab3_backprop_mlp/x.ipynb'", "open"),
    "writefile": ("%%writefile helper.py\nprint(1)", "filesystem", "%writefile",
                  "%%writefile"),
    "run_magic": ("%run helper.py", "dynamic_code", "%run", "%run"),
    "unknown_module": ("import sneaky_helpers", "unknown_module", "sneaky_helpers", "import"),
    "syntax_error": ("def broken(:\n    pass", "syntax_error", "", "def broken"),
}


@pytest.fixture(scope="module")
def lab3_correct(lab3):
    source, release = lab3
    return source, filled(release, source)


@pytest.mark.parametrize("name", sorted(SUSPICIOUS))
def test_the_scan_flags_each_trick_with_the_right_code_and_line(lab3_correct, name):
    source, correct = lab3_correct
    cell, code_, resolved, marker = SUSPICIOUS[name]
    flags = scan(source, added(correct, cell))
    index, line = len(correct.cells), line_of(cell, marker)
    assert any((f.code, f.resolved, f.index, f.line) == (code_, resolved, index, line)
               for f in flags), flags
    assert all(f.index == index for f in flags), flags  # nothing else in the notebook


def test_autograd_outside_by_hand_functions_and_harmless_magics_carry_no_flag(lab3_correct):
    source, correct = lab3_correct
    honest = ["%matplotlib inline\n%config InlineBackend.figure_format = 'retina'\n"
              "%load_ext autoreload\n%autoreload 2",
              "%%time\nparams = init_params_autograd(2, 8, 2)\n"
              "loss, _ = loss_accuracy(forward(params, X_train)['yhat'], Y_train)\n"
              "loss.backward()\ngrads = torch.autograd.grad",
              "%timeit -n 1 -r 1 forward(demo_params, X_train)",
              "import numpy as np\nfrom IPython.display import display, Markdown\n"
              "display(Markdown(f'loss {float(loss):.3f} after {len(X_train)}/{750} rows'))",
              "try:\n    fit(4, steps=2)\nexcept KeyboardInterrupt:\n    pass",
              "import torch.nn.functional as F\nfrom tqdm import tqdm\nimport lab_utils"]
    assert review(source, added(correct, *honest)) == ([], [])


def test_cells_the_source_locks_are_restored_and_forged_locks_are_student_code(lab3_correct):
    source, correct = lab3_correct
    nb = copy.deepcopy(correct)
    setup = next(c for c in nb.cells if graded_id(c) == "setup")
    setup.source += "\nimport sys\nsys.exit(0)"  # nbgrader restores this cell: harmless
    assert scan(source, nb) == []
    forged = nbformat.v4.new_code_cell("import sys\nsys.exit(0)")
    forged.metadata["nbgrader"] = {"grade_id": "my_setup", "locked": True, "grade": False,
                                   "solution": False, "schema_version": 3}
    nb.cells.append(forged)
    assert [(f.code, f.cell) for f in scan(source, nb)] == [("exit", "my_setup")]


def test_the_install_cell_as_released_is_the_kits_whatever_source_it_names(lab3_correct):
    """The released notebook starts with the kit's install cell (pip in a subprocess when
    lab_utils is missing); exactly as released, with or without an instructor's pip source,
    it is not the student's code."""
    source, correct = lab3_correct
    install = correct.cells[0]
    assert install.metadata["kit"]["install_cell"] and graded_id(install) is None
    assert install.source == install_cell_source("")
    assert review(source, correct) == ([], [])
    nb = copy.deepcopy(correct)
    nb.cells[0].source = install_cell_source("git+https://example.org/kit.git@v1 --user")
    assert review(source, nb) == ([], [])


def _forged_install_cells(released: str) -> dict[str, str]:
    lines = released.split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith("LAB_UTILS_SOURCE = "))
    hidden = lines[at].replace('""', '"" or __import__("os").getcwd()', 1)
    return {"one line more": released + "\n# my notes",
            "one import more": released + "\nfrom torch.autograd import grad as _steps",
            "code on the source line": "\n".join(lines[:at] + [hidden] + lines[at + 1:])}


@pytest.mark.parametrize("forgery", ["one line more", "one import more",
                                     "code on the source line"])
def test_a_forged_install_cell_is_a_student_cell(lab3_correct, forgery):
    """Anything but the released code makes the cell the student's: its pip subprocess is
    flagged like any student's, and nothing else in the notebook is."""
    source, correct = lab3_correct
    nb = copy.deepcopy(correct)
    nb.cells[0].source = _forged_install_cells(correct.cells[0].source)[forgery]
    assert nb.cells[0].source.count("\n") - correct.cells[0].source.count("\n") <= 1
    flags = scan(source, nb)
    assert ("process", "subprocess.run", 0) in {(f.code, f.resolved, f.index) for f in flags}
    assert {f.index for f in flags} == {0}, flags


def test_what_a_forged_install_cell_defines_is_read(lab3_correct):
    """A by-hand function that uses a name the forged install cell imports is caught."""
    source, correct = lab3_correct
    nb = copy.deepcopy(correct)
    nb.cells[0].source = _forged_install_cells(correct.cells[0].source)["one import more"]
    backward = ATTACKS["alias_from_import"].backward.replace("A.grad(", "_steps(")
    assert "_steps(" in backward
    violations = check_rules(source, replaced(nb, "backward", backward))
    assert ("backward", "_steps", "torch.autograd.grad") in {
        (v.function, v.construct, v.resolved) for v in violations}


def test_ruled_code_in_a_markdown_answer_cell_does_not_run_and_is_not_read(lab3_correct):
    source, correct = lab3_correct
    nb = copy.deepcopy(correct)
    answer = next(c for c in nb.cells if graded_id(c) == "answer_batch_factor")
    answer.cell_type = "code"  # nbgrader turns it back into markdown before running
    answer.source = "import sys\nsys.exit(0)"
    answer.outputs, answer.execution_count = [], None
    assert scan(source, nb) == []


# ------------------------------------------------------------------------ hostile notebooks

HOSTILE = {  # name: (cell, flag code)
    "huge_cell": ("x = 1\n" * 30_000, "unreadable"),
    "deep_parentheses": ("(" * 5_000 + ")" * 5_000, "syntax_error"),
    "deep_unary": ("x = " + "-" * 90_000 + "1", "syntax_error"),
    "deep_lambdas": ("f = " + "lambda: " * 5_000 + "0", "syntax_error"),
    "long_sum": ("x = " + " + ".join(["1"] * 24_000), "unreadable"),
    "deep_attribute_chain": ("x = torch" + ".b" * 3_000, "unreadable"),
    "null_byte": ("x = 1\x00", "syntax_error"),
    "too_much_ipython": ("!ls\n" * 2_000, "unreadable"),
    "invalid_ipython": ("help ?? me", "syntax_error"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_cells_give_a_flag_quickly_and_never_crash(lab3_correct, name):
    source, correct = lab3_correct
    cell, code_ = HOSTILE[name]
    start = time.perf_counter()
    violations, flags = review(source, added(correct, cell))
    assert time.perf_counter() - start < 3
    assert [f.code for f in flags] == [code_], flags
    if code_ == "unreadable":  # it may run: every ruled function is unverifiable
        assert {v.function for v in violations} == prohibitive_functions(source)
        assert {v.code for v in violations} == {"unverifiable"}
    else:  # IPython cannot run it either: it defines nothing
        assert violations == []


@pytest.mark.parametrize("limit", [1_000, 100_000])
@pytest.mark.parametrize("name", ["long_sum", "deep_attribute_chain"])
def test_a_deep_cell_is_unreadable_whatever_the_recursion_limit(lab3_correct, name, limit):
    """Whether Python parses a deep cell depends on the process's recursion limit (a test run
    or a grader may raise it); the verdict does not."""
    source, correct = lab3_correct
    before = sys.getrecursionlimit()
    _parse_cached.cache_clear()
    try:
        sys.setrecursionlimit(limit)
        _, flags = review(source, added(correct, HOSTILE[name][0]))
    finally:
        sys.setrecursionlimit(before)
        _parse_cached.cache_clear()
    assert [f.code for f in flags] == ["unreadable"], flags

def test_a_notebook_with_too_many_cells_or_junk_cells_is_bounded(lab3_correct):
    """The checker reads the first MAX_CELLS student cells (code cells that are neither locked
    in the source nor the kit's install cell) and reports the rest in one flag, on the first
    cell it did not read."""
    source, correct = lab3_correct
    nb = added(correct, *["x = 1"] * 5_000)
    nb.cells += ["junk", None, {"cell_type": "code", "source": 42, "metadata": []}]
    assert correct.cells[0].metadata["kit"]["install_cell"]  # released: not counted
    locked = {graded_id(c) for c in source.cells if c.metadata.get("nbgrader", {}).get("locked")}
    student = [i for i, c in enumerate(nb.cells) if isinstance(c, dict)
               and c.get("cell_type") == "code" and isinstance(c.get("source"), str)
               and graded_id(c) not in locked and i != 0]
    start = time.perf_counter()
    flags = scan(source, nb)
    assert time.perf_counter() - start < 3
    rest = len(student) - MAX_CELLS
    assert [(f.code, f.construct, f.index) for f in flags] == [
        ("unreadable", f"this and {rest - 1} more cells are beyond the notebook's size limit",
         student[MAX_CELLS]),
        ("unreadable", "source is not text", len(nb.cells) - 1)]


def test_arguments_that_are_not_notebooks_are_refused_by_name(lab3):
    source, release = lab3
    with pytest.raises(TypeError, match=r"submitted_nb: expected a notebook .* got str"):
        check_rules(source, "junk")
    with pytest.raises(TypeError, match=r"source_nb: expected a notebook .* got dict"):
        scan({"cells": 3}, release)


def test_rules_of_reads_the_source_only_and_refuses_malformed_rules(lab3):
    source, release = lab3
    assert rules_of(source) == {name: tuple(r) for name, r in LAB3_RULES.items()}
    forged = with_rules(release, {"backward": []})  # a submission cannot change its rules
    assert check_rules(source, forged) == []
    bad = with_rules(source, {"backward": ["by_hand", "no_autograd"]})
    with pytest.raises(ValueError, match=r"cell 'backward': metadata kit.rules: expected a "
                                         r"list of rules among .*no_autograd"):
        rules_of(bad)
    locked = with_rules(source, {"setup": ["by_hand"]})
    with pytest.raises(ValueError, match="expected on a solution cell"):
        rules_of(locked)


# lab_utils' modules that compute or compare gradients (with autograd, or finite differences)
GRADIENT_MODULES = ("lab_utils.checking", "lab_utils.mlp", "lab_utils.diagnosis",
                    "lab_utils.backward_steps", "lab_utils.engine_graphs",
                    "lab_utils.engine_check")


def test_gradient_helpers_follow_lab_utils():
    """Every lab_utils module that computes or compares gradients is forbidden to by-hand
    code, whether a name is imported from the module itself or from lab_utils."""
    exported = {name for name in lab_utils.__all__
                if getattr(getattr(lab_utils, name), "__module__", "") in GRADIENT_MODULES}
    assert {"backward_reference", "mlp_reference_gradients", "check_backward"} <= exported
    assert exported <= GRADIENT_HELPER_NAMES
    for name in exported:
        assert rule_family("by_hand", f"lab_utils.{name}") == GRADIENT_HELPERS, name
    for module in GRADIENT_MODULES:
        assert rule_family("by_hand", f"{module}.anything") == GRADIENT_HELPERS, module


def test_a_gradient_helper_imported_from_its_own_module_breaks_by_hand():
    """Lab 1's d_tanh from the autograd references that Lab 4's checks use."""
    lab = "lab1_chain_rule"
    source = ruled_source(lab)
    cheat = ("from lab_utils.engine_graphs import local_rule_reference\n\n\n"
             "def d_tanh(u):\n"
             "    return torch.tensor(local_rule_reference('tanh', [(float(v),) for v in u]))\n")
    nb = replaced(filled(read(student_path(lab)), source), "d_tanh", cheat)
    assert [(v.function, v.resolved, v.family, v.line) for v in check_rules(source, nb)] == [
        ("d_tanh", "lab_utils.engine_graphs.local_rule_reference", GRADIENT_HELPERS, 5)]


def test_violations_and_flags_are_plain_frozen_data():
    violation = Violation("backward", "by_hand", "forbidden", "A.grad", "torch.autograd.grad",
                          "autograd", "backward", 21, 4, ("backward",))
    with pytest.raises(AttributeError):
        violation.line = 5
    assert hash(violation) == hash(copy.copy(violation))
    assert Flag("exit", "sys.exit(0)", "sys.exit", None, 40, 2).cell is None


# --------------------------------------------------------------------------- words for people

def test_rule_words_name_the_function_the_construct_and_the_line(lab3):
    source, release = lab3
    entry = ATTACKS["alias_from_import"]
    violations = check_rules(source, submission(release, source, entry))
    sentence = rule_words.describe(next(v for v in violations if v.construct == "A.grad"))
    assert sentence == (f"`backward` must be written by hand, but line {entry.line()} of cell "
                        "`backward` uses `A.grad` (`torch.autograd.grad`, autograd).")
    chained = check_rules(source, submission(release, source,
                                             ATTACKS["helper_in_another_cell"]))
    sentence = rule_words.describe(next(v for v in chained if v.construct == "loss.backward"))
    assert re.fullmatch(r"`backward` must be written by hand, but it calls `_grads_of`, and "
                        r"line 2 of cell \d+ uses `loss.backward` \(`Tensor.backward`, "
                        r"autograd\)\.", sentence), sentence
    flag = Flag("exit", "sys.exit(0)", "sys.exit", None, 40, 2)
    assert rule_words.describe(flag) == ("Line 2 of cell 41 exits the kernel: `sys.exit(0)` "
                                         "(`sys.exit`).")


def test_rule_words_cover_every_code_and_family():
    for code_ in ("forbidden", "missing_autograd", "unverifiable"):
        for rule in ("by_hand", "own_softmax", "uses_autograd", "no_torch"):
            text = rule_words.describe(Violation("f", rule, code_, "x", "y", "autograd",
                                                 None, 0, 1, ("f",)))
            assert text.startswith("`f`") and "cell 1" in text and text.endswith(".")
    for family in rule_words.FLAG_WORDS:
        text = rule_words.describe(Flag(family, "x", "y", "c", 0, 3))
        assert text.startswith("Line 3 of cell `c` ") and text.endswith(".")
    with pytest.raises(TypeError, match="item: expected a Violation or a Flag, got str"):
        rule_words.describe("x")


def test_the_module_stays_pure_and_cheap_to_import():
    import subprocess
    import sys
    code_ = ("import sys, instructor.grading.rules\n"
             "heavy = [m for m in ('torch', 'IPython', 'matplotlib', 'nbgrader') "
             "if m in sys.modules]\nprint(heavy)")
    out = subprocess.run([sys.executable, "-c", code_], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
    assert rules_module.check_rules.__module__ == "instructor.grading.rules"
