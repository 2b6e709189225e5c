"""The probe graphs of Lab 4's engine checks, and what torch autograd says about them.

An :class:`Expression` is data: input values, then steps ``(name, op, parents, exponent)`` in
the order they are computed, the last one the root; ``op`` is one of :data:`OPS`. The named
probes (:data:`NAMED`) each isolate one way an engine goes wrong (a node used twice, a skip
connection, a diamond...); :func:`chain`, :func:`ladder` and :func:`random_expression` make
deep, many-path and random graphs. :func:`reference` gives every node's value, gradient and
local derivatives by torch autograd in float64, the yardstick of :mod:`lab_utils.engine_check`.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from ._validate import require_int

OPS = ("+", "-", "*", "/", "**", "tanh", "exp", "log")
ARITY = {"+": 2, "-": 2, "*": 2, "/": 2, "**": 1, "tanh": 1, "exp": 1, "log": 1}


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
    "local": {step name: [d step / d parent, one per parent]}}`` (kept for the last 32
    expressions, as many as Lab 4's tests use: treat it as read-only).
    """
    return _reference(expr)


@functools.lru_cache(maxsize=32)
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
