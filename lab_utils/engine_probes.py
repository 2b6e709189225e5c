"""Probes for Lab 4's scalar autodiff engine: small expressions, their reference values and
gradients from torch autograd, and runners that run a student's engine on them.

An *engine* is a ``Value`` class (``Value(data, parents=(), op="")``, with the attributes
``data``, ``grad``, ``parents`` and ``local_derivatives()``), ``topological_order(root)`` and
``backward(root)``. Every runner returns plain data (floats, strings, lists and dicts of them)
so that a grader can record it; :mod:`lab_utils.engine_check` compares it with the reference.

An :class:`Expression` is data too: input values, then steps ``(name, op, parents, exponent)``
in the order they are computed, the last one the root. ``op`` is one of :data:`OPS`.
"""

from __future__ import annotations

import functools
import math
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from ._validate import describe, require_int, require_number, require_tensor

OPS = ("+", "-", "*", "/", "**", "tanh", "exp", "log")
ARITY = {"+": 2, "-": 2, "*": 2, "/": 2, "**": 1, "tanh": 1, "exp": 1, "log": 1}
MAX_NESTING = 50  # nested Python calls allowed inside topological_order / backward
CALLS_PER_NODE = 100  # calls allowed per node and edge to topological_order / backward


class Step(NamedTuple):
    """One operation: ``name = op(*parents)``; ``exponent`` only for ``**``."""

    name: str
    op: str
    parents: tuple[str, ...]
    exponent: float | None = None


@dataclass(frozen=True)
class Expression:
    """Inputs ``((name, value), ...)`` and steps in computation order; the last step is the root."""

    inputs: tuple[tuple[str, float], ...]
    steps: tuple[Step, ...]
    label: str = "expression"

    def __post_init__(self) -> None:
        known = {name for name, _ in self.inputs}
        if not self.steps:
            raise ValueError(f"{self.label}: expected at least one step, got none")
        for step in self.steps:
            if step.op not in ARITY or len(step.parents) != ARITY[step.op]:
                raise ValueError(f"{self.label}: step {step.name!r}: expected an op among {OPS} "
                                 f"with its number of parents, got {step.op!r} {step.parents}")
            if (step.op == "**") != (step.exponent is not None):
                raise ValueError(f"{self.label}: step {step.name!r}: an exponent goes with ** only")
            unknown = [p for p in step.parents if p not in known]
            if unknown or step.name in known:
                raise ValueError(f"{self.label}: step {step.name!r}: expected a new name and "
                                 f"earlier parents, got unknown parents {unknown}")
            known.add(step.name)
        used = {p for step in self.steps for p in step.parents}
        unused = [n for n in self.names[:-1] if n not in used]
        if unused:
            raise ValueError(f"{self.label}: every node must lead to the root, got unused {unused}")

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.inputs] + [step.name for step in self.steps]

    @property
    def root(self) -> str:
        return self.steps[-1].name

    @property
    def parents(self) -> dict[str, tuple[str, ...]]:
        """Every node's parents by name (``()`` for an input)."""
        return {name: () for name, _ in self.inputs} | {s.name: s.parents for s in self.steps}


def _expression(label: str, inputs: dict[str, float], *steps: tuple) -> Expression:
    return Expression(tuple(inputs.items()), tuple(Step(*s) for s in steps), label)


#: The named probe expressions; each isolates one way an engine goes wrong.
NAMED = {
    "a*a": _expression("a*a", {"a": -1.5}, ("out", "*", ("a", "a"))),
    "a+a": _expression("a+a", {"a": 0.7}, ("out", "+", ("a", "a"))),
    # s is used twice, once through u: a node visited as soon as one user is done comes too early
    "skip": _expression("skip", {"a": 0.9}, ("s", "tanh", ("a",)), ("u", "exp", ("s",)),
                        ("out", "*", ("s", "u"))),
    "diamond": _expression("diamond", {"a": 0.8, "b": -0.6}, ("s", "*", ("a", "b")),
                           ("u", "tanh", ("s",)), ("w", "exp", ("s",)),
                           ("out", "*", ("u", "w"))),
    # the lecture's tanh unit with a squared error, as in Lab 2
    "neuron": _expression("neuron", {"x1": 0.5, "x2": -1.2, "w1": 0.8, "w2": 0.3, "b": 0.1,
                                     "y": 1.0},
                          ("u1", "*", ("w1", "x1")), ("u2", "*", ("w2", "x2")),
                          ("s", "+", ("u1", "u2")), ("h_tilde", "+", ("s", "b")),
                          ("h", "tanh", ("h_tilde",)), ("e", "-", ("h", "y")),
                          ("loss", "*", ("e", "e"))),
    "all ops": _expression("all ops", {"a": 1.3, "b": 0.4, "c": -0.7}, ("p", "/", ("a", "b")),
                           ("q", "-", ("p", "c")), ("r", "**", ("q",), 3.0),
                           ("t", "log", ("r",)), ("u", "tanh", ("c",)), ("v", "exp", ("u",)),
                           ("w", "*", ("t", "v")), ("out", "+", ("w", "a"))),
}


def chain(length: int, start: float = 0.8) -> Expression:
    """x0 -> tanh -> tanh -> ... (``length`` times): a graph ``length`` nodes deep."""
    require_int("length", length, minimum=1)
    steps = [(f"x{k}", "tanh", (f"x{k - 1}",)) for k in range(1, length + 1)]
    return _expression(f"chain of {length}", {"x0": start}, *steps)


def ladder(depth: int) -> Expression:
    """``depth`` layers of two nodes, each feeding both nodes of the next: 2**depth paths."""
    require_int("depth", depth, minimum=1)
    steps = []
    for k in range(1, depth + 1):
        p, q = f"p{k - 1}", f"q{k - 1}"
        steps += [(f"s{k}", "+", (p, q)), (f"p{k}", "tanh", (f"s{k}",)), (f"q{k}", "*", (p, q))]
    steps.append(("out", "+", (f"p{depth}", f"q{depth}")))
    return _expression(f"ladder of depth {depth}", {"p0": 0.3, "q0": 0.9}, *steps)


def _float_op(op: str, args: Sequence[float], exponent: float | None) -> float | None:
    """op on floats, or None where it is undefined or far from 1 in size."""
    try:
        value = apply(op, [_Float(a) for a in args], exponent).x
    except (ValueError, TypeError, ZeroDivisionError, OverflowError):
        return None
    return value if math.isfinite(value) and 0.05 < abs(value) < 8 else None


def random_expression(n_steps: int, seed: int) -> Expression:
    """A random expression of ``n_steps`` operations on three inputs, reusing nodes often (every
    op appears; values stay moderate). The same seed gives the same expression everywhere."""
    require_int("n_steps", n_steps, minimum=1)
    require_int("seed", seed, minimum=0)
    rng = random.Random(seed)
    values = {name: round(rng.uniform(0.2, 1.2) * rng.choice((-1, 1)), 3) for name in "abc"}
    inputs, steps = dict(values), []
    for k in range(n_steps):
        names = list(values)
        op = rng.choice(OPS)
        parents = tuple(rng.choice(names[-5:] if rng.random() < 0.7 else names)
                        for _ in range(ARITY[op]))
        exponent = rng.choice((2.0, 3.0, -1.0, 0.5)) if op == "**" else None
        value = _float_op(op, [values[p] for p in parents], exponent)
        if value is None:  # undefined or too large: tanh is always safe
            op, parents, exponent = "tanh", parents[:1], None
            value = math.tanh(values[parents[0]])
        values[f"n{k}"] = value
        steps.append((f"n{k}", op, parents, exponent))
    used = {p for step in steps for p in step[2]}
    dangling = [name for name in list(values)[:-1] if name not in used]
    total = list(values)[-1]
    for k, name in enumerate(dangling):
        steps.append((f"sum{k}", "+", (total, name), None))
        total = f"sum{k}"
    return _expression(f"random expression {n_steps}/{seed}", inputs, *steps)


def expression(name: str, *args: int) -> Expression:
    """A probe expression by name: one of :data:`NAMED`, or ``"chain", length``,
    ``"ladder", depth`` or ``"random", n_steps, seed``."""
    factories: dict[str, Callable[..., Expression]] = {
        "chain": chain, "ladder": ladder, "random": random_expression}
    if name in NAMED and not args:
        return NAMED[name]
    if name in factories:
        return factories[name](*args)
    raise ValueError(f"name: expected one of {sorted(NAMED) + sorted(factories)}, got {name!r}")


class _Float:
    """A float with the methods tanh/exp/log, so that :func:`apply` works on plain numbers."""

    def __init__(self, x: float) -> None:
        self.x = float(x)

    def __add__(self, o): return _Float(self.x + o.x)  # noqa: E704
    def __sub__(self, o): return _Float(self.x - o.x)  # noqa: E704
    def __mul__(self, o): return _Float(self.x * o.x)  # noqa: E704
    def __truediv__(self, o): return _Float(self.x / o.x)  # noqa: E704
    def __pow__(self, k): return _Float(self.x ** k)  # noqa: E704
    def tanh(self): return _Float(math.tanh(self.x))  # noqa: E704
    def exp(self): return _Float(math.exp(self.x))  # noqa: E704
    def log(self): return _Float(math.log(self.x))  # noqa: E704


def apply(op: str, args: Sequence[Any], exponent: float | None = None) -> Any:
    """``op`` applied to ``args`` with Python's operators and the methods ``tanh``, ``exp``,
    ``log``: the same call builds a node of a student's engine or a torch tensor."""
    if op == "+":
        return args[0] + args[1]
    if op == "-":
        return args[0] - args[1]
    if op == "*":
        return args[0] * args[1]
    if op == "/":
        return args[0] / args[1]
    if op == "**":
        return args[0] ** exponent
    if op == "tanh":
        return args[0].tanh()
    if op == "exp":
        return args[0].exp()
    if op == "log":
        return args[0].log()
    raise ValueError(f"op: expected one of {OPS}, got {op!r}")


# ------------------------------------------------------------------ references (torch autograd)


def reference(expr: Expression) -> dict[str, dict]:
    """What a correct engine computes for ``expr``, by torch autograd in float64 on the CPU.

    Returns ``{"values": {name: float}, "grads": {name: d root / d name},
    "local": {step name: [d step / d parent, one per parent]}}`` (kept for the last few
    expressions: treat it as read-only).
    """
    return _reference(expr)


@functools.lru_cache(maxsize=8)
def _reference(expr: Expression) -> dict[str, dict]:
    tensors = {name: torch.tensor(value, dtype=torch.float64, requires_grad=True)
               for name, value in expr.inputs}
    for step in expr.steps:
        tensors[step.name] = apply(step.op, [tensors[p] for p in step.parents], step.exponent)
        tensors[step.name].retain_grad()
    tensors[expr.root].backward()
    values = {name: t.item() for name, t in tensors.items()}
    # the local derivatives: each op on fresh leaves holding its inputs, one leaf per parent
    # slot (a * a has two), all steps of one kind at once
    groups: dict[tuple[str, float | None], list[Step]] = {}
    for step in expr.steps:
        groups.setdefault((step.op, step.exponent), []).append(step)
    local = {}
    for (op, exponent), steps in groups.items():
        slots = [torch.tensor([values[s.parents[k]] for s in steps], dtype=torch.float64,
                              requires_grad=True) for k in range(ARITY[op])]
        apply(op, slots, exponent).sum().backward()
        columns = [slot.grad.tolist() for slot in slots]
        for i, s in enumerate(steps):
            local[s.name] = [column[i] for column in columns]
    return {"values": values, "grads": {name: t.grad.item() for name, t in tensors.items()},
            "local": local}


def forward_values(expr: Expression) -> dict[str, float]:
    """Every node's value, computed with Python floats (no gradients)."""
    values = dict(expr.inputs)
    for step in expr.steps:
        values[step.name] = apply(step.op, [_Float(values[p]) for p in step.parents],
                                  step.exponent).x
    return values


def local_rule_reference(op: str, points: Sequence[Sequence[float]],
                         exponent: float | None = None) -> list[list[float]]:
    """The local derivatives of ``op`` at each point (a list of input values), by autograd."""
    result = []
    for point in points:
        leaves = [torch.tensor(float(x), dtype=torch.float64, requires_grad=True) for x in point]
        apply(op, leaves, exponent).backward()
        result.append([float(leaf.grad) for leaf in leaves])
    return result


def random_mlp(nx: int, nh: int, ny: int, batch: int, seed: int
               ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """Parameters (Lab 3's shapes: Wh (nh, nx), bh (nh, 1), Wy (ny, nh), by (ny, 1)), inputs X
    (batch, nx) and one-hot targets Y (batch, ny), float64 on the CPU, drawn from ``seed``."""
    for name, value in {"nx": nx, "nh": nh, "ny": ny, "batch": batch}.items():
        require_int(name, value, minimum=1)
    require_int("seed", seed, minimum=0)
    g = torch.Generator().manual_seed(seed)
    params = {"Wh": torch.randn(nh, nx, generator=g, dtype=torch.float64),
              "bh": 0.3 * torch.randn(nh, 1, generator=g, dtype=torch.float64),
              "Wy": torch.randn(ny, nh, generator=g, dtype=torch.float64),
              "by": 0.3 * torch.randn(ny, 1, generator=g, dtype=torch.float64)}
    X = torch.randn(batch, nx, generator=g, dtype=torch.float64)
    labels = torch.randint(0, ny, (batch,), generator=g)
    return params, X, torch.nn.functional.one_hot(labels, ny).to(torch.float64)


# ------------------------------------------------------------------ running a student's engine


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
    parameters = []
    for d, g in zip(data, grads, strict=True):
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
    seen, stack, found = {id(root)}, [root], []
    while stack:
        node = stack.pop()
        found.append(node)
        for parent in node.parents:
            if id(parent) not in seen:
                seen.add(id(parent))
                stack.append(parent)
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
