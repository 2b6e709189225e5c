"""Lab 4's engine checker names the bug: a catalogue of autodiff engines, correct and buggy.

Every engine of ``engine_catalogue`` is the solution notebook's answers with some cells
replaced. Correct engines, in several styles, pass every check and every test cell of the
notebook with no diagnosis; each buggy engine fails exactly where its bug lives, with a message
that names the bug and its fix, and passes the tests of the parts it does not touch. The pure
diagnosis functions, the probes and the graph drawing are tested on their own below.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import sys
from concurrent.futures import Future

import nbformat
import pytest
import torch
from engine_catalogue import LAB, TEST_CELLS, Engine, buggy_engines, correct_engines

import lab_utils
from lab_utils import engine_check, engine_diagnosis, engine_graphs, engine_probes
from labs import nbgrader, solution_path, two_at_a_time

CORRECT = correct_engines()
BUGGY = buggy_engines()
VALIDATE_WIDTH = 83  # nbgrader's Validate indents error lines by 4 and cuts them at 87


def _ids(engines: list[Engine]) -> list[str]:
    return [engine.name for engine in engines]


# ------------------------------------------------------------------ the checker on the catalogue


def run_checks(engine: Engine) -> str:
    """Everything the student-facing checks and the compare functions say about ``engine``."""
    scope = engine.namespace()
    Value, order, backward = scope["Value"], scope["topological_order"], scope["backward"]
    said = []
    for check in (lambda: engine_check.check_local_rules(Value, verbose=False),
                  lambda: engine_check.check_topological_order(Value, order, verbose=False),
                  lambda: engine_check.check_backward(Value, backward, verbose=False)):
        try:
            check()
        except AssertionError as error:
            said.append(str(error))
    for sizes in [(2, 4, 2, 3, 0), (3, 5, 4, 6, 1)]:
        result = engine_probes.run_mlp(Value, backward, scope["mlp_loss"],
                                       *engine_graphs.random_mlp(*sizes))
        said.append(str(engine_check.compare_mlp(result, *engine_graphs.random_mlp(*sizes))
                        or ""))
    data, grads = [0.5, -1.25], [0.2, -0.4]
    said.append(str(engine_check.compare_sgd_step(
        engine_probes.run_sgd_step(Value, scope["sgd_step"], data, grads, 0.1), data, grads,
        0.1) or ""))
    return " ".join("\n".join(said).split())  # one line: the tables wrap long sentences


@pytest.mark.parametrize("engine", CORRECT, ids=_ids(CORRECT))
def test_correct_engines_pass_every_check_with_no_diagnosis(engine):
    assert run_checks(engine).strip() == ""


@pytest.mark.parametrize("engine", BUGGY, ids=_ids(BUGGY))
def test_each_bug_is_named_by_the_checker(engine):
    said = run_checks(engine)
    missing = [fragment for fragment in engine.fails.values() if fragment not in said]
    assert not missing, f"{engine.name}: the checks did not say {missing}:\n{said}"


def test_the_checker_prints_a_table_with_the_likely_bug(capsys):
    engine = next(e for e in BUGGY if e.name == "gradient overwritten")
    scope = engine.namespace()
    with pytest.raises(AssertionError) as error:
        engine_check.check_backward(scope["Value"], scope["backward"])
    table = capsys.readouterr().out
    assert table.startswith("backward against autograd: FAILED")
    assert re.search(r"^  a\*a +WRONG: backward on a\*a: 1 of 2 gradients", table, re.M)
    assert "-> likely: 'a' is used 2 times but its gradient holds a single contribution" in \
        " ".join(table.split())
    assert str(error.value).strip() == table.strip()


def test_an_unwritten_engine_raises_not_implemented_instead_of_a_table():
    class Blank:
        def __init__(self, data, parents=(), op=""):
            self.data, self.grad, self.parents, self.op = float(data), 0.0, tuple(parents), op

        def __add__(self, other):
            out = Blank(self.data + other.data, (self, other), "+")
            out.local_derivatives = self._unwritten
            return out

        @staticmethod
        def _unwritten():
            raise NotImplementedError()

    with pytest.raises(NotImplementedError):
        engine_check.check_local_rules(Blank, verbose=False)


# ------------------------------------------------------------------ the notebook's test cells


def _test_scope():
    """The notebook's locked non-test code cells and its test cells, by grade_id."""
    nb = nbformat.read(solution_path(LAB), as_version=4)
    context, tests = [], {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("locked"):
            continue
        source = re.sub(r"^[ \t]*### (BEGIN|END) HIDDEN TESTS[ \t]*\n?", "", cell.source,
                        flags=re.M)
        if meta.get("grade"):
            tests[meta["grade_id"]] = source
        else:
            context.append(source)
    return context, tests


def run_test_cells(engine: Engine) -> dict[str, str | None]:
    """Replay the notebook's test cells (hidden parts included) on ``engine``, as the grader's
    own process does: the locked context cells, then the answers, then each test cell.
    Returns test cell -> None (passed) or the failure's text."""
    context, tests = _test_scope()
    assert sorted(tests) == sorted(TEST_CELLS)
    scope: dict = {}
    threads = torch.get_num_threads()
    try:
        for source in context:
            exec(compile(source, "<locked cell>", "exec"), scope)
        for grade_id, code in engine.answers().items():
            exec(compile(code, f"<{grade_id}>", "exec"), scope)
        verdicts = {}
        for grade_id, source in tests.items():
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    exec(compile(source, f"<{grade_id}>", "exec"), scope)
                verdicts[grade_id] = None
            except Exception as error:  # a failing test cell: keep what it says
                verdicts[grade_id] = f"{type(error).__name__}: {error}"
    finally:
        torch.set_num_threads(threads)
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    return verdicts


@pytest.mark.slow
@pytest.mark.parametrize("engine", CORRECT, ids=_ids(CORRECT))
def test_correct_engines_pass_every_test_cell(engine):
    failed = {k: v for k, v in run_test_cells(engine).items() if v is not None}
    assert not failed, f"{engine.name} fails test cells: {failed}"


@pytest.mark.slow
@pytest.mark.parametrize("engine", BUGGY, ids=_ids(BUGGY))
def test_each_bug_fails_its_test_cells_with_its_diagnosis_and_no_others(engine):
    verdicts = run_test_cells(engine)
    for grade_id, fragment in engine.fails.items():
        said = verdicts[grade_id]
        assert said is not None, f"{engine.name}: {grade_id} passed, it should fail"
        assert fragment in " ".join(said.split()), (
            f"{engine.name}: {grade_id} failed without naming the bug ({fragment!r}):\n{said}")
        too_long = [line for line in said.splitlines() if len(line) > VALIDATE_WIDTH]
        assert not too_long, f"{engine.name}: {grade_id}: Validate would cut {too_long}"
    wrongly = {k: verdicts[k] for k in engine.passes if verdicts[k] is not None}
    assert not wrongly, f"{engine.name}: tests of untouched parts failed: {wrongly}"


def _validate(engine: Engine, folder) -> str:
    """nbgrader validate's report on the solution notebook with ``engine``'s answers."""
    nb = nbformat.read(solution_path(LAB), as_version=4)
    answers = engine.answers()
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.cell_type == "code" and grade_id in answers:
            cell.source = answers[grade_id]
    path = folder / f"{LAB}.ipynb"
    nbformat.write(nb, path)
    result = nbgrader("validate", str(path), cwd=folder, check=False)
    return result.stdout + result.stderr


def packed(engines: list[Engine]) -> list[list[Engine]]:
    """``engines`` in as few groups as possible, no two engines of a group replacing the same
    cell: one notebook holding a group's answers (:func:`merged`) checks all of them at once."""
    groups: list[list[Engine]] = []
    for engine in engines:
        home = next((group for group in groups
                     if not any(set(other.cells) & set(engine.cells) for other in group)), None)
        if home is None:
            groups.append([engine])
        else:
            home.append(engine)
    return groups


def merged(group: list[Engine]) -> Engine:
    """One engine with the answers of every engine of ``group`` (they replace different cells)."""
    return Engine(" + ".join(e.name for e in group),
                  {cell: change for e in group for cell, change in e.cells.items()})


def test_packing_keeps_every_engines_answers_and_shares_no_cell():
    groups = packed(CORRECT[1:])
    assert len(groups) < len(CORRECT[1:])
    assert sorted(e.name for group in groups for e in group) == sorted(e.name for e in CORRECT[1:])
    for group in groups:
        cells = [cell for engine in group for cell in engine.cells]
        assert len(cells) == len(set(cells)), [e.name for e in group]
        together = merged(group).answers()
        for engine in group:
            assert all(together[cell] == engine.answers()[cell] for cell in engine.cells)


@pytest.fixture(scope="module")
def validated(tmp_path_factory) -> dict[str, Future[str]]:
    """nbgrader validate's report for each engine the tests below validate, two at a time:
    engine name -> its future report. The correct engines in other styles are validated in
    groups (:func:`packed`), each group in one notebook."""
    groups = packed(CORRECT[1:])
    buggy = next(e for e in BUGGY if e.name == "gradient overwritten")
    jobs = {**{group[0].name: merged(group) for group in groups}, buggy.name: buggy}
    folders = {name: tmp_path_factory.mktemp("validate") for name in jobs}  # not in threads
    reports = two_at_a_time(lambda name: _validate(jobs[name], folders[name]), list(jobs))
    for group in groups:
        for engine in group[1:]:
            reports[engine.name] = reports[group[0].name]
    return reports


@pytest.mark.slow
@pytest.mark.parametrize("engine", CORRECT[1:], ids=_ids(CORRECT[1:]))
def test_correct_engines_in_other_styles_pass_nbgrader_validate(engine, validated):
    """The whole notebook (hidden tests included) with another correct engine validates
    (packed with other engines that change other cells)."""
    report = validated[engine.name].result()
    assert "Success! Your notebook passes all the tests." in report, report[-4000:]


@pytest.mark.slow
def test_nbgrader_validate_shows_the_diagnosis_of_a_buggy_engine(validated):
    """What a student who overwrites gradients sees when pressing Validate."""
    report = " ".join(validated["gradient overwritten"].result().split())
    assert "VALIDATION FAILED" in report, report[-4000:]
    assert "overwritten instead of accumulated; add every user's contribution" in report, report[-4000:]


# ------------------------------------------------------------------ pure diagnoses


def test_local_rule_mistakes_are_named_only_when_every_point_agrees():
    points = [(0.5,), (-1.3,)]
    right = [[1 - math.tanh(a) ** 2] for (a,) in points]
    from_input = [[1 - a * a] for (a,) in points]
    said = engine_diagnosis.diagnose_local_rule("tanh", points, from_input, right)
    assert said.startswith("rule of tanh(a): tanh's derivative was computed from its input")
    mixed = [from_input[0], [0.123]]
    assert engine_diagnosis.diagnose_local_rule("tanh", points, mixed, right) is None


def test_a_constant_factor_is_named_when_it_is_the_same_at_every_point():
    points = [(1.5, -0.4), (-2.0, 0.25)]
    right = [[1.0, 1.0], [1.0, 1.0]]
    doubled = [[1.0, 2.0], [1.0, 2.0]]
    assert engine_diagnosis.diagnose_local_rule("+", points, doubled, right) == (
        "rule of a + b, second input b: off by a constant factor 2; look for a stray or "
        "missing factor")
    flipped = [[-1.0, 1.0], [-1.0, 1.0]]
    assert "first input a: sign flipped" in engine_diagnosis.diagnose_local_rule(
        "+", points, flipped, right)
    assert engine_diagnosis.diagnose_local_rule("+", points, [[1.0, 2.0], [1.0, 3.0]],
                                                right) is None
    assert "one derivative per input (2)" in engine_diagnosis.diagnose_local_rule(
        "*", points, [[1.0], [1.0]], [[-0.4, 1.5], [0.25, -2.0]])


def test_orders_are_diagnosed_by_what_is_wrong_with_them():
    parents = {"a": (), "s": ("a",), "u": ("s",), "out": ("s", "u")}
    diagnose = engine_diagnosis.diagnose_order
    assert diagnose(["out", "u", "s", "a"], parents, "out") is None
    assert "breadth-first" in diagnose(["out", "s", "u", "a"], parents, "out")
    assert "reversed" in diagnose(["a", "s", "u", "out"], parents, "out")
    assert "'a' are missing" not in diagnose(["out", "u", "s"], parents, "out")
    assert "the inputs (leaves) belong" in diagnose(["out", "u", "s"], parents, "out")
    assert "'s' is listed 2 times" in diagnose(["out", "u", "s", "s", "a"], parents, "out")
    assert "not nodes of the graph" in diagnose(["out", None, "s", "a"], parents, "out")


def test_sweeps_are_diagnosed_from_the_numbers_alone():
    parents = {"a": (), "out": ("a", "a")}
    local = {"out": [-1.5, -1.5]}
    expected = {"a": -3.0, "out": 1.0}
    diagnose = engine_diagnosis.diagnose_sweep
    calls = {"out": 1}
    assert diagnose(parents, local, expected, expected, calls, "out", 2.25) is None
    assert "overwritten" in diagnose(parents, local, {"a": -1.5, "out": 1.0}, expected, calls,
                                     "out", 2.25)
    assert diagnose(parents, local, {"a": 0.0, "out": 0.0}, expected, calls,
                    "out", 2.25) == engine_diagnosis.ROOT_NOT_SEEDED
    assert diagnose(parents, local, {"a": -6.75, "out": 2.25}, expected, calls,
                    "out", 2.25) == engine_diagnosis.SEEDED_WITH_THE_VALUE
    assert "evaluated 2 times" in diagnose(parents, local, expected, expected, {"out": 2},
                                           "out", 2.25)
    assert diagnose(parents, local, {"a": 7.0, "out": 1.0}, expected, calls, "out", 2.25) is None


def test_training_steps_are_diagnosed():
    diagnose = engine_diagnosis.diagnose_sgd_step
    assert diagnose([1.0], [0.5], 0.1, [0.95], [0.5]) == engine_diagnosis.NOT_RESET
    assert diagnose([1.0], [0.5], 0.1, [1.05], [0.0]) == engine_diagnosis.UPHILL
    assert diagnose([1.0], [0.5], 0.1, [1.0], [0.0]) == engine_diagnosis.UPDATE_SKIPPED
    assert diagnose([1.0], [0.5], 0.1, [0.95], [0.0]) is None
    assert diagnose([1.0], [0.5], 0.1, [0.7], [0.0]) is None


# ------------------------------------------------------------------ probes and references


def test_reference_gradients_match_arithmetic():
    ref = engine_graphs.reference(engine_graphs.expression("a*a"))
    assert ref["grads"]["a"] == pytest.approx(-3.0) and ref["local"]["out"] == [-1.5, -1.5]
    ref = engine_graphs.reference(engine_graphs.expression("all ops"))
    a, b, c = 1.3, 0.4, -0.7
    q = a / b - c
    assert ref["values"]["out"] == pytest.approx(math.log(q ** 3) * math.exp(math.tanh(c)) + a)
    assert ref["local"]["p"] == pytest.approx([1 / b, -a / b ** 2])
    assert ref["local"]["r"] == pytest.approx([3 * q ** 2])
    assert ref["grads"]["c"] == pytest.approx(
        -3 / q * math.exp(math.tanh(c)) + math.log(q ** 3) * math.exp(math.tanh(c))
        * (1 - math.tanh(c) ** 2))


def test_random_expressions_are_reproducible_valid_and_use_every_operation():
    first = engine_graphs.random_expression(200, 5)
    assert first == engine_graphs.random_expression(200, 5)
    assert first != engine_graphs.random_expression(200, 6)
    assert {step.op for step in first.steps} == set(engine_graphs.OPS)
    values = engine_graphs.reference(first)["values"]
    assert all(math.isfinite(v) for v in values.values())


def test_probe_arguments_are_checked_by_name():
    with pytest.raises(ValueError, match="name: expected one of"):
        engine_graphs.expression("no such graph")
    with pytest.raises(TypeError, match="value_class: expected the Value class, got int 3"):
        engine_probes.run_local_rule(3, "+", [(1.0, 2.0)])
    with pytest.raises(ValueError, match=r"op: expected one of \('\+'"):
        engine_probes.run_local_rule(int, "%", [(1.0, 2.0)])
    with pytest.raises(ValueError, match="length: expected an int >= 1, got 0"):
        engine_graphs.chain(0)
    with pytest.raises(ValueError, match="every node must lead to the root"):
        engine_graphs.Expression((("a", 1.0), ("b", 2.0)),
                                 (engine_graphs.Step("out", "tanh", ("a",)),))
    with pytest.raises(TypeError, match="backward: expected a function"):
        engine_check.check_backward(int, "backward", verbose=False)
    Value = correct_engines()[0].namespace()["Value"]
    with pytest.raises(ValueError, match="grads: expected 2 numbers, one per entry of data, got 1"):
        engine_probes.run_sgd_step(Value, lambda parameters, eta: None, [1.0, 2.0], [0.5], 0.1)
    with pytest.raises(TypeError, match="eta: expected a number, got str '0.1'"):
        engine_probes.run_sgd_step(Value, lambda parameters, eta: None, [1.0], [0.5], "0.1")


def test_a_recursion_guard_lets_loops_pass_and_stops_recursion_and_runaway_work():
    guard = engine_probes.call_without_deep_recursion
    limit = sys.getrecursionlimit()
    assert guard(sum, range(10_000)) == sum(range(10_000))

    def nest(n):
        return 0 if n == 0 else 1 + nest(n - 1)

    with pytest.raises(RecursionError):
        guard(nest, 500)

    def raise_the_limit():
        sys.setrecursionlimit(50_000)
        return nest(80)

    with pytest.raises(RecursionError, match="changed the recursion limit"):
        guard(raise_the_limit)
    with pytest.raises(engine_probes.TooMuchWork, match="more than 100 calls"):
        guard(lambda: [abs(k) for k in range(1000)], max_calls=100)
    assert sys.getrecursionlimit() == limit and sys.getprofile() is None


def test_count_graph_counts_edges_paths_and_path_lengths():
    scope = correct_engines()[0].namespace()
    Value = scope["Value"]
    a = Value(2.0)
    assert engine_probes.count_graph(a * a, [a]) == {
        "nodes": 2, "edges": 2, "paths": 2, "path-sum multiplications": 2}
    nodes = engine_probes._build(Value, engine_graphs.ladder(5), "own")
    counts = engine_probes.count_graph(nodes["out"], [nodes["p0"], nodes["q0"]])
    assert counts["paths"] == 2 * 2 ** 5 and counts["edges"] == 5 * 5 + 2
    work = engine_probes.count_rule_evaluations(scope["backward"], nodes["out"])
    assert work == {"rule evaluations": 16, "local derivatives used": 27}
    assert engine_probes.count_rule_evaluations(scope["backward"], nodes["out"]) == work
    with pytest.raises(ValueError, match="leaves: expected nodes that root depends on"):
        engine_probes.count_graph(nodes["out"], [Value(1.0)])


def test_mlp_values_and_tensors_round_trip_lab_3s_shapes():
    scope = correct_engines()[0].namespace()
    params, _, _ = engine_graphs.random_mlp(3, 5, 4, 2, 0)
    values = engine_probes.mlp_values(scope["Value"], params)
    assert len(values["Wh"]) == 5 and len(values["Wh"][0]) == 3 and len(values["by"]) == 4
    back = engine_probes.mlp_tensors(values)
    assert all(torch.equal(back[k], params[k]) for k in params)
    with pytest.raises(ValueError, match=r"params\['bh'\]: expected shape \(\*, 1\)"):
        engine_probes.mlp_values(scope["Value"], dict(params, bh=params["bh"][:, 0]))


# ------------------------------------------------------------------ the drawing


def test_draw_graph_shows_every_node_and_every_edge():
    scope = correct_engines()[0].namespace()
    Value = scope["Value"]
    a, b = Value(0.8), Value(-0.6)
    s = a * b
    out = s.tanh() * s.exp()
    scope["backward"](out)
    figure = lab_utils.draw_graph(out, names={"a": a, "b": b, "s": s}, title="diamond")
    from matplotlib.text import Annotation

    axes = figure.axes[0]
    arrows = [t for t in axes.texts if isinstance(t, Annotation)]
    boxes = [t for t in axes.texts if t.get_bbox_patch() is not None and t not in arrows]
    numbers = [t.get_text() for t in axes.texts if t not in arrows and t not in boxes]
    assert len(boxes) == 6 and len(arrows) == 6  # a, b, s, tanh, exp, out; six edges
    assert sorted(numbers) == sorted(f"{d:.3g}" for d in (-0.6, 0.8) + (
        1 - math.tanh(-0.48) ** 2, math.exp(-0.48), math.exp(-0.48), math.tanh(-0.48)))
    assert any(t.get_text() == f"s = *\n-0.48\ngrad {s.grad:.4g}" for t in boxes)
    assert axes.get_title() == "diamond"


def test_draw_graph_rejects_what_it_cannot_draw():
    scope = correct_engines()[0].namespace()
    Value = scope["Value"]
    with pytest.raises(TypeError, match="root: expected a Value"):
        lab_utils.draw_graph(3.0)
    deep = engine_probes._build(Value, engine_graphs.chain(60), "own")["x60"]
    with pytest.raises(ValueError, match="root: expected a graph of at most 40 nodes"):
        lab_utils.draw_graph(deep)
    with pytest.raises(TypeError, match="names: expected a dict label -> node"):
        lab_utils.draw_graph(Value(1.0), names=["a"])
