"""A catalogue of Lab 4 engines: correct ones in several styles and buggy ones, one bug each.

Every engine is the solution notebook's answer cells (``value``, ``topological_order``,
``backward``, ``mlp_loss``, ``sgd_step``) with some of them replaced. A buggy engine changes one
line of the solution (or brings its own function) and names the test cells that must fail, each
with a fragment of the diagnosis its message must carry, and the test cells that must still
pass: the bug is caught where it lives, and nowhere it does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import nbformat

from instructor.notebooks import grade_id as cell_id
from instructor.notebooks import is_answer_cell, solved_source
from labs import solution_path

LAB = "lab4_autodiff_engine"
ANSWER_CELLS = ("value", "topological_order", "backward", "mlp_loss", "sgd_step")
TEST_CELLS = ("test_rules_arithmetic", "test_rules_functions", "test_topological_order",
              "test_topological_order_deep", "test_backward_reuse", "test_backward_graphs",
              "test_backward_cost", "test_backward_deep", "test_engine_end_to_end",
              "test_mlp_loss", "test_sgd_step")
ORDER_AND_SWEEP = ("test_topological_order", "test_topological_order_deep",
                   "test_backward_reuse", "test_backward_graphs", "test_backward_cost",
                   "test_backward_deep")
RULES = ("test_rules_arithmetic", "test_rules_functions")


def solution_answers() -> dict[str, str]:
    """grade_id -> the code of each answer cell of the solution, markers removed."""
    source = nbformat.read(solution_path(LAB), as_version=4)
    found = {cell_id(c): solved_source(c) for c in source.cells if is_answer_cell(c)}
    return {k: found[k] for k in ANSWER_CELLS}


def replaced(code: str, old: str, new: str) -> str:
    """``code`` with the one occurrence of ``old`` replaced by ``new``."""
    if code.count(old) != 1:
        raise AssertionError(f"expected exactly one {old!r} in the solution, found "
                             f"{code.count(old)}: update the catalogue")
    return code.replace(old, new)


@dataclass
class Engine:
    """Answer cells replacing the solution's (as code, or as (old, new) edits of it)."""

    name: str
    cells: dict[str, str | tuple[str, str]] = field(default_factory=dict)
    fails: dict[str, str] = field(default_factory=dict)  # test cell -> diagnosis fragment
    passes: tuple[str, ...] = ()

    def answers(self) -> dict[str, str]:
        result = solution_answers()
        for grade_id, change in self.cells.items():
            result[grade_id] = (replaced(result[grade_id], *change) if isinstance(change, tuple)
                                else change)
        return result

    def namespace(self) -> dict:
        """The engine's functions and class, defined as the notebook would define them."""
        scope = {"math": math}
        for grade_id in ANSWER_CELLS:
            exec(compile(self.answers()[grade_id], f"<{self.name}: {grade_id}>", "exec"), scope)
        return scope


# ------------------------------------------------------------------ correct engines

KAHN_ORDER = '''def topological_order(root):
    users = {id(root): 0}
    seen, stack = {id(root)}, [root]
    while stack:                       # count every node's uses
        node = stack.pop()
        for parent in node.parents:
            users[id(parent)] = users.get(id(parent), 0) + 1
            if id(parent) not in seen:
                seen.add(id(parent))
                stack.append(parent)
    order, ready = [], [root]
    while ready:                       # a node is ready once all its users are listed
        node = ready.pop()
        order.append(node)
        for parent in node.parents:
            users[id(parent)] -= 1
            if users[id(parent)] == 0:
                ready.append(parent)
    return order
'''

ENTER_EXIT_ORDER = '''def topological_order(root):
    finished, expanded, done = [], set(), set()
    stack = [root]
    while stack:
        node = stack[-1]
        if id(node) in done:
            stack.pop()
        elif id(node) in expanded:     # second time on top: its parents are all done
            stack.pop()
            done.add(id(node))
            finished.append(node)
        else:
            expanded.add(id(node))
            stack.extend(parent for parent in node.parents if id(parent) not in done)
    finished.reverse()
    return finished
'''

DICT_BACKWARD = '''def backward(root):
    order = topological_order(root)
    grads = {id(root): 1.0}
    for node in order:
        g = grads.get(id(node), 0.0)
        for parent, local in zip(node.parents, node.local_derivatives()):
            grads[id(parent)] = grads.get(id(parent), 0.0) + g * local
    for node in order:
        node.grad += grads.get(id(node), 0.0)
'''

KAHN_BACKWARD = '''def backward(root):
    pending, seen, stack = {}, {root}, [root]
    while stack:
        node = stack.pop()
        for parent in node.parents:
            pending[parent] = pending.get(parent, 0) + 1
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    root.grad = 1.0
    ready = [root]
    while ready:
        node = ready.pop()
        for parent, local in zip(node.parents, node.local_derivatives()):
            parent.grad += node.grad * local
            pending[parent] -= 1
            if pending[parent] == 0:
                ready.append(parent)
'''

LOG_SUM_EXP_MLP = '''def mlp_loss(params, X, Y):
    losses = []
    for x, y in zip(X, Y):
        hidden = []
        for row, b in zip(params["Wh"], params["bh"]):
            pre = b
            for w, xj in zip(row, x):
                pre = pre + w * xj
            hidden.append(pre.tanh())
        scores = []
        for row, b in zip(params["Wy"], params["by"]):
            score = b
            for w, hj in zip(row, hidden):
                score = score + w * hj
            scores.append(score)
        shift = max(score.data for score in scores)
        log_norm = sum((score - shift).exp() for score in scores).log() + shift
        losses.append(sum(yi * (log_norm - score) for yi, score in zip(y, scores)))
    return sum(losses) * (1.0 / len(X))
'''

TWO_LOOP_SGD = '''def sgd_step(parameters, eta):
    for p in parameters:
        p.data = p.data - eta * p.grad
    for p in parameters:
        p.grad = 0
'''

RULES_FROM_INPUTS = {  # correct rules written another way: recomputed, lists, ints
    "return (1.0 - out.data ** 2,)": "return (1 - math.tanh(self.data) ** 2,)",
    "return (out.data,)": "return [math.exp(self.data)]",
    "return (1.0 / self.data,)": "return (self.data ** -1,)",
    "return (1.0 / other.data, -self.data / other.data ** 2)":
        "return (1 / other.data, -out.data / other.data)",
    "return (exponent * self.data ** (exponent - 1),)":
        "return (exponent * out.data / self.data,)",
    "return (1.0, -1.0)": "return (1, -1)",
    "return (other.data, self.data)": "return [other.data, self.data]",
}


def _value_in_another_style() -> str:
    code = solution_answers()["value"]
    for old, new in RULES_FROM_INPUTS.items():
        code = replaced(code, old, new)
    return code


def correct_engines() -> list[Engine]:
    return [
        Engine("solution"),
        Engine("Kahn's algorithm", {"topological_order": KAHN_ORDER}),
        Engine("enter/exit stack, set of ids", {"topological_order": ENTER_EXIT_ORDER}),
        Engine("gradients in a dict", {"backward": DICT_BACKWARD}),
        Engine("backward with its own Kahn sweep", {"backward": KAHN_BACKWARD}),
        Engine("rules recomputed from the inputs, log-sum-exp loss, two-loop step",
               {"value": _value_in_another_style(), "mlp_loss": LOG_SUM_EXP_MLP,
                "sgd_step": TWO_LOOP_SGD}),
    ]


# ------------------------------------------------------------------ buggy engines

BREADTH_FIRST = '''def topological_order(root):
    order, seen = [root], {root}
    for node in order:
        for parent in node.parents:
            if parent not in seen:
                seen.add(parent)
                order.append(parent)
    return order
'''

PRE_ORDER = '''def topological_order(root):
    order, seen, stack = [], set(), [root]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        order.append(node)
        stack.extend(reversed(node.parents))
    return order
'''

NO_SEEN_SET = '''def topological_order(root):
    finished, stack = [], [(root, False)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            finished.append(node)
        else:
            stack.append((node, True))
            stack.extend((parent, False) for parent in node.parents)
    return finished[::-1]
'''

RECURSIVE = '''def topological_order(root):
    finished, seen = [], set()

    def visit(node):
        seen.add(node)
        for parent in node.parents:
            if parent not in seen:
                visit(parent)
        finished.append(node)

    visit(root)
    return finished[::-1]
'''

RECURSIVE_RAISING_THE_LIMIT = RECURSIVE.replace(
    "    visit(root)", "    import sys\n    sys.setrecursionlimit(100_000)\n    visit(root)")

RECURSIVE_WITH_A_LIMIT_SET_BEFORE = "import sys\n\nsys.setrecursionlimit(100_000)\n\n\n" + RECURSIVE

PATH_SUM_BACKWARD = '''def backward(root):
    def push(node, gradient):          # every path separately, as in Lab 1
        node.grad += gradient
        for parent, local in zip(node.parents, node.local_derivatives()):
            push(parent, gradient * local)

    push(root, 1.0)
'''

def buggy_engines() -> list[Engine]:
    rule_cells = ("test_topological_order", "test_backward_reuse", "test_backward_graphs",
                  "test_backward_cost", "test_backward_deep", "test_sgd_step")

    def rule(name, old, new, test, fragment, in_mlp=True):
        fails = {test: fragment, "test_engine_end_to_end": fragment}
        if in_mlp:
            fails["test_mlp_loss"] = ""
        other = RULES[1] if test == RULES[0] else RULES[0]
        return Engine(name, {"value": (old, new)}, fails, (other, *rule_cells))

    order_untouched = ("test_rules_arithmetic", "test_rules_functions", "test_sgd_step")
    sweep_untouched = (*RULES, "test_topological_order", "test_topological_order_deep",
                       "test_sgd_step")
    return [
        # --- local rules: each caught by its rule test and named there
        rule("tanh' from the input", "return (1.0 - out.data ** 2,)",
             "return (1.0 - self.data ** 2,)", "test_rules_functions",
             "tanh's derivative was computed from its input a"),
        rule("exp' from the input", "return (out.data,)", "return (self.data,)",
             "test_rules_functions", "exp's derivative was taken from its input a"),
        rule("log' from the output", "return (1.0 / self.data,)", "return (1.0 / out.data,)",
             "test_rules_functions", "log's derivative was computed from its output"),
        rule("a ** n without the factor n", "return (exponent * self.data ** (exponent - 1),)",
             "return (self.data ** (exponent - 1),)", "test_rules_functions",
             "the factor n is missing", in_mlp=False),
        rule("a ** n with the exponent not lowered",
             "return (exponent * self.data ** (exponent - 1),)",
             "return (exponent * self.data ** exponent,)", "test_rules_functions",
             "the exponent was not lowered", in_mlp=False),
        rule("sign in the rule of -", "return (1.0, -1.0)", "return (1.0, 1.0)",
             "test_rules_arithmetic", "rule of a - b: sign"),
        rule("the rule of * swapped", "return (other.data, self.data)",
             "return (self.data, other.data)", "test_rules_arithmetic",
             "the two derivatives are swapped"),
        rule("sign in the rule of /", "return (1.0 / other.data, -self.data / other.data ** 2)",
             "return (1.0 / other.data, self.data / other.data ** 2)", "test_rules_arithmetic",
             "rule of a / b: sign"),
        # --- the order
        Engine("breadth-first order", {"topological_order": BREADTH_FIRST},
               {"test_topological_order": "this is a breadth-first order",
                "test_backward_reuse": "before that gradient was complete"}, order_untouched),
        Engine("pre-order", {"topological_order": PRE_ORDER},
               {"test_topological_order": "this is a pre-order",
                "test_backward_reuse": "before that gradient was complete"}, order_untouched),
        Engine("no set of seen nodes", {"topological_order": NO_SEEN_SET},
               {"test_topological_order": "is listed 2 times",
                "test_backward_cost": "local rules were evaluated"}, order_untouched),
        Engine("order not reversed", {"topological_order": ("return finished[::-1]",
                                                            "return finished")},
               {"test_topological_order": "the order is reversed",
                "test_backward_reuse": "the sweep visited the nodes from the leaves"}, order_untouched),
        Engine("recursive depth-first search", {"topological_order": RECURSIVE},
               {"test_topological_order_deep": "recursed",
                "test_backward_deep": "recursed"},
               (*order_untouched, "test_topological_order", "test_backward_reuse")),
        Engine("recursion with the limit raised inside",
               {"topological_order": RECURSIVE_RAISING_THE_LIMIT},
               {"test_topological_order_deep": "changed the recursion limit",
                "test_backward_deep": "raising the limit only moves the crash"},
               order_untouched),
        Engine("recursion with the limit raised beforehand",
               {"topological_order": RECURSIVE_WITH_A_LIMIT_SET_BEFORE},
               {"test_topological_order_deep": "recursed",
                "test_backward_deep": "recursed"}, order_untouched),
        # --- the sweep
        Engine("gradient overwritten", {"backward": ("parent.grad += node.grad * local",
                                                     "parent.grad = node.grad * local")},
               {"test_backward_reuse": "overwritten instead of accumulated"},
               (*sweep_untouched, "test_backward_cost")),
        Engine("root not seeded", {"backward": ("    root.grad = 1.0\n", "")},
               {"test_backward_reuse": "the root was never seeded"},
               (*sweep_untouched, "test_backward_cost")),
        Engine("seeded with the root's value", {"backward": ("    root.grad = 1.0\n",
                                                             "    root.grad = root.data\n")},
               {"test_backward_reuse": "the seed was root.data"},
               (*sweep_untouched, "test_backward_cost")),
        Engine("sweep from the leaves", {"backward": (
            "for node in topological_order(root):",
            "for node in reversed(topological_order(root)):")},
               {"test_backward_reuse": "the sweep visited the nodes from the leaves"}, sweep_untouched),
        Engine("local derivative not multiplied by the gradient", {"backward": (
            "parent.grad += node.grad * local", "parent.grad += local")},
               {"test_backward_reuse": "multiplies it by the gradient of the node that uses"},
               (*sweep_untouched, "test_backward_cost")),
        Engine("path sum (every path pushed separately)", {"backward": PATH_SUM_BACKWARD},
               {"test_backward_cost": "pushing gradients along every path",
                "test_backward_deep": "recursed"},
               (*sweep_untouched, "test_backward_reuse")),
        # --- training
        Engine("gradients not reset", {"sgd_step": ("        p.grad = 0.0\n", "")},
               {"test_sgd_step": "the gradients were not reset"},
               (*RULES, *ORDER_AND_SWEEP, "test_engine_end_to_end", "test_mlp_loss")),
        Engine("step uphill", {"sgd_step": ("        p.data -= eta * p.grad\n",
                                            "        p.data += eta * p.grad\n")},
               {"test_sgd_step": "the step goes uphill"},
               (*RULES, *ORDER_AND_SWEEP, "test_engine_end_to_end", "test_mlp_loss")),
        Engine("reset before the update", {"sgd_step": (
            "        p.data -= eta * p.grad\n        p.grad = 0.0\n",
            "        p.grad = 0.0\n        p.data -= eta * p.grad\n")},
               {"test_sgd_step": "reset them after the update, not before"},
               (*RULES, *ORDER_AND_SWEEP, "test_engine_end_to_end", "test_mlp_loss")),
        # --- the network
        Engine("loss summed over the batch", {"mlp_loss": ("return total / len(X)",
                                                           "return total")},
               {"test_mlp_loss": "the loss is summed over the batch"},
               (*RULES, *ORDER_AND_SWEEP, "test_engine_end_to_end", "test_sgd_step")),
        Engine("cross-entropy without its minus", {"mlp_loss": ("total = total - sum(",
                                                                "total = total + sum(")},
               {"test_mlp_loss": "sign: the cross-entropy is -Σ y log ŷ"},
               (*RULES, *ORDER_AND_SWEEP, "test_engine_end_to_end", "test_sgd_step")),
    ]
