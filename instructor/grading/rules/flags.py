"""The scan: anything suspicious anywhere in the student's cells, for review.

Flags never change a score. Every fact of every student's unit is judged wherever it is
(:func:`_judgement`, with the catalogue of :mod:`.suspicious`); cells that could not be read
and student bindings of names a locked cell defines (:func:`_rebinds`) are flagged too.
"""

from __future__ import annotations

from dataclasses import dataclass

from .analysis import Analysis, shorten
from .escapes import INTERPRETER_ATTRIBUTES, KNOWN_ROOTS
from .facts import COMPUTED_NAME, RUNNERS, Fact
from .suspicious import magic_family, patch_family, scan_family, string_family
from .vocabulary import DYNAMIC_CODE, EXIT, INTERPRETER, REBIND, UNKNOWN_MODULE, root


@dataclass(frozen=True)
class Flag:
    """Something suspicious in a student's cell, for review. ``code`` is its family
    (``exit``, ``patch``, ``process``, ``syntax_error``...); the other fields as in
    :class:`~.violations.Violation`."""

    code: str
    construct: str
    resolved: str
    cell: str | None
    index: int
    line: int


def _judgement(fact: Fact) -> tuple[str, str] | None:
    """(flag code, resolved) when ``fact`` is suspicious wherever it is."""
    kind = fact.kind
    if kind == "name":
        for name in sorted(fact.names):
            family = patch_family(name) if fact.store else scan_family(name)
            if fact.detail == "import" and family is None and root(name) not in KNOWN_ROOTS:
                family = UNKNOWN_MODULE
            if family:
                return family, name
    elif kind == "attribute":
        if fact.detail in INTERPRETER_ATTRIBUTES:
            return INTERPRETER, fact.detail
        if fact.detail == "do_shutdown":
            return EXIT, fact.detail
    elif kind == "computed" and fact.names & {"builtins.setattr", "builtins.delattr"}:
        return DYNAMIC_CODE, sorted(fact.names)[0]
    elif kind == "opaque" and not fact.names <= RUNNERS:
        return DYNAMIC_CODE, sorted(fact.names)[0]
    elif kind == "patch":
        for name in sorted(fact.names):
            family = patch_family(name)
            if family:
                return family, name
    elif kind == "magic":
        family = DYNAMIC_CODE if fact.detail == COMPUTED_NAME else magic_family(fact.detail,
                                                                                fact.extra)
        if family:
            return family, f"%{fact.detail}"
    elif kind == "exit":
        return EXIT, sorted(fact.names)[0]
    elif kind == "string":
        family = string_family(fact.detail)
        if family:
            return family, shorten(repr(fact.detail))
    return None


def flags(analysis: Analysis) -> list[Flag]:
    """Every flag of the student's cells, sorted by cell and line."""
    found: dict[Flag, None] = {}
    for problem in analysis.problems:
        cell = problem.cell
        found[Flag(problem.code, problem.detail, "", cell.grade_id, cell.index,
                   problem.line)] = None
    for unit in analysis.students:
        for fact in analysis.program.facts(unit):
            judged = _judgement(fact)
            if judged:
                cell = unit.cell
                found[Flag(judged[0], analysis.written(fact), judged[1], cell.grade_id,
                           cell.index, unit.line(fact.node))] = None
    found.update(dict.fromkeys(_rebinds(analysis)))
    return sorted(found, key=lambda f: (f.index, f.line, f.code, f.resolved, f.construct))


def _rebinds(analysis: Analysis) -> list[Flag]:
    """Student bindings of names a locked cell imports or defines (a test's helper, a
    library function), other than importing from the same library again."""
    found = []
    for name, bindings in analysis.program.bindings.globals.items():
        locked = [b for b in bindings if b.owner is not None and b.owner.unit.cell.locked
                  and b.kind in ("import", "def", "class")]
        if not locked:
            continue
        imported = {b.qualified for b in locked if b.kind == "import"}
        libraries = {root(q) for q in imported}
        meaning = sorted(imported)[0] if imported else name
        for binding in bindings:
            owner = binding.owner
            if owner is None or owner.unit.cell.locked:
                continue
            if binding.kind == "import" and root(binding.qualified) in libraries:
                continue
            cell = owner.unit.cell
            found.append(Flag(REBIND, name, meaning, cell.grade_id, cell.index,
                              owner.unit.line(owner.node)))
    return found
