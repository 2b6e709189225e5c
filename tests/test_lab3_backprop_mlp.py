"""Lab 3, specified by how it judges students: each graded function costs only its own points,
correct solutions in other styles pass, the classic mistakes fail the right tests with the
right message, and the notebook keeps the kit's conventions (rules declared per function, test
helpers once, short test cells that the grader can replay, questions in locked cells with a
model answer and a rubric, a hint under every graded function, a core that fits two hours).

The behavioural tests run the notebook in this process, without a kernel: the locked context
cells (setup, data, test helpers), every solution cell (or a variant of it) and every test
cell, each test cell's verdict recorded. The demo cells (plots, long trainings) are skipped.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import re
import time

import nbformat
import pytest
import torch

from labs import solution_path

LAB = "lab3_backprop_mlp"
MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n", re.M)
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\n?", re.S)
NOTEBOOK = nbformat.read(solution_path(LAB), as_version=4)


def nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_test(cell) -> bool:
    return cell.cell_type == "code" and nbgrader(cell).get("grade") and not nbgrader(cell).get(
        "solution")


def is_solution(cell) -> bool:
    return cell.cell_type == "code" and bool(nbgrader(cell).get("solution"))


def is_context(cell) -> bool:
    """A locked code cell that is not a test cell: what the grader runs before replaying."""
    return (cell.cell_type == "code" and nbgrader(cell).get("locked")
            and not nbgrader(cell).get("grade"))


SOLUTIONS = {nbgrader(c)["grade_id"]: MARKER.sub("", c.source) for c in NOTEBOOK.cells
             if is_solution(c)}
GRADED = [name for name in SOLUTIONS if name != "fast_step"]
TESTS = [nbgrader(c)["grade_id"] for c in NOTEBOOK.cells if is_test(c)]


def run_graded(hidden: bool = True, **variants: str) -> dict[str, str | None]:
    """Run the context, solution and test cells in a fresh namespace, the solution cells named
    in ``variants`` replaced by the given source, and the hidden tests left out unless
    ``hidden``; per test cell, None if it passed, else "ErrorType: message"."""
    threads = torch.get_num_threads()
    namespace: dict = {"__name__": "__lab__"}
    verdicts: dict[str, str | None] = {}
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            for cell in NOTEBOOK.cells:
                grade_id = nbgrader(cell).get("grade_id")
                if is_context(cell):
                    exec(compile(cell.source, grade_id, "exec"), namespace)
                elif is_solution(cell):
                    exec(compile(variants.get(grade_id, SOLUTIONS[grade_id]), grade_id, "exec"),
                         namespace)
                elif is_test(cell):
                    source = cell.source if hidden else HIDDEN.sub("", cell.source)
                    try:
                        exec(compile(source, grade_id, "exec"), namespace)
                        verdicts[grade_id] = None
                    except Exception as error:  # a failing test cell, as nbgrader sees it
                        verdicts[grade_id] = f"{type(error).__name__}: {error}"
    finally:
        torch.set_num_threads(threads)
    return verdicts


def failing(verdicts: dict[str, str | None]) -> set[str]:
    return {name for name, verdict in verdicts.items() if verdict is not None}


def cells_testing(*functions: str) -> set[str]:
    """The test cells of the given graded functions (named test_<function>[_hidden])."""
    return {t for t in TESTS for f in functions if t in (f"test_{f}", f"test_{f}_hidden")}


@pytest.fixture(scope="module")
def solution_verdicts():
    return run_graded()


def test_the_solution_passes_every_test_cell(solution_verdicts):
    assert set(solution_verdicts) == set(TESTS)
    assert not failing(solution_verdicts), solution_verdicts


def test_every_graded_function_has_its_own_tests():
    assert {t.removeprefix("test_").removesuffix("_hidden") for t in TESTS} == set(GRADED)


# --- one mistake costs its own points ---------------------------------------------------------

BLANK = "def {name}(*args, **kwargs):\n    raise NotImplementedError()\n"


@pytest.mark.slow
@pytest.mark.parametrize("function", GRADED)
def test_a_missing_function_costs_only_its_own_tests(function):
    """With one function left blank, exactly its own test cells fail: later functions are tested
    with reference versions of the earlier ones."""
    verdicts = run_graded(**{function: BLANK.format(name=function)})
    assert failing(verdicts) == cells_testing(function), verdicts


# --- the classic mistakes fail their own tests, with the right message --------------------------

def solution_with(function: str, old: str, new: str) -> dict[str, str]:
    source = SOLUTIONS[function]
    assert old in source, f"{old!r} not in the solution of {function}"
    return {function: source.replace(old, new)}


MISTAKES = {
    # name: (variant, the tests that must fail, words the first failure must contain)
    "backward without the tanh derivative": (
        solution_with("backward", "grad_h * (1 - outputs[\"h\"] ** 2)", "grad_h"),
        cells_testing("backward"), "∂ℓ/∂h is right but δʰ is wrong: the tanh derivative is missing"),
    "backward with y - yhat": (
        solution_with("backward", 'outputs["yhat"] - Y', 'Y - outputs["yhat"]'),
        cells_testing("backward"), "δʸ is wrong: the sign is reversed"),
    "backward with dl/dh already times tanh'": (
        solution_with("backward", "grad_h = delta_y @ params[\"Wy\"]",
                      "grad_h = (delta_y @ params[\"Wy\"]) * (1 - outputs[\"h\"] ** 2)"),
        cells_testing("backward"), "δʸ is right but ∂ℓ/∂h is wrong: it already includes the tanh"),
    "backward summed, not averaged": (
        solution_with("backward", "B = Y.shape[0]", "B = 1"),
        cells_testing("backward"), "the mistake is in the parameter gradients"),
    "backward through autograd": (
        {"backward": "def backward(params, outputs, Y):\n"
                     "    leaves = {k: v.detach().requires_grad_() for k, v in params.items()}\n"
                     "    import lab_utils\n"
                     "    return lab_utils.backward_reference(leaves, outputs['X'], Y)\n"},
        cells_testing("backward"), "backward() used autograd"),
    "forward with torch's softmax": (
        solution_with("forward", "exp / exp.sum(dim=1, keepdim=True)",
                      "torch.softmax(ytilde, dim=1)"),
        cells_testing("forward"), "forward() called torch's softmax: write the softmax yourself"),
    "forward with F.softmax": (
        solution_with("forward", "exp / exp.sum(dim=1, keepdim=True)", "F.softmax(ytilde, 1)"),
        cells_testing("forward"), "write the softmax yourself"),
    "forward with Tensor.log_softmax": (
        solution_with("forward", "exp / exp.sum(dim=1, keepdim=True)",
                      "ytilde.log_softmax(dim=1).exp()"),
        cells_testing("forward"), "called torch's log_softmax"),
    "forward with an unstable softmax": (
        solution_with("forward", "ytilde - ytilde.amax(dim=1, keepdim=True)", "ytilde"),
        cells_testing("forward"), "NaN or inf for large scores"),
    "loss summed over the batch": (
        solution_with("loss_accuracy", ".sum(dim=1).mean()", ".sum()"),
        cells_testing("loss_accuracy"), "mean cross-entropy on 6 rows and 2 classes: expected"),
    "init_params drawing Wy first": (
        solution_with("init_params", "    Wh = torch.randn(nh, nx) * 0.3\n    Wy = torch.randn(ny, nh) * 0.3",
                      "    Wy = torch.randn(ny, nh) * 0.3\n    Wh = torch.randn(nh, nx) * 0.3"),
        cells_testing("init_params"), "Wh before Wy"),
    "init_params drawing from another generator (as a GPU's would)": (
        solution_with("init_params", "Wh = torch.randn(nh, nx) * 0.3",
                      "Wh = torch.randn(nh, nx, generator=torch.Generator().manual_seed(9)) * 0.3"),
        cells_testing("init_params"), "a GPU's generator gives other numbers for the same seed"),
    "init_params with the wrong scale": (
        solution_with("init_params", "Wh = torch.randn(nh, nx) * 0.3", "Wh = torch.randn(nh, nx)"),
        cells_testing("init_params"), "it is torch.randn(...) * 1, expected * 0.3"),
    "softmax_jacobian without the diagonal": (
        solution_with("softmax_jacobian", "torch.diag(yhat) - ", "-"),
        cells_testing("softmax_jacobian"), "the Jacobian for ny=2 is wrong"),
    "cross_entropy_grad without the minus": (
        solution_with("cross_entropy_grad", "-y / yhat", "y / yhat"),
        cells_testing("cross_entropy_grad"), "dl/d yhat (one-hot y) is wrong"),
    "sgd looping over grads": (
        solution_with("sgd", "for name in params:", "for name in grads:"),
        cells_testing("sgd"), "grads also holds backward()'s per-sample steps"),
    "sgd adding the gradient": (
        solution_with("sgd", "-= eta", "+= eta"),
        cells_testing("sgd"), "after sgd(eta=0.5) is wrong"),
    "train_minibatch dropping the partial last batch": (
        solution_with("train_minibatch", "range(0, X.shape[0], batch_size)",
                      "range(0, X.shape[0] - batch_size + 1, batch_size)"),
        cells_testing("train_minibatch"), "expected 6 steps (batches of [3, 3, 1] each epoch), got 4"),
    "train_minibatch shuffling once for all epochs": (
        {"train_minibatch": SOLUTIONS["train_minibatch"].replace(
            "    for _ in range(epochs):\n        order = torch.randperm(X.shape[0], "
            "generator=generator).to(X.device)\n",
            "    order = torch.randperm(X.shape[0], generator=generator).to(X.device)\n"
            "    for _ in range(epochs):\n")},
        cells_testing("train_minibatch"), "epoch 2 used the batches"),
    "train_minibatch drawing batches with replacement": (
        solution_with("train_minibatch", "rows = order[start:start + batch_size]",
                      "rows = torch.randint(0, X.shape[0], (min(batch_size, X.shape[0] - start),),"
                      " generator=generator)"),
        cells_testing("train_minibatch"), "each of the 7 samples should be used exactly once"),
    "train_minibatch ignoring the generator": (
        solution_with("train_minibatch", "generator=generator)", "generator=torch.Generator())"),
        cells_testing("train_minibatch"), "draw one permutation per epoch from the generator"),
    "train_minibatch recording the full-data loss": (
        solution_with("train_minibatch", 'loss, _ = loss_accuracy(outputs["yhat"], Y[rows])',
                      'loss, _ = loss_accuracy(forward(params, X)["yhat"], Y)'),
        cells_testing("train_minibatch"), "is the mean loss of no batch of at most 3 rows"),
    "autograd_step calling the hand-written backward": (
        {"autograd_step": "def autograd_step(params, X, Y, eta):\n"
                          "    with torch.no_grad():\n"
                          "        outputs = forward(params, X)\n"
                          "        loss, _ = loss_accuracy(outputs['yhat'], Y)\n"
                          "        grads = backward(params, outputs, Y)\n"
                          "        for k, v in params.items():\n"
                          "            v -= eta * grads[k]\n"
                          "    return float(loss)\n"},
        cells_testing("autograd_step"), "are the gradients autograd's, from loss.backward()?"),
    "autograd_step without zero_()": (
        solution_with("autograd_step", "            tensor.grad.zero_()\n", ""),
        cells_testing("autograd_step"), "a forgotten .grad.zero_()?"),
    "autograd_step updating outside no_grad": (
        {"autograd_step": "def autograd_step(params, X, Y, eta):\n"
                          "    loss, _ = loss_accuracy(forward(params, X)['yhat'], Y)\n"
                          "    loss.backward()\n"
                          "    for k in params:\n"
                          "        grad = params[k].grad\n"
                          "        params[k] = params[k] - eta * grad\n"
                          "    return loss.item()\n"},
        cells_testing("autograd_step"), "is no longer a leaf requiring grad"),
    "init_params_autograd returning non-leaves": (
        {"init_params_autograd": "def init_params_autograd(nx, nh, ny):\n"
                                 "    return {k: v.clone().requires_grad_(True) * 1.0\n"
                                 "            for k, v in init_params(nx, nh, ny).items()}\n"},
        cells_testing("init_params_autograd"), "should be a leaf with requires_grad=True"),
}


@pytest.mark.slow
@pytest.mark.parametrize("mistake", MISTAKES)
def test_each_classic_mistake_fails_its_own_tests_with_the_right_message(mistake):
    variant, expected, words = MISTAKES[mistake]
    verdicts = run_graded(**variant)
    assert failing(verdicts) == expected, verdicts
    first = next(verdicts[t] for t in TESTS if verdicts[t] is not None)
    assert words in first, first


LATE_MISTAKES = {
    # name: (variant, the one test cell whose hidden part must catch it)
    "output_error as the shortcut yhat - y": (
        solution_with("output_error", "softmax_jacobian(yhat).T @ cross_entropy_grad(yhat, y)",
                      "yhat - y"), "test_output_error"),
    "train_minibatch recording the loss after the update": (
        solution_with("train_minibatch",
                      '            loss, _ = loss_accuracy(outputs["yhat"], Y[rows])\n'
                      '            sgd(params, backward(params, outputs, Y[rows]), eta)\n',
                      '            sgd(params, backward(params, outputs, Y[rows]), eta)\n'
                      '            loss, _ = loss_accuracy(forward(params, X[rows])["yhat"], '
                      'Y[rows])\n'), "test_train_minibatch_hidden"),
}


@pytest.mark.slow
@pytest.mark.parametrize("mistake", LATE_MISTAKES)
def test_mistakes_the_visible_cases_cannot_see_fail_the_hidden_tests(mistake):
    """Targets that do not sum to 1, a loss recorded after the update: the student's visible
    tests pass, the hidden part of one test cell fails."""
    variant, test = LATE_MISTAKES[mistake]
    assert not failing(run_graded(hidden=False, **variant))
    assert failing(run_graded(**variant)) == {test}


# --- correct solutions in other styles pass ------------------------------------------------------

STYLES = {
    "backward, one sample at a time": {"backward": '''
def backward(params, outputs, Y):
    rows = {"delta_y": [], "grad_h": [], "delta_h": []}
    totals = {k: torch.zeros_like(v) for k, v in params.items()}
    for x, h, yhat, y in zip(outputs["X"], outputs["h"], outputs["yhat"], Y):
        dy = (yhat - y)[:, None]
        gh = params["Wy"].T @ dy
        dh = gh * (1 - h[:, None] ** 2)
        for k, g in (("Wy", dy @ h[None, :]), ("by", dy), ("Wh", dh @ x[None, :]), ("bh", dh)):
            totals[k] += g
        for k, v in (("delta_y", dy), ("grad_h", gh), ("delta_h", dh)):
            rows[k].append(v[:, 0])
    grads = {k: v / len(Y) for k, v in totals.items()}
    return grads | {k: torch.stack(v) for k, v in rows.items()}
'''},
    "backward with einsum and 1/B folded into delta_y": {"backward": '''
def backward(params, outputs, Y):
    dy = (outputs["yhat"] - Y) / Y.shape[0]
    gh = torch.einsum("bj,ji->bi", dy, params["Wy"])
    dh = gh * (1 - outputs["h"] * outputs["h"])
    return {"delta_y": dy, "grad_h": gh, "delta_h": dh,
            "Wy": torch.einsum("bi,bj->ij", dy, outputs["h"]), "by": dy.sum(0).reshape(-1, 1),
            "Wh": torch.einsum("bi,bj->ij", dh, outputs["X"]), "bh": dh.sum(0)[:, None]}
'''},
    "forward with max().values and torch.mm": {"forward": '''
def forward(params, X):
    htilde = torch.mm(X, params["Wh"].T) + params["bh"].T
    h = htilde.tanh()
    ytilde = torch.mm(h, params["Wy"].t()) + params["by"].reshape(1, -1)
    shifted = ytilde - ytilde.max(dim=1, keepdim=True).values
    yhat = shifted.exp() / shifted.exp().sum(1, keepdim=True)
    return dict(X=X, htilde=htilde, h=h, ytilde=ytilde, yhat=yhat)
'''},
    "loss_accuracy with sum / B and a tensor accuracy": {"loss_accuracy": '''
def loss_accuracy(yhat, Y):
    loss = -(torch.log(yhat) * Y).sum() / Y.shape[0]
    return loss, (yhat.argmax(1) == Y.argmax(1)).sum() / len(Y)
'''},
    "sgd with sub_ and with rebinding": {"sgd": '''
def sgd(params, grads, eta):
    for name in ("Wh", "bh"):
        params[name].sub_(eta * grads[name])
    for name in ("Wy", "by"):
        params[name] = params[name] - eta * grads[name]
'''},
    "softmax_jacobian with a loop, cross_entropy_grad with torch.div": {
        "softmax_jacobian": '''
def softmax_jacobian(yhat):
    n = yhat.shape[0]
    J = torch.zeros(n, n, dtype=yhat.dtype, device=yhat.device)
    for i in range(n):
        for j in range(n):
            J[i, j] = yhat[i] * ((1.0 if i == j else 0.0) - yhat[j])
    return J
''', "cross_entropy_grad": '''
def cross_entropy_grad(yhat, y):
    return torch.div(y, yhat).neg()
''', "output_error": '''
def output_error(yhat, y):
    return cross_entropy_grad(yhat, y) @ softmax_jacobian(yhat)
'''},
    "train_minibatch with torch.split and index_select": {"train_minibatch": '''
def train_minibatch(params, X, Y, eta, batch_size, epochs, generator):
    losses = []
    for epoch in range(epochs):
        for rows in torch.split(torch.randperm(len(X), generator=generator), batch_size):
            rows = rows.to(X.device)
            xb, yb = X.index_select(0, rows), Y.index_select(0, rows)
            out = forward(params, xb)
            loss = loss_accuracy(out["yhat"], yb)[0]
            losses.append(loss.item())
            sgd(params, backward(params, out, yb), eta)
    return losses
'''},
    "autograd_step with .grad = None and .data": {"autograd_step": '''
def autograd_step(params, X, Y, eta):
    loss = loss_accuracy(forward(params, X)["yhat"], Y)[0]
    loss.backward()
    for p in params.values():
        p.data -= eta * p.grad
        p.grad = None
    return float(loss.detach())
'''},
    "init_params_autograd drawing directly": {"init_params_autograd": '''
def init_params_autograd(nx, nh, ny):
    Wh = (torch.randn(nh, nx) * 0.3).to(device).requires_grad_()
    Wy = (torch.randn(ny, nh) * 0.3).to(device).requires_grad_()
    return {"Wh": Wh, "bh": torch.zeros(nh, 1, device=device, requires_grad=True),
            "Wy": Wy, "by": torch.zeros(ny, 1, device=device, requires_grad=True)}
'''},
}


@pytest.mark.slow
@pytest.mark.parametrize("style", STYLES)
def test_correct_solutions_in_other_styles_pass_every_test(style):
    verdicts = run_graded(**STYLES[style])
    assert not failing(verdicts), verdicts


# --- the notebook's conventions ----------------------------------------------------------------

RULES = {"forward": ["own_softmax"], "backward": ["by_hand"], "sgd": ["by_hand"],
         "softmax_jacobian": ["by_hand"], "cross_entropy_grad": ["by_hand"],
         "output_error": ["by_hand"], "train_minibatch": ["by_hand"],
         "autograd_step": ["uses_autograd"]}


def test_each_graded_function_declares_its_rules():
    declared = {nbgrader(c)["grade_id"]: c.metadata.get("kit", {}).get("rules")
                for c in NOTEBOOK.cells if is_solution(c)}
    assert {k: v for k, v in declared.items() if v} == RULES


def test_test_helpers_live_in_one_locked_cell_and_test_cells_are_short():
    """One locked context cell defines the helpers; every test cell opens with a docstring, is
    at most 10 lines where a student can see it, and defines no function or class."""
    helpers = [c for c in NOTEBOOK.cells if is_context(c) and "def " in c.source]
    assert [nbgrader(c)["grade_id"] for c in helpers] == ["test_helpers"]
    for cell in filter(is_test, NOTEBOOK.cells):
        visible = HIDDEN.sub("", cell.source)
        tree = ast.parse(cell.source)
        assert isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, ast.Constant)
        assert len(visible.strip().splitlines()) <= 10, (nbgrader(cell)["grade_id"], visible)
        assert not any(isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Lambda))
                       for n in ast.walk(tree)), nbgrader(cell)["grade_id"]
        last = ast.parse(visible).body[-1]   # nbgrader reads a value left at the end as a score
        assert not isinstance(last, ast.Expr), nbgrader(cell)["grade_id"]


def _bound(tree: ast.AST) -> set[str]:
    """Names a piece of code binds at any level (assignments, imports, defs, loop targets)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def test_test_cells_use_only_locked_names_graded_functions_and_builtins():
    """The replay contract: a test cell may use names bound by locked cells, the graded
    functions and builtins, never a name a student's unlocked cell binds."""
    locked = set().union(*(_bound(ast.parse(c.source)) for c in NOTEBOOK.cells
                           if is_context(c) or is_test(c)))
    allowed = locked | set(SOLUTIONS) | set(dir(builtins))
    for cell in filter(is_test, NOTEBOOK.cells):
        used = {n.id for n in ast.walk(ast.parse(cell.source))
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        assert used <= allowed, (nbgrader(cell)["grade_id"], used - allowed)


def test_context_cells_are_cheap_deterministic_and_call_no_student_code():
    """The cells the grader runs before replaying: no call to a graded function and no plot at
    their top level, and together well under a second (torch already imported)."""
    context = [c for c in NOTEBOOK.cells if is_context(c)]
    for cell in context:
        for statement in ast.parse(cell.source).body:
            if isinstance(statement, (ast.FunctionDef, ast.ClassDef)):
                continue
            calls = {n.func.id for n in ast.walk(statement)
                     if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
            attributes = {n.func.attr for n in ast.walk(statement)
                          if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
            assert not calls & set(SOLUTIONS), (nbgrader(cell)["grade_id"], calls)
            assert not any(a.startswith("plot") for a in attributes), nbgrader(cell)["grade_id"]
    threads = torch.get_num_threads()
    runs = []
    try:
        for _ in range(2):
            namespace: dict = {}
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                for cell in context:
                    exec(cell.source, namespace)
            runs.append((time.perf_counter() - start, namespace["X_train"].clone()))
    finally:
        torch.set_num_threads(threads)
    assert min(seconds for seconds, _ in runs) < 1.0, runs
    assert torch.equal(runs[0][1], runs[1][1])


def test_the_setup_cell_prints_one_friendly_line(monkeypatch):
    monkeypatch.setenv("LAB_DEVICE", "cpu")
    threads = torch.get_num_threads()
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            exec(next(c.source for c in NOTEBOOK.cells if nbgrader(c).get("grade_id") == "setup"),
                 {})
    finally:
        torch.set_num_threads(threads)
    assert printed.getvalue() == "This notebook computes on the CPU (1 thread).\n"


def test_each_written_question_is_a_locked_cell_followed_by_its_answer_with_a_rubric():
    cells = NOTEBOOK.cells
    answers = [i for i, c in enumerate(cells) if c.cell_type == "markdown"
               and nbgrader(c).get("grade") and nbgrader(c).get("solution")]
    assert len(answers) == 5
    for i in answers:
        question, answer = cells[i - 1], cells[i]
        assert question.cell_type == "markdown" and nbgrader(question).get("locked")
        assert question.source.startswith("**Question (1 point).**"), question.source
        assert "Question" not in answer.source
        solution = answer.source.split("### BEGIN SOLUTION", 1)[1]
        assert "**Model answer.**" in solution and "**Rubric (1 point).**" in solution


def test_a_stuck_hint_follows_every_graded_function():
    cells = NOTEBOOK.cells
    for i, cell in enumerate(cells):
        if is_solution(cell) and nbgrader(cell)["grade_id"] in GRADED:
            hint = cells[i + 1]
            assert hint.cell_type == "markdown" and nbgrader(hint).get("locked")
            assert hint.source.startswith("<details><summary><b>Stuck?</b>"), hint.source[:80]
            assert hint.source.count("<details>") == hint.source.count("</details>") == 2


def test_the_core_fits_two_hours_and_the_optional_parts_are_marked():
    intro = NOTEBOOK.cells[0].source
    rows = re.findall(r"^\| (\d)( \*\(optional\)\*)? \| .*? \| (\d+) min \| .*\|$", intro, re.M)
    assert [int(part) for part, _, _ in rows] == [1, 2, 3, 4, 5, 6, 7]
    core = sum(int(minutes) for _, optional, minutes in rows if not optional)
    assert core <= 120 and {part for part, optional, _ in rows if optional} == {"6", "7"}
    for part, optional, _ in rows:
        heading = next(c.source for c in NOTEBOOK.cells if c.cell_type == "markdown"
                       and c.source.startswith(f"## Part {part}"))
        assert ("*(optional)*" in heading.splitlines()[0]) == bool(optional), heading[:80]


def test_the_lecture_correspondence_is_named():
    text = " ".join(" ".join(c.source.split()) for c in NOTEBOOK.cells[:2])
    assert "the lab session the lecture announces" in text and "by hand with basic torch" in text
    assert r"\mathbf x\mathbf W^h + \mathbf b^h" in text and "`X @ Wh.T + bh.T`" in text
