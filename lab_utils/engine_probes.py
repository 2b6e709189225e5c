"""Run a student's scalar autodiff engine (Lab 4) on the probe graphs and report what it did.

An *engine* is a ``Value`` class (``Value(data, parents=(), op="")``, with the attributes
``data``, ``grad``, ``parents`` and ``local_derivatives()``), ``topological_order(root)`` and
``backward(root)``. Each runner builds a graph of :mod:`lab_utils.engine_graphs` with the
student's class, calls the student's function (with the recursion limit lowered and a work
budget, so that recursion and exponential work show up as findings, not crashes or hangs) and
returns plain data: floats, strings, lists and dicts of them, which a grader can record.
:mod:`lab_utils.engine_check` compares that data with the references.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ._validate import describe, require_number, require_tensor
from .engine_graphs import ARITY, OPS, Expression, apply, forward_values, reference

MAX_NESTING = 50  # nested Python calls allowed inside topological_order / backward
CALLS_PER_NODE = 100  # calls allowed per node and edge to topological_order / backward


class TooMuchWork(RuntimeError):
    """A function made far more calls than the size of its input justifies."""


def call_without_deep_recursion(fn: Callable, *args: Any, max_nesting: int = MAX_NESTING,
                                max_calls: int | None = None) -> Any:
    """``fn(*args)`` with Python's recursion limit lowered to just above the current depth.

    Raises ``RecursionError`` if ``fn`` nests Python calls more than ``max_nesting`` deep or
    changes the recursion limit: a loop passes, a recursion over a deep graph fails, however
    high the limit was set before. Raises :class:`TooMuchWork` as soon as ``fn`` has made more
    than ``max_calls`` calls (Python and built-in functions alike), if given.
    """
    depth, frame = 0, sys._getframe()
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    nesting = deepest = calls = 0

    def watch(frame, event, arg):
        nonlocal nesting, deepest, calls
        if event == "call":
            nesting += 1
            deepest = max(deepest, nesting)
        elif event == "return":
            nesting -= 1
        if event in ("call", "c_call"):
            calls += 1
            if max_calls is not None and calls > max_calls:
                raise TooMuchWork(f"{fn.__name__} made more than {max_calls} calls")

    limit, profiler = sys.getrecursionlimit(), sys.getprofile()
    lowered = depth + 2 * max_nesting + 50
    sys.setrecursionlimit(lowered)
    sys.setprofile(watch)
    try:
        result = fn(*args)
    finally:
        sys.setprofile(profiler)
        changed = sys.getrecursionlimit() != lowered
        sys.setrecursionlimit(limit)
    if changed:
        raise RecursionError(f"{fn.__name__} changed the recursion limit")
    if deepest > max_nesting:
        raise RecursionError(f"{fn.__name__} nested {deepest} Python calls")
    return result


def work_budget(expr: Expression) -> int:
    """Calls allowed to topological_order or backward on ``expr``: a generous constant per node
    and edge, far below what handling a node once per path costs on a deep graph."""
    edges = sum(len(step.parents) for step in expr.steps)
    return CALLS_PER_NODE * (len(expr.names) + edges) + 10_000


def _float(what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise TypeError(f"{what}: expected a number, got {describe(value)}") from None
    return float(value)


def _derivatives(what: str, returned: Any) -> list[float]:
    if not isinstance(returned, (tuple, list)):
        raise TypeError(f"{what}: expected a tuple of numbers (one per input), got "
                        f"{describe(returned)}")
    return [_float(f"{what}[{k}]", x) for k, x in enumerate(returned)]


def check_value_class(value_class: Any) -> None:
    """Raise ``TypeError`` unless ``value_class`` is a class (the student's ``Value``)."""
    if not isinstance(value_class, type):
        raise TypeError(f"value_class: expected the Value class, got {describe(value_class)}")


def run_local_rule(value_class: type, op: str, points: Sequence[Sequence[float]],
                   exponent: float | None = None) -> list[list[float]]:
    """``out.local_derivatives()`` of a fresh ``out = op(Value(x), ...)`` at each point."""
    check_value_class(value_class)
    if op not in ARITY:
        raise ValueError(f"op: expected one of {OPS}, got {op!r}")
    result = []
    for point in points:
        if len(point) != ARITY[op]:
            raise ValueError(f"points: {op} takes {ARITY[op]} inputs, got {list(point)}")
        out = apply(op, [value_class(x) for x in point], exponent)
        if not isinstance(out, value_class):
            raise TypeError(f"{op} on Values: expected a Value, got {describe(out)}")
        result.append(_derivatives(f"local_derivatives() of {op}", out.local_derivatives()))
    return result


def _build(value_class: type, expr: Expression, rules: str) -> dict[str, Any]:
    """The nodes of ``expr`` made with ``value_class``: ``rules`` = "own" applies the class's
    operations; "given" creates each node with its constructor and a local rule that returns
    autograd's derivatives; "none" uses the constructor alone (for topological_order)."""
    if rules == "given":
        ref = reference(expr)
        values, local = ref["values"], ref["local"]
    elif rules == "none":
        values = forward_values(expr)
    nodes = {name: value_class(value) for name, value in expr.inputs}
    for step in expr.steps:
        parents = [nodes[p] for p in step.parents]
        if rules == "own":
            nodes[step.name] = apply(step.op, parents, step.exponent)
            continue
        node = value_class(values[step.name], tuple(parents), step.op)
        if rules == "given":
            node.local_derivatives = (lambda d=tuple(local[step.name]): d)
        nodes[step.name] = node
    return nodes


def run_topological_order(value_class: type, topological_order: Callable,
                          expr: Expression) -> dict[str, Any]:
    """Run ``topological_order`` on ``expr`` (nodes made by the constructor, so the local rules
    play no part), without deep recursion. Returns ``{"order": [node names; None for an object
    that is not a node of the graph]}``, ``{"returned": description}`` if it returned no list,
    ``{"recursion": what happened}`` or ``{"work": what happened}`` (see :func:`work_budget`)."""
    check_value_class(value_class)
    nodes = _build(value_class, expr, "none")
    try:
        order = call_without_deep_recursion(topological_order, nodes[expr.root],
                                            max_calls=work_budget(expr))
    except RecursionError as error:
        return {"recursion": str(error)}
    except TooMuchWork as error:
        return {"work": str(error)}
    if not isinstance(order, (list, tuple)):
        return {"returned": describe(order)}
    names = {id(node): name for name, node in nodes.items()}
    return {"order": [names.get(id(node)) for node in order]}


def run_backward(value_class: type, backward: Callable, expr: Expression, *,
                 own_rules: bool = False) -> dict[str, Any]:
    """Run ``backward`` on the root of ``expr``, without deep recursion.

    With ``own_rules`` the nodes are made by the class's own operations (its local rules are
    tested too), otherwise by the constructor with autograd's local derivatives (only the
    sweep is tested). Returns ``{"grads": {name: float}, "rule_calls": {step: int},
    "local": {step: [floats]} (own rules only)}``, ``{"recursion": what happened}`` or
    ``{"work": what happened}``.
    """
    check_value_class(value_class)
    nodes = _build(value_class, expr, "own" if own_rules else "given")
    calls = {step.name: 0 for step in expr.steps}
    rules = {}
    for step in expr.steps:
        node = nodes[step.name]
        if not isinstance(node, value_class):
            raise TypeError(f"{step.op} on Values: expected a Value, got {describe(node)}")
        rules[step.name] = node.local_derivatives

        def counted(name=step.name, rule=node.local_derivatives):
            calls[name] += 1
            return rule()
        node.local_derivatives = counted
    try:
        call_without_deep_recursion(backward, nodes[expr.root], max_calls=work_budget(expr))
    except RecursionError as error:
        return {"recursion": str(error)}
    except TooMuchWork as error:
        return {"work": str(error)}
    result = {"grads": {name: _float(f"{name}.grad", node.grad) for name, node in nodes.items()},
              "rule_calls": calls}
    if own_rules:
        result["local"] = {s.name: _derivatives(f"local_derivatives() of {s.op}", rules[s.name]())
                           for s in expr.steps}
    return result


MLP_NAMES = ("Wh", "bh", "Wy", "by")


def mlp_values(value_class: type, params: dict[str, torch.Tensor]) -> dict[str, list]:
    """Lab 3's parameter tensors as Values: ``Wh`` (nh, nx) and ``Wy`` (ny, nh) become lists of
    rows of Values, ``bh`` (nh, 1) and ``by`` (ny, 1) lists of Values."""
    check_value_class(value_class)
    for k in MLP_NAMES:
        shape = (None, None) if k in ("Wh", "Wy") else (None, 1)
        require_tensor(f"params[{k!r}]", params[k], shape=shape, floating=True)
    values = {k: [[value_class(x) for x in row] for row in params[k].tolist()]
              for k in ("Wh", "Wy")}
    return values | {k: [value_class(row[0]) for row in params[k].tolist()] for k in ("bh", "by")}


def mlp_tensors(values: dict[str, list], attribute: str = "data") -> dict[str, torch.Tensor]:
    """The ``data`` (or ``grad``) of Values laid out by :func:`mlp_values`, as Lab 3's float64
    tensors: Wh (nh, nx), bh (nh, 1), Wy (ny, nh), by (ny, 1)."""
    if attribute not in ("data", "grad"):
        raise ValueError(f"attribute: expected 'data' or 'grad', got {attribute!r}")
    rows = {k: [[_float(f"{k}.{attribute}", getattr(v, attribute)) for v in row]
                for row in values[k]] for k in ("Wh", "Wy")}
    rows |= {k: [[_float(f"{k}.{attribute}", getattr(v, attribute))] for v in values[k]]
             for k in ("bh", "by")}
    return {k: torch.tensor(rows[k], dtype=torch.float64) for k in MLP_NAMES}


def run_mlp(value_class: type, backward: Callable, mlp_loss: Callable,
            params: dict[str, torch.Tensor], X: torch.Tensor, Y: torch.Tensor) -> dict[str, Any]:
    """``loss = mlp_loss(params as Values, X rows, Y rows)``, then ``backward(loss)``.

    ``params`` are Lab 3's tensors, handed to the engine as :func:`mlp_values` lays them out;
    ``X`` and ``Y`` as lists of rows of floats. Returns ``{"loss": float, "grads": {name:
    nested lists shaped like params[name]}}``.
    """
    values = mlp_values(value_class, params)
    loss = mlp_loss(values, X.tolist(), Y.tolist())
    if not isinstance(loss, value_class):
        raise TypeError(f"mlp_loss: expected it to return a Value, got {describe(loss)}")
    backward(loss)
    grads = mlp_tensors(values, "grad")
    return {"loss": _float("mlp_loss(...).data", loss.data),
            "grads": {k: v.tolist() for k, v in grads.items()}}


def run_sgd_step(value_class: type, sgd_step: Callable, data: Sequence[float],
                 grads: Sequence[float], eta: float) -> dict[str, list[float]]:
    """``sgd_step(parameters, eta)`` on fresh Values holding ``data`` and ``grads``; returns
    ``{"data": [...], "grads": [...]}`` afterwards."""
    check_value_class(value_class)
    require_number("eta", eta)
    if len(grads) != len(data):
        raise ValueError(f"grads: expected {len(data)} numbers, one per entry of data, got "
                         f"{len(grads)}")
    parameters = []
    for d, g in zip(data, grads):
        parameter = value_class(d)
        parameter.grad = float(g)
        parameters.append(parameter)
    sgd_step(parameters, eta)
    return {"data": [_float("data", p.data) for p in parameters],
            "grads": [_float("grad", p.grad) for p in parameters]}


# ------------------------------------------------------------------ measuring a graph


def graph_nodes(root: Any) -> list[Any]:
    """Every node ``root`` depends on (``root`` included), each once, found through
    ``.parents`` with an explicit stack (no order promised)."""
    known, pending, found = {id(root)}, [root], []
    while pending:
        node = pending.pop()
        found.append(node)
        for parent in node.parents:
            if id(parent) not in known:
                known.add(id(parent))
                pending.append(parent)
    return found


def count_graph(root: Any, leaves: Sequence[Any]) -> dict[str, int]:
    """Sizes that decide the cost of a gradient: ``nodes``, ``edges`` (one per parent slot, so
    ``a * a`` has two), ``paths`` from the ``leaves`` to ``root`` and ``path-sum
    multiplications``: Lab 1's cost of summing, for every leaf, the product of the local
    derivatives along each of its paths (k multiplications for a path of k edges).

    Counted with the adjacency matrix A (A[i, j] = edges from node j into node i): the paths
    from j to i are the entries of I + A + A² + ... = (I - A)⁻¹, their total length those of
    A + 2A² + 3A³ + ... = A (I - A)⁻²; only the root's row is needed. Meant for graphs of up
    to a few thousand nodes.
    """
    nodes = graph_nodes(root)  # the root first
    index = {id(node): k for k, node in enumerate(nodes)}
    unknown = [k for k, leaf in enumerate(leaves) if id(leaf) not in index]
    if unknown:
        raise ValueError(f"leaves: expected nodes that root depends on, got {len(unknown)} others "
                         f"(positions {unknown[:5]})")
    edges = [(index[id(node)], index[id(parent)]) for node in nodes for parent in node.parents]
    A = torch.zeros(len(nodes), len(nodes), dtype=torch.float64)
    if edges:
        heads, tails = zip(*edges)
        A.index_put_((torch.tensor(heads), torch.tensor(tails)),
                     torch.ones(len(edges), dtype=torch.float64), accumulate=True)
    # row vectors r M⁻¹ with M = I - A, as solutions of Mᵀ xᵀ = rᵀ
    factors = torch.linalg.lu_factor((torch.eye(len(nodes), dtype=torch.float64) - A).T)
    def times_inverse(row):
        return torch.linalg.lu_solve(*factors, row[:, None])[:, 0]
    walks = times_inverse(torch.eye(len(nodes), dtype=torch.float64)[0])
    lengths = times_inverse(times_inverse(A[0]))
    columns = [index[id(leaf)] for leaf in leaves]
    return {"nodes": len(nodes), "edges": len(edges),
            "paths": round(float(walks[columns].sum())),
            "path-sum multiplications": round(float(lengths[columns].sum()))}


def count_rule_evaluations(backward: Callable, root: Any) -> dict[str, int]:
    """Run ``backward(root)`` counting how often local rules are evaluated and how many local
    derivatives they hand back (restores the rules afterwards)."""
    nodes = [n for n in graph_nodes(root) if n.parents]
    counts = {"rule evaluations": 0, "local derivatives used": 0}
    originals = [n.local_derivatives for n in nodes]
    for node, rule in zip(nodes, originals):
        def counted(rule=rule):
            result = rule()
            counts["rule evaluations"] += 1
            counts["local derivatives used"] += len(result)
            return result
        node.local_derivatives = counted
    try:
        backward(root)
    finally:
        for node, rule in zip(nodes, originals):
            node.local_derivatives = rule
    return counts
