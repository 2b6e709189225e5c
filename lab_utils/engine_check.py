"""Check a scalar autodiff engine (Lab 4) against torch autograd and name what is wrong.

``compare_*`` take what a probe of :mod:`lab_utils.engine_probes` returned (plain data), compute
the reference with torch autograd in float64 (:mod:`lab_utils.engine_graphs`), and return
``None`` when the engine is right or a :class:`Problem`: what is wrong and, when recognisable,
the likely bug with its fix (from :mod:`lab_utils.engine_diagnosis`). They never raise on a
wrong engine. ``str(problem)`` keeps every line within :data:`WIDTH` characters, so that
nbgrader's Validate, which cuts longer lines, shows the whole sentence.

``check_*`` run the probes on an engine, print one line per probe and raise ``AssertionError``
with the same table when one is wrong. Typical use in a notebook::

    check_local_rules(Value)                        # the eight local rules
    check_topological_order(Value, topological_order)
    check_backward(Value, backward)                 # reuse, order, seed, depth, cost
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from . import engine_diagnosis as diagnosis
from . import engine_graphs as graphs
from . import engine_probes as probes
from ._validate import describe
from .engine_graphs import Expression

#: (op, exponent, points) probed by :func:`check_local_rules`; the tests use other points.
RULE_PROBES = [("+", None, [(1.5, -0.4), (-2.0, 0.25)]), ("-", None, [(1.5, -0.4), (-2.0, 0.25)]),
               ("*", None, [(1.5, -0.4), (-2.0, 0.25)]), ("/", None, [(1.5, -0.4), (-2.0, 0.25)]),
               ("**", 3.0, [(1.5,), (-0.7,)]), ("**", -0.5, [(1.5,), (0.3,)]),
               ("tanh", None, [(0.5,), (-1.3,)]), ("exp", None, [(0.5,), (-1.3,)]),
               ("log", None, [(0.5,), (2.7,)])]
ORDER_PROBES = [("a*a",), ("skip",), ("diamond",), ("neuron",), ("ladder", 4), ("chain", 3000)]
SWEEP_PROBES = [("a*a",), ("a+a",), ("skip",), ("diamond",), ("neuron",), ("ladder", 4),
                ("chain", 3000)]
OWN_RULE_PROBES = [("neuron",), ("all ops",)]
WIDTH = 80  # nbgrader's Validate indents an error by 4 and cuts its lines at 87 characters


def wrap(text: str, width: int = WIDTH) -> str:
    """``text`` with every line longer than ``width`` wrapped, keeping its indentation."""
    lines = []
    for line in text.splitlines():
        indent = line[:len(line) - len(line.lstrip())]
        lines.append(line if len(line) <= width else textwrap.fill(
            line, width, subsequent_indent=indent + "   ", break_long_words=False,
            break_on_hyphens=False))
    return "\n".join(lines)


@dataclass
class Problem:
    """What is wrong (``what``) and, when recognisable, the likely bug and its fix."""

    what: str
    likely: str | None = None

    def __str__(self) -> str:
        """On lines of its own (an assertion message starts after "AssertionError: ")."""
        likely = f"\n-> likely: {self.likely}" if self.likely else ""
        return "\n" + wrap(self.what + likely)


def _numbers(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"


def _names(order: Sequence[str | None], limit: int = 12) -> str:
    shown = ", ".join("?" if n is None else n for n in order[:limit])
    return f"[{shown}{', ...' if len(order) > limit else ''}] ({len(order)} entries)"


def _failed_run(what: str, result: dict[str, Any], expr: Expression) -> Problem | None:
    """The problem of a run that the probe stopped: deep recursion or runaway work."""
    if "recursion" in result:
        return Problem(f"{what} on a {expr.label}: RecursionError",
                       diagnosis.diagnose_recursion(what, result["recursion"]))
    if "work" in result:
        return Problem(f"{what} on a {expr.label} ({len(expr.names)} nodes): stopped, "
                       f"{result['work']}", diagnosis.diagnose_work(what, result["work"]))
    return None


def compare_local_rule(op: str, points: Sequence[Sequence[float]],
                       got: Sequence[Sequence[float]], exponent: float | None = None
                       ) -> Problem | None:
    """``got[k]``: the local derivatives an engine's rule for ``op`` returned at ``points[k]``."""
    expected = graphs.local_rule_reference(op, points, exponent)
    name = diagnosis.rule_name(op, exponent)
    for point, g, e in zip(points, got, expected):
        if len(g) != len(e) or not all(diagnosis.close(x, y) for x, y in zip(g, e)):
            at = ", ".join(f"{v}={x:g}" for v, x in zip("ab", point))
            return Problem(f"local rule of {name} at {at}: expected {_numbers(e)} (autograd), "
                           f"got {_numbers(g)}",
                           diagnosis.diagnose_local_rule(op, points, got, expected, exponent))
    return None


def _expression(expression: Expression | str, args: tuple) -> Expression:
    return expression if isinstance(expression, Expression) else graphs.expression(expression,
                                                                                  *args)


def compare_order(result: dict[str, Any], expression: Expression | str, *args: int
                  ) -> Problem | None:
    """``result``: what :func:`~lab_utils.engine_probes.run_topological_order` returned for
    ``expression`` (an :class:`~lab_utils.engine_graphs.Expression`, or a name and its
    arguments for :func:`~lab_utils.engine_graphs.expression`)."""
    expr = _expression(expression, args)
    failed = _failed_run("topological_order", result, expr)
    if failed:
        return failed
    if "returned" in result:
        return Problem(f"topological_order on {expr.label}: expected a list of Values, "
                       f"got {result['returned']}")
    likely = diagnosis.diagnose_order(result["order"], expr.parents, expr.root)
    if likely is None:
        return None
    return Problem(f"topological_order on {expr.label} gave {_names(result['order'])}", likely)


def compare_backward(result: dict[str, Any], expression: Expression | str, *args: int
                     ) -> Problem | None:
    """``result``: what :func:`~lab_utils.engine_probes.run_backward` returned for
    ``expression`` (as for :func:`compare_order`). Judges the gradients (the cost is
    :func:`compare_cost`'s business); with the engine's own local derivatives under
    ``"local"`` (its own rules were used), those are checked first."""
    expr = _expression(expression, args)
    failed = _failed_run("backward", result, expr)
    if failed:
        return failed
    ref = graphs.reference(expr)
    local = result.get("local", ref["local"])
    for step in expr.steps if "local" in result else ():
        point = [ref["values"][p] for p in step.parents]
        got, want = local[step.name], ref["local"][step.name]
        if len(got) != len(want) or not all(diagnosis.close(g, w) for g, w in zip(got, want)):
            return Problem(f"{expr.label}: the local rule of node {step.name!r} = "
                           f"{step.op}({', '.join(step.parents)}) gave {_numbers(got)}, "
                           f"autograd {_numbers(want)}",
                           diagnosis.diagnose_local_rule(step.op, [point], [got], [want],
                                                         step.exponent))
    grads, calls = result["grads"], result["rule_calls"]
    wrong = [n for n in expr.names if not diagnosis.close(grads[n], ref["grads"][n])]
    if not wrong:
        return None
    name = wrong[0]
    return Problem(f"backward on {expr.label}: {len(wrong)} of {len(grads)} gradients are "
                   f"wrong, e.g. {name}.grad: expected {ref['grads'][name]:.6g} (autograd), "
                   f"got {grads[name]:.6g}",
                   diagnosis.diagnose_sweep(expr.parents, local, grads, ref["grads"], calls,
                                            expr.root, ref["values"][expr.root]))


def compare_cost(result: dict[str, Any], expression: Expression | str, *args: int
                 ) -> Problem | None:
    """Whether the run of ``backward`` in ``result`` (from
    :func:`~lab_utils.engine_probes.run_backward`) evaluated every node's local rule exactly
    once; the gradients themselves are :func:`compare_backward`'s business."""
    expr = _expression(expression, args)
    failed = _failed_run("backward", result, expr)
    if failed:
        return failed
    calls = result["rule_calls"]
    if any(n > 1 for n in calls.values()):
        example = max(calls, key=calls.get)
        return Problem(f"backward on {expr.label}: {sum(calls.values())} local rule evaluations "
                       f"for {len(calls)} nodes, one per node expected",
                       diagnosis.RULES_EVALUATED_AGAIN.format(
                           calls=sum(calls.values()), nodes=len(calls), example=example,
                           most=calls[example]))
    never = [name for name, n in calls.items() if n == 0]
    if never:
        return Problem(f"backward on {expr.label}: the local rules of {len(never)} of "
                       f"{len(calls)} nodes were never evaluated (e.g. {never[0]!r}): every node "
                       "the root depends on must be visited once")
    return None


def compare_sgd_step(result: dict[str, list[float]], data: Sequence[float],
                     grads: Sequence[float], eta: float) -> Problem | None:
    """``result``: what :func:`~lab_utils.engine_probes.run_sgd_step` returned."""
    want = [d - eta * g for d, g in zip(data, grads)]
    moved = all(diagnosis.close(x, w) for x, w in zip(result["data"], want))
    if moved and all(g == 0 for g in result["grads"]):
        return None
    return Problem(f"sgd_step(parameters, eta={eta:g}) on data {_numbers(data)} with grads "
                   f"{_numbers(grads)}: expected data {_numbers(want)} and every grad 0.0, got "
                   f"data {_numbers(result['data'])} and grads {_numbers(result['grads'])}",
                   diagnosis.diagnose_sgd_step(data, grads, eta, result["data"],
                                               result["grads"]))


def compare_mlp(result: dict[str, Any], params: dict[str, torch.Tensor], X: torch.Tensor,
                Y: torch.Tensor) -> Problem | None:
    """``result``: what :func:`~lab_utils.engine_probes.run_mlp` returned for ``params``,
    ``X``, ``Y``; the loss is compared with :func:`lab_utils.mlp_loss`, the gradients with
    :func:`lab_utils.check_mlp_gradients` (whose table names the likely mistake)."""
    from .mlp import check_mlp_gradients, mlp_loss

    want, got, B = float(mlp_loss(params, X, Y)), result["loss"], X.shape[0]
    if not diagnosis.close(got, want):
        ratio = got / want if want else None
        likely = None
        if ratio is not None and B > 1 and diagnosis.close(ratio, B, 1e-6):
            likely = f"the loss is summed over the batch: divide it by the batch size ({B})"
        elif ratio is not None and diagnosis.close(ratio, -1.0, 1e-6):
            likely = "sign: the cross-entropy is -Σ y log ŷ, with a minus"
        return Problem(f"mlp_loss on a {X.shape[1]}-{params['Wh'].shape[0]}-"
                       f"{params['Wy'].shape[0]} net, B={B}: expected the mean cross-entropy "
                       f"{want:.10g} (torch), got {got:.10g}", likely)
    try:
        grads = {k: torch.tensor(v, dtype=torch.float64) for k, v in result["grads"].items()}
        check_mlp_gradients(grads, params, X, Y, verbose=False)
    except (AssertionError, ValueError, TypeError) as error:
        return Problem(f"gradients of mlp_loss after backward:{error}")
    return None


# ------------------------------------------------------------------ checks for students


@dataclass
class EngineReport:
    """One row per probe; ``str(report)`` is a readable table."""

    title: str
    rows: list[tuple[str, Problem | None]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(problem is None for _, problem in self.rows)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        width = max([len(probe) for probe, _ in self.rows] + [5])
        lines = [f"{self.title}: {'PASSED' if self.passed else 'FAILED'}"]
        indent = " " * (width + 4)
        for probe, problem in self.rows:
            if problem is None:
                lines.append(f"  {probe:<{width}}  ok")
                continue
            lines.append(textwrap.fill(f"WRONG: {problem.what}", 100,
                                       initial_indent=f"  {probe:<{width}}  ",
                                       subsequent_indent=indent + "  "))
            if problem.likely:
                lines.append(textwrap.fill(f"-> likely: {problem.likely}", 100,
                                           initial_indent=indent, subsequent_indent=indent + "   ",
                                           break_on_hyphens=False))
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython display
        printer.text(str(self))


def _row(report: EngineReport, probe: str, compare: Callable[[], Problem | None]) -> None:
    try:
        problem = compare()
    except NotImplementedError:
        raise
    except Exception as error:  # a crash is a finding too: report it and go on
        problem = Problem(f"raised {type(error).__name__}: {error}")
    report.rows.append((probe, problem))


def _finish(report: EngineReport, verbose: bool) -> EngineReport:
    if verbose:
        print(report)
    if not report.passed:
        raise AssertionError("\n" + str(report))
    return report


def _check_callable(name: str, value: Any) -> None:
    if not callable(value):
        raise TypeError(f"{name}: expected a function, got {describe(value)}")


def check_local_rules(value_class: type, *, verbose: bool = True) -> EngineReport:
    """Every local rule of ``value_class`` at two points against autograd (float64)."""
    probes.check_value_class(value_class)
    report = EngineReport("local rules against autograd")
    for op, exponent, points in RULE_PROBES:
        label = diagnosis.rule_name(op, exponent)
        _row(report, label, lambda op=op, e=exponent, p=points: compare_local_rule(
            op, p, probes.run_local_rule(value_class, op, p, e), e))
    return _finish(report, verbose)


def check_topological_order(value_class: type, topological_order: Callable, *,
                            verbose: bool = True) -> EngineReport:
    """``topological_order`` on graphs with reuse, a skip, a diamond, a ladder and a chain
    3000 nodes deep (with the recursion limit lowered)."""
    probes.check_value_class(value_class)
    _check_callable("topological_order", topological_order)
    report = EngineReport("topological_order")
    for args in ORDER_PROBES:
        expr = graphs.expression(*args)
        _row(report, expr.label, lambda expr=expr: compare_order(
            probes.run_topological_order(value_class, topological_order, expr), expr))
    return _finish(report, verbose)


def check_backward(value_class: type, backward: Callable, *,
                   verbose: bool = True) -> EngineReport:
    """``backward`` on the probe graphs with autograd's local derivatives (the sweep alone),
    then on two expressions built with the class's own operations (rules and sweep)."""
    probes.check_value_class(value_class)
    _check_callable("backward", backward)
    report = EngineReport("backward against autograd")
    for args, own in [(a, False) for a in SWEEP_PROBES] + [(a, True) for a in OWN_RULE_PROBES]:
        expr = graphs.expression(*args)
        label = f"{expr.label}{' (your rules)' if own else ''}"
        _row(report, label, lambda expr=expr, own=own: _sweep_problem(
            probes.run_backward(value_class, backward, expr, own_rules=own), expr))
    return _finish(report, verbose)


def _sweep_problem(result: dict[str, Any], expr: Expression) -> Problem | None:
    return compare_backward(result, expr) or compare_cost(result, expr)
