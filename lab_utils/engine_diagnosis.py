"""Name the likely bug of a scalar autodiff engine (Lab 4), as a teaching assistant would.

Every function here is pure: it takes plain numbers, names and lists (what the probes of
:mod:`lab_utils.engine_probes` return, and the reference) and returns one sentence, the mistake
and its fix, or ``None`` when the evidence matches no known bug. Recognised:

- a local rule: taken from the wrong quantity (tanh's from its input, exp's from its input,
  log's from its output...), a sign or a factor in one rule, swapped inputs, a missing factor;
- an order: missing or foreign nodes, a node listed twice, the root not first, a node before
  one of its users (breadth-first and pre-order traversals are named as such);
- a sweep: the root not seeded with 1 (or seeded with its value), the sweep run from the
  leaves, a gradient overwritten instead of accumulated, a node visited before one of its
  users, local rules evaluated more than once (a path sum), deep recursion, work exponential
  in depth;
- a training step: gradients not reset, the step taken uphill, the update skipped.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

RELATIVE_TOLERANCE = 1e-7  # float64 engines and autograd agree to ~1e-13 even 5000 nodes deep
ABSOLUTE_TOLERANCE = 1e-12

ROOT_NOT_SEEDED = ("every gradient is 0: the root was never seeded; set root.grad = 1.0 "
                   "(d root / d root = 1) before the sweep")
SWEEP_FROM_THE_LEAVES = ("only the root's own inputs received gradients: the sweep visited the "
                         "nodes from the leaves to the root, so each node passed on its gradient "
                         "while it was still 0; visit the root first and every node after all "
                         "its users (the order topological_order returns, not its reverse)")
SEEDED_WITH_THE_VALUE = ("every gradient is the right one times the root's value: the seed was "
                         "root.data; set root.grad = 1.0")
RECURSION = ("{what} recursed ({detail}): a graph thousands of nodes deep needs thousands of "
             "nested calls, beyond Python's recursion limit (Lab 2, fib_memo). Walk the graph "
             "with a loop and an explicit stack, or with Kahn's algorithm; raising the limit "
             "only moves the crash (and can crash the interpreter itself)")
TOO_MUCH_WORK = ("{what} did far more work than the graph has nodes and edges ({detail}): a "
                 "node reached through several paths is handled once per path, which grows "
                 "exponentially with depth; keep a set of the nodes already seen, so that each "
                 "node is handled once")
RULES_EVALUATED_AGAIN = ("local rules were evaluated {calls} times for {nodes} nodes (node "
                         "{example!r}: {most} times): backward visits a node more than once, "
                         "either pushing gradients along every path separately (Lab 1's path "
                         "sum, exponential in depth) or following an order that lists a node "
                         "twice; visit each node once, in topological order, and evaluate its "
                         "rule once")
OVERWRITTEN = ("{node!r} is used {uses} times but its gradient holds a single contribution: a "
               "gradient was overwritten instead of accumulated; add every user's "
               "contribution to the parent's gradient (+=), never assign it (=)")
VISITED_EARLY = ("{node!r} got its share from {users} before that gradient was complete: a node "
                 "was visited before all the nodes that use it; visit every node after all its "
                 "users (the order topological_order promises)")
NOT_RESET = ("the gradients were not reset after the update: the next backward() adds to the "
             "old ones and every later step uses the sum; set p.grad = 0.0 after updating p")
UPHILL = ("each parameter moved by +eta * grad: the step goes uphill; subtract, "
          "p.data -= eta * p.grad")
UPDATE_SKIPPED = ("the parameters did not move, and the gradients were reset: reset them after "
                  "the update, not before it (or the update was left out)")


def close(got: float, want: float, tolerance: float = RELATIVE_TOLERANCE) -> bool:
    """Equal up to rounding: within ``tolerance`` relative to ``want``, or within
    :data:`ABSOLUTE_TOLERANCE` of it (for values at or near 0)."""
    return math.isfinite(got) and abs(got - want) <= tolerance * abs(want) + ABSOLUTE_TOLERANCE


def _all_close(got: Sequence[float], want: Sequence[float]) -> bool:
    return len(got) == len(want) and all(close(g, w) for g, w in zip(got, want))


# ---------------------------------------------------------------------------- local rules

_INPUT = ("first input a", "second input b")


def rule_name(op: str, exponent: float | None = None) -> str:
    """How a rule is named in messages: ``a * b``, ``a ** 3``, ``tanh(a)``..."""
    forms = {"+": "a + b", "-": "a - b", "*": "a * b", "/": "a / b", "tanh": "tanh(a)",
             "exp": "exp(a)", "log": "log(a)"}
    return f"a ** {exponent:g}" if op == "**" else forms.get(op, op)


def _known_mistakes(op: str, point: Sequence[float], exponent: float | None
                    ) -> list[tuple[str, list[float]]]:
    """(sentence, the derivatives that mistake gives at ``point``) for the usual slips of ``op``."""
    a = point[0]
    if op == "*":
        return [("the two derivatives are swapped: d(a b)/da is the *other* input b, and "
                 "d(a b)/db is a", [a, point[1]])]
    if op == "-":
        return [("sign: d(a - b)/db is -1, not +1", [1.0, 1.0])]
    if op == "+":
        return [("d(a + b)/db is 1 too: each input of a sum gets the full gradient",
                 [1.0, 0.0])]
    if op == "/":
        b = point[1]
        return [("sign: d(a / b)/db = -a / b², with a minus", [1 / b, a / b**2]),
                ("d(a / b)/db = -a / b²: the factor a is missing", [1 / b, -1 / b**2]),
                ("d(a / b)/da = 1 / b, not b", [b, -a / b**2])]
    if op == "**" and exponent is not None:
        return [(f"the factor n is missing: d(a^n)/da = n a^(n-1), here {exponent:g} a^"
                 f"{exponent - 1:g}", [a ** (exponent - 1)]),
                (f"the exponent was not lowered: d(a^n)/da = n a^(n-1), not n a^n (here "
                 f"{exponent:g} a^{exponent - 1:g})", [exponent * a**exponent])]
    if op == "tanh":
        t = math.tanh(a)
        return [("tanh's derivative was computed from its input a (1 - a²); it is "
                 "1 - tanh(a)² = 1 - out², from the output out.data", [1 - a * a]),
                ("the square is missing: tanh' = 1 - out², not 1 - out", [1 - t]),
                ("that is the sigmoid's derivative out (1 - out); tanh's is 1 - out²",
                 [t * (1 - t)]),
                ("sign: tanh' = 1 - out², not out² - 1", [t * t - 1])]
    if op == "exp":
        return [("exp's derivative was taken from its input a; it is exp(a), the output "
                 "out.data itself", [a]),
                ("d exp(a)/da is exp(a), not 1", [1.0])]
    if op == "log":
        return [("log's derivative was computed from its output (1 / log a); it is 1 / a, "
                 "from the input", [1 / math.log(a)]),
                ("d log(a)/da is 1 / a, not a", [a]),
                ("d log(a)/da is 1 / a, not log(a)", [math.log(a)])]
    return []


def diagnose_local_rule(op: str, points: Sequence[Sequence[float]],
                        got: Sequence[Sequence[float]], expected: Sequence[Sequence[float]],
                        exponent: float | None = None) -> str | None:
    """The likely mistake in the local rule of ``op``, from its derivatives ``got`` and the
    correct ones ``expected`` at each of ``points`` (the inputs), or ``None``.

    A mistake is named only when it explains every point; a constant factor (-1, 2, 1/2...)
    only when it is the same at every point.
    """
    name = rule_name(op, exponent)
    if any(len(g) != len(e) for g, e in zip(got, expected)):
        n = len(expected[0]) if expected else 0
        return (f"the rule of {name} returned {len(got[0]) if got else 0} numbers; it must "
                f"return one derivative per input ({n}), in the order of parents")
    mistakes = [_known_mistakes(op, p, exponent) for p in points]
    for k, (sentence, _) in enumerate(mistakes[0] if mistakes else []):
        if all(_all_close(g, m[k][1]) and not _all_close(m[k][1], e)
               for g, m, e in zip(got, mistakes, expected)):
            return f"rule of {name}: {sentence}"
    for slot in range(len(expected[0]) if expected else 0):
        pairs = [(g[slot], e[slot]) for g, e in zip(got, expected)]
        if all(close(g, e) for g, e in pairs) or any(e == 0 for _, e in pairs):
            continue
        factors = [g / e for g, e in pairs]
        c = factors[0]
        if len(factors) < 2 or not all(close(f, c, 1e-6) for f in factors):
            return None
        where = f"rule of {name}, {_INPUT[slot] if len(expected[0]) > 1 else 'its input'}"
        if close(c, -1.0, 1e-6):
            return f"{where}: sign flipped; the derivative has the opposite sign"
        if close(c, 0.0, 1e-6):
            return f"{where}: the derivative is 0; it is not"
        return f"{where}: off by a constant factor {c:.4g}; look for a stray or missing factor"
    return None


# ---------------------------------------------------------------------------- topological order


def _breadth_first(parents: Mapping[str, Sequence[str]], root: str) -> list[str]:
    order, queued = [root], {root}
    for node in order:
        for parent in parents[node]:
            if parent not in queued:
                queued.add(parent)
                order.append(parent)
    return order


def _pre_order(parents: Mapping[str, Sequence[str]], root: str, reverse: bool) -> list[str]:
    order, done, pending = [], set(), [root]
    while pending:
        node = pending.pop()
        if node in done:
            continue
        done.add(node)
        order.append(node)
        pending.extend(parents[node] if reverse else reversed(parents[node]))
    return order


def diagnose_order(order: Sequence[str | None], parents: Mapping[str, Sequence[str]],
                   root: str) -> str | None:
    """What is wrong with ``order`` (node names; ``None`` for an object that is not a node) as
    the order of a reverse sweep from ``root`` over the graph ``parents`` (name -> its parents'
    names), or ``None`` when it is a valid order."""
    if any(name is None for name in order):
        return ("the list holds objects that are not nodes of the graph: return the Value "
                "objects themselves (not their data or new Values)")
    listed = Counter(order)
    missing = [name for name in parents if name not in listed]
    if missing:
        leaves = all(not parents[name] for name in missing)
        return (f"{len(missing)} node(s) are missing, e.g. {missing[0]!r}"
                + (": the inputs (leaves) belong in the order too, they get gradients" if leaves
                   else ": follow .parents from the root to every node it depends on"))
    twice = sorted(name for name, n in listed.items() if n > 1)
    if twice:
        return (f"{twice[0]!r} is listed {listed[twice[0]]} times: a node reached from "
                "two users must be listed once; keep a set of the nodes already seen")
    position = {name: k for k, name in enumerate(order)}
    late = [(user, name) for user, names in parents.items() for name in names
            if position[name] < position[user]]
    if not late:
        return None
    if all(position[name] < position[user] for user, names in parents.items() for name in names):
        return ("the order is reversed: the inputs come first and the root last; a reverse "
                "sweep starts at the root (return the list reversed)")
    user, name = late[0]
    if list(order) == _breadth_first(parents, root):
        return (f"this is a breadth-first order: {name!r} comes before {user!r}, which uses it; "
                "breadth-first lists a node as soon as one user is reached, but it must wait "
                "for all of them: list a node after all its parents are done (post-order) and "
                "reverse, or count each node's users (Kahn's algorithm)")
    if list(order) in (_pre_order(parents, root, False), _pre_order(parents, root, True)):
        return (f"this is a pre-order: {name!r} is listed when first reached, before {user!r}, "
                "which uses it; append a node only after all its parents are finished "
                "(post-order), then reverse the list")
    if order and order[0] != root:
        return f"the root {root!r} must come first, got {order[0]!r}"
    return (f"{name!r} comes before {user!r}, which uses it: every node must come after all "
            "the nodes that use it")


# ---------------------------------------------------------------------------- the sweep


def diagnose_sweep(parents: Mapping[str, Sequence[str]], local: Mapping[str, Sequence[float]],
                   got: Mapping[str, float], expected: Mapping[str, float],
                   rule_calls: Mapping[str, int], root: str, root_value: float) -> str | None:
    """The likely bug of a backward sweep, or ``None``.

    ``parents`` maps each node to its parents' names; ``local`` each computed node to the local
    derivatives its rule returned; ``got`` and ``expected`` are every node's gradient from the
    engine and from autograd; ``rule_calls`` how often each node's rule was evaluated.
    """
    repeated = {name: n for name, n in rule_calls.items() if n > 1}
    if repeated:
        example = max(repeated, key=repeated.get)
        return RULES_EVALUATED_AGAIN.format(calls=sum(rule_calls.values()),
                                            nodes=len(rule_calls), example=example,
                                            most=repeated[example])
    wrong = [name for name in expected if not close(got[name], expected[name])]
    if not wrong:
        return None
    others = [name for name in expected if name != root and expected[name] != 0]
    if others and all(got[name] == 0 for name in others) and not close(got[root], 1.0):
        return ROOT_NOT_SEEDED
    direct: dict[str, float] = {}  # what the root alone passes to its inputs
    for slot, name in enumerate(parents[root]):
        direct[name] = direct.get(name, 0.0) + got[root] * local[root][slot]
    if close(got[root], 1.0) and all(close(got[n], direct.get(n, 0.0)) for n in expected
                                     if n != root):
        return SWEEP_FROM_THE_LEAVES
    if root_value not in (0.0, 1.0) and all(close(got[n], root_value * expected[n])
                                            for n in expected):
        return SEEDED_WITH_THE_VALUE
    uses: dict[str, list[tuple[str, int]]] = {name: [] for name in parents}
    for user, names in parents.items():
        for slot, name in enumerate(names):
            uses[name].append((user, slot))

    def terms(name: str) -> list[float]:  # each use's contribution, from the engine's numbers
        return [got[user] * local[user][slot] for user, slot in uses[name]]

    inner = [n for n in parents if n != root and uses[n]]
    if all(close(got[n], sum(local[u][k] for u, k in uses[n])) for n in inner) and any(
            not close(got[n], sum(terms(n))) for n in inner):
        return ("each parent received the local derivative alone: the chain rule multiplies "
                "it by the gradient of the node that uses the parent")
    for name in [n for n in inner if len(uses[n]) > 1]:
        if not close(got[name], sum(terms(name))) and any(close(got[name], t) for t in terms(name)):
            return OVERWRITTEN.format(node=name, uses=len(uses[name]))
    for name in inner:
        if not close(got[name], sum(terms(name))) and _partial_share(name, uses, terms, got,
                                                                     local, root):
            users = sorted({user for user, _ in uses[name]})
            return VISITED_EARLY.format(node=name, users=" or ".join(map(repr, users)))
    return None


def _partial_share(name, uses, terms, got, local, root) -> bool:
    """Whether ``got[name]`` is what it receives when some user passed on its gradient before
    that gradient was complete: from each use, local x (a sum of some of that user's own
    incoming contributions), not all of them complete."""
    options = []
    for user, slot in uses[name]:
        incoming = [1.0] if user == root else terms(user)
        if len(incoming) > 10:
            return False
        sums = {sum(t for bit, t in enumerate(incoming) if mask >> bit & 1)
                for mask in range(2 ** len(incoming))}
        options.append([local[user][slot] * s for s in sorted(sums)])
    total = 1
    for choices in options:
        total *= len(choices)
    if total > 4096:
        return False
    combos = [0.0]
    for choices in options:
        combos = [c + x for c in combos for x in choices]
    return any(close(got[name], c) for c in combos)


def diagnose_recursion(what: str, detail: str) -> str:
    """The sentence for ``what`` (a function name) having recursed; ``detail`` says how."""
    return RECURSION.format(what=what, detail=detail)


def diagnose_work(what: str, detail: str) -> str:
    """The sentence for ``what`` having exceeded its work budget; ``detail`` says by how much."""
    return TOO_MUCH_WORK.format(what=what, detail=detail)


# ---------------------------------------------------------------------------- a training step


def diagnose_sgd_step(data: Sequence[float], grads: Sequence[float], eta: float,
                      data_after: Sequence[float], grads_after: Sequence[float]) -> str | None:
    """The likely mistake of one gradient-descent step on Values, or ``None``: ``data`` and
    ``grads`` before, ``data_after`` and ``grads_after`` after ``sgd_step(parameters, eta)``."""
    moved = [d - eta * g for d, g in zip(data, grads)]
    moved_up = [d + eta * g for d, g in zip(data, grads)]
    reset = all(g == 0 for g in grads_after)
    if _all_close(data_after, moved) and not reset and _all_close(grads_after, grads):
        return NOT_RESET
    if _all_close(data_after, moved_up) and any(g != 0 for g in grads):
        return UPHILL
    if _all_close(data_after, data) and reset and any(g != 0 for g in grads):
        return UPDATE_SKIPPED
    if _all_close(data_after, [d - g for d, g in zip(data, grads)]) and eta != 1:
        return "the step size is missing: p.data -= eta * p.grad"
    return None
