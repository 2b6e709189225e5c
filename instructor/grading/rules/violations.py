"""Judging facts against rules: the violations that decide scores.

For each ruled name, every fact of every definition a rule reaches (:mod:`.reach`) is judged
against each of its rules (:func:`_judgement`, with the catalogue of :mod:`.forbidden`);
``uses_autograd`` instead asks that something reached computes gradients; and any code in the
student's cells that could redefine a ruled function unseen makes it unverifiable.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from .analysis import Analysis
from .escapes import INTERPRETER_ATTRIBUTES
from .facts import RUNNERS, Fact
from .forbidden import (
    SOFTMAX_ATTRIBUTES,
    TENSOR_AUTOGRAD_ATTRIBUTES,
    is_gradient_computation,
    rule_family,
)
from .reach import reach, roots
from .scopes import Definition
from .vocabulary import (
    AUTOGRAD,
    DYNAMIC_CODE,
    INTERPRETER,
    IPYTHON,
    LIBRARY_SOFTMAX,
    PROHIBITIVE,
    UNREADABLE,
    table,
    within,
)

# Violation.code
FORBIDDEN = "forbidden"            # a construct the rule forbids
MISSING_AUTOGRAD = "missing_autograd"  # uses_autograd, but nothing reached computes gradients
UNVERIFIABLE = "unverifiable"      # code elsewhere in the notebook could redefine the function

NOTEBOOK_NAMESPACE = table("__main__")  # a write through it could redefine any function


@dataclass(frozen=True)
class Violation:
    """A ruled function breaks its rule. ``construct`` is the code as written, ``resolved``
    what it means; ``family`` says what kind of thing it is (``autograd``, ``process``...).
    ``cell`` is the grade_id of the cell holding the construct (None for a cell the student
    added), ``index`` its position in the submission, ``line`` the line within the cell (from
    1). ``chain`` lists the names followed from the ruled function to the definition holding
    the construct (empty for code outside any function)."""

    function: str
    rule: str
    code: str
    construct: str
    resolved: str
    family: str
    cell: str | None
    index: int
    line: int
    chain: tuple[str, ...]


def _judgement(fact: Fact, rule: str, engine: frozenset[str]) -> tuple[str, str] | None:
    """(family, resolved) when ``fact`` breaks the prohibitive ``rule``."""
    kind = fact.kind
    if kind == "name":
        for name in sorted(fact.names):
            family = rule_family(rule, name)
            if family:
                return family, name
    elif kind == "attribute":
        attribute = fact.detail
        if attribute in INTERPRETER_ATTRIBUTES:
            return INTERPRETER, attribute
        if attribute in engine:
            return None
        if rule == "by_hand" and attribute in TENSOR_AUTOGRAD_ATTRIBUTES:
            return AUTOGRAD, f"Tensor.{attribute}"
        if rule == "own_softmax" and attribute in SOFTMAX_ATTRIBUTES:
            return LIBRARY_SOFTMAX, f"Tensor.{attribute}"
    elif kind == "keyword" and rule == "by_hand":
        return AUTOGRAD, "requires_grad="
    elif kind == "computed" or (kind == "opaque" and not fact.names <= RUNNERS):
        return DYNAMIC_CODE, sorted(fact.names)[0]  # (exec & co. are judged by their name)
    elif kind == "history":
        return IPYTHON, fact.detail
    return None


def _computes_gradients(fact: Fact) -> bool:
    if fact.kind == "name":
        return any(is_gradient_computation(n) for n in fact.names)
    return fact.kind == "attribute" and fact.detail == "backward"


def _is_stub(definition: Definition) -> bool:
    """A function whose body only raises NotImplementedError (the blank student version)."""
    node = definition.node
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    if len(body) != 1:
        return not body
    only = body[0]
    if isinstance(only, ast.Pass) or (isinstance(only, ast.Expr)
                                      and isinstance(only.value, ast.Constant)):
        return True
    if isinstance(only, ast.Raise) and only.exc is not None:
        raised = only.exc.func if isinstance(only.exc, ast.Call) else only.exc
        return isinstance(raised, ast.Name) and raised.id == "NotImplementedError"
    return False


def _violation(analysis, function, rule, code, fact, family, resolved, chain) -> Violation:
    cell = fact.unit.cell
    return Violation(function, rule, code, analysis.written(fact), resolved, family,
                     cell.grade_id, cell.index, fact.unit.line(fact.node), chain)


def violations(analysis: Analysis, ruled: dict[str, tuple[str, ...]]) -> list[Violation]:
    """Every violation of the rules ``ruled`` (name -> rules), sorted by function, cell and
    line; a construct that breaks two rules counts once for each."""
    program = analysis.program
    found: dict[Violation, None] = {}
    for function, rules in ruled.items():
        starts = roots(program, function)
        reached: set[int] = set()
        for rule in rules:
            if rule == "uses_autograd":
                found.update(dict.fromkeys(_missing_autograd(analysis, function, starts)))
                continue
            # other graded functions with this rule are judged by it on their own
            alone = frozenset(g for g, theirs in ruled.items()
                              if g != function and rule in theirs)
            for definition, chain in reach(program, function, starts, alone):
                reached.add(id(definition))
                for fact in definition.facts:
                    judged = _judgement(fact, rule, analysis.engine)
                    if judged:
                        found[_violation(analysis, function, rule, FORBIDDEN, fact, *judged,
                                         chain)] = None
        prohibitive = [r for r in rules if r in PROHIBITIVE]
        if prohibitive:
            found.update(dict.fromkeys(_unverifiable(analysis, function, prohibitive[0],
                                                     reached)))
    return sorted(found, key=lambda v: (v.function, v.index, v.line, v.rule, v.resolved,
                                        v.construct))


def _missing_autograd(analysis: Analysis, function: str, starts: list[Definition]
                      ) -> list[Violation]:
    """A violation for each definition of ``function`` (other than the blank stub) from
    which nothing reached computes gradients."""
    missing = []
    for definition in starts:
        if _is_stub(definition):
            continue
        if not any(_computes_gradients(fact)
                   for reached, _ in reach(analysis.program, function, [definition])
                   for fact in reached.facts):
            cell = definition.unit.cell
            missing.append(Violation(function, "uses_autograd", MISSING_AUTOGRAD, function, "",
                                     AUTOGRAD, cell.grade_id, cell.index,
                                     definition.unit.line(definition.node), (function,)))
    return missing


def _unverifiable(analysis: Analysis, function: str, rule: str, reached: set[int]
                  ) -> list[Violation]:
    """Code anywhere in the student's cells that could redefine ``function`` unseen (code
    inside what ``function`` reaches was judged already)."""
    found = []
    for unit in analysis.students:
        for fact in analysis.program.facts(unit):
            if fact.owner is not None and id(fact.owner) in reached:
                continue
            hidden = fact.kind == "opaque" or (
                fact.store and any(within(n, NOTEBOOK_NAMESPACE) for n in fact.names))
            if hidden:
                resolved = f"%{fact.detail}" if fact.detail else sorted(fact.names)[0]
                found.append(_violation(analysis, function, rule, UNVERIFIABLE, fact,
                                        DYNAMIC_CODE, resolved, ()))
    for problem in analysis.problems:
        if problem.code == UNREADABLE:
            cell = problem.cell
            found.append(Violation(function, rule, UNVERIFIABLE, problem.detail, "",
                                   UNREADABLE, cell.grade_id, cell.index, problem.line, ()))
    return found
