"""Static checks of a submission's source, run in the grader's own process.

A lab declares rules per solution cell of its SOURCE notebook, next to nbgrader's metadata:
``cell.metadata["kit"] = {"rules": ["by_hand"]}`` (vocabulary in :data:`RULES` and in
docs/authoring.md). A rule applies to every top-level function and class that cell defines.
Rules are read from the source only, never from the submission.

- :func:`rules_of`: graded name -> its rules.
- :func:`check_rules`: a :class:`Violation` for every construct that breaks a rule, in the
  submitted definition(s) of a ruled name or in any notebook function or class they reach
  (by name, transitively; a class counts with all its methods; every definition of a name
  counts). Violations decide scores.
- :func:`scan`: a :class:`Flag` for anything suspicious anywhere in the student's cells
  (exiting the kernel, patching libraries, code from strings, the interpreter's or the grader's
  internals, shell escapes, the network, paths outside the submission). Flags are for review
  and never change a score; code that follows the lab's rules carries none.

Both read only the two notebooks (as nbformat or ``json.load`` gives them): the student's
cells are every code cell of the submission except the locked cells of the source, which
nbgrader restores before running anything; those locked cells (read from the source) tell what
names mean (``import torch.nn.functional as F``) but are never checked.

How ``.grad`` and ``.backward`` count under ``by_hand``: anything that resolves to torch
(``torch.Tensor.backward(loss)``, ``torch.autograd.backward``) always counts; the attribute on
an object of unknown type (``loss.backward()``, ``p.grad``) counts as autograd unless a class
of the lab's own SOURCE notebook defines an attribute of that name (Lab 4's ``Value`` has
``grad`` and ``backward``), in which case it is taken to be that engine's. The source decides,
not the submission, so a student cannot whitelist ``.backward`` by defining a class.

Every prohibitive rule (``by_hand``, ``own_softmax``, ``no_torch``) also forbids the ways
around any rule: code run elsewhere (threads, processes, executors), code from strings, the
interpreter's and the grader's internals, modules the checker cannot read. Code that could
redefine a ruled function unseen (``exec`` of a computed string, ``%run``, writes through
``globals()``, a cell too large to read) makes every ruled function unverifiable.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from ._cells import (
    Cell,
    Problem,
    nbgrader_of,
    notebook_cells,
    read,
    read_all,
    source_code_cells,
    split_cells,
    text_of,
)
from ._families import (
    AUTOGRAD,
    DYNAMIC_CODE,
    EXIT,
    INTERPRETER,
    INTERPRETER_ATTRIBUTES,
    IPYTHON,
    KIT,
    KNOWN_ROOTS,
    LIBRARY_SOFTMAX,
    PATCH,
    PATCH_ALLOWED,
    REBIND,
    RULES,
    SHELL,
    SOFTMAX_ATTRIBUTES,
    TENSOR_AUTOGRAD_ATTRIBUTES,
    UNKNOWN_MODULE,
    UNREADABLE,
    is_gradient_computation,
    magic_family,
    root,
    rule_family,
    scan_family,
    string_family,
    within,
)
from ._names import (
    CODE_RUNNERS,
    COMPUTED_NAME,
    MAGIC_RUNNERS,
    MAX_NODES,
    Definition,
    Fact,
    Program,
    class_attributes,
)

PROHIBITIVE = ("by_hand", "own_softmax", "no_torch")
RUNNERS = CODE_RUNNERS | MAGIC_RUNNERS  # their names are judged where they are used

# Violation.code
FORBIDDEN = "forbidden"            # a construct the rule forbids
MISSING_AUTOGRAD = "missing_autograd"  # uses_autograd, but nothing reached computes gradients
UNVERIFIABLE = "unverifiable"      # code elsewhere in the notebook could redefine the function


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


@dataclass(frozen=True)
class Flag:
    """Something suspicious in a student's cell, for review. ``code`` is its family
    (``exit``, ``patch``, ``process``, ``syntax_error``...); the other fields as in
    :class:`Violation`."""

    code: str
    construct: str
    resolved: str
    cell: str | None
    index: int
    line: int


def rules_of(source_nb: Mapping) -> dict[str, tuple[str, ...]]:
    """Graded function or class name -> its rules, from the source notebook's solution cells.

    Raises ValueError for malformed rule metadata (an unknown rule, rules on a cell that is not
    a solution cell, a ruled cell that does not parse)."""
    ruled: dict[str, list[str]] = {}
    for index, cell in source_code_cells(source_nb):
        metadata = cell.get("metadata")
        kit = metadata.get("kit") if isinstance(metadata, Mapping) else None
        if not isinstance(kit, Mapping) or "rules" not in kit:
            continue
        grade_id = nbgrader_of(cell).get("grade_id")
        where = f"source_nb: cell {grade_id or index!r}: metadata kit.rules"
        rules = kit["rules"]
        if not isinstance(rules, (list, tuple)) or not all(r in RULES for r in rules):
            raise ValueError(f"{where}: expected a list of rules among {list(RULES)}, "
                             f"got {rules!r}")
        if not nbgrader_of(cell).get("solution"):
            raise ValueError(f"{where}: expected on a solution cell, got it on a cell that "
                             "is not one")
        text = text_of(cell)
        units, problems = read(Cell(index, grade_id, text or "", True)) if text is not None \
            else ([], [Problem(Cell(index, grade_id, "", True), UNREADABLE, "not text", 1)])
        if problems or not units:
            problem = problems[0]
            raise ValueError(f"{where}: expected a cell that parses, got {problem.detail} at "
                             f"line {problem.line}")
        for statement in units[0].tree.body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = ruled.setdefault(statement.name, [])
                names += [r for r in rules if r not in names]
    return {name: tuple(rules) for name, rules in ruled.items()}


def check_rules(source_nb: Mapping, submitted_nb: Mapping) -> list[Violation]:
    """Every construct of the submission that breaks a rule of the source (see the module's
    docstring), sorted by function, cell and line."""
    ruled = rules_of(source_nb)
    if not ruled:
        notebook_cells(submitted_nb, "submitted_nb")
        return []
    return _Analysis(source_nb, submitted_nb).violations(ruled)


def scan(source_nb: Mapping, submitted_nb: Mapping) -> list[Flag]:
    """Everything suspicious in the student's cells of the submission, sorted by cell and line."""
    return _Analysis(source_nb, submitted_nb).flags()


def review(source_nb: Mapping, submitted_nb: Mapping) -> tuple[list[Violation], list[Flag]]:
    """``(check_rules(...), scan(...))``, reading the notebooks once."""
    analysis = _Analysis(source_nb, submitted_nb)
    return analysis.violations(rules_of(source_nb)), analysis.flags()


# ------------------------------------------------------------------------------- the analysis


@lru_cache(maxsize=64)
def _engine_attributes(texts: tuple[str, ...]) -> frozenset[str]:
    """Attribute names that classes of the source notebook define (Lab 4's Value.grad)."""
    names: set[str] = set()
    for text in texts:
        for unit in read(Cell(0, None, text, True))[0]:
            names |= class_attributes(unit.tree)
    return frozenset(names)


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


def _rule_judgement(fact: Fact, rule: str, engine: frozenset[str]) -> tuple[str, str] | None:
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


def _scan_judgement(fact: Fact) -> tuple[str, str] | None:
    """(flag code, resolved) when ``fact`` is suspicious wherever it is."""
    kind = fact.kind
    if kind == "name":
        for name in sorted(fact.names):
            family = _patch_family(name) if fact.store else scan_family(name)
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
            family = _patch_family(name)
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
            return family, _shorten(repr(fact.detail))
    return None


def _patch_family(name: str) -> str | None:
    """A store to (or setattr on) a library's attribute: a patch, unless it is a documented
    switch or a more specific suspicion (``sys.excepthook = ...`` reaches IPython)."""
    family = scan_family(name)
    if family in (IPYTHON, EXIT, INTERPRETER, KIT):
        return family
    return None if within(name, PATCH_ALLOWED) else PATCH


def _shorten(text: str, width: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


class _Analysis:
    """The two notebooks read once: units, problems and the program they make."""

    def __init__(self, source_nb: Mapping, submitted_nb: Mapping):
        locked, students, problems = split_cells(source_nb, submitted_nb)
        locked_units = [u for cell in locked for u in read(cell)[0]]
        student_units, student_problems = read_all(students)
        texts = tuple(text_of(c) or "" for _, c in source_code_cells(source_nb))
        self.engine = _engine_attributes(texts)
        self.program = Program(locked_units + student_units)
        self.problems = problems + student_problems + [
            Problem(u.cell, UNREADABLE, f"more than {MAX_NODES} syntax nodes", u.first_line)
            for u in self.program.too_complex]
        self.students = [u for u in self.program.units if not u.cell.locked]
        self._lines: dict[int, list[str]] = {}

    # ----------------------------------------------------------------------------- location

    def _written(self, fact: Fact) -> str:
        unit, node = fact.unit, fact.node
        line = unit.line(node)
        if fact.kind == "magic" or any(n.startswith(SHELL) for n in fact.names):
            lines = unit.cell.source.splitlines()
            return _shorten(lines[line - 1].strip()) if 0 < line <= len(lines) else ""
        lines = self._lines.get(id(unit))
        if lines is None:
            lines = self._lines[id(unit)] = unit.text.splitlines()
        start = getattr(node, "lineno", 1)
        if not 0 < start <= len(lines):
            return ""
        raw = lines[start - 1].encode()
        if getattr(node, "end_lineno", start) == start:
            raw = raw[node.col_offset:node.end_col_offset]
            return _shorten(raw.decode(errors="replace"))
        return _shorten(raw[node.col_offset:].decode(errors="replace") + " ...")

    # ----------------------------------------------------------------------------- the rules

    def _roots(self, function: str) -> list[Definition]:
        roots = []
        for binding in self.program.globals.get(function, ()):
            owner = binding.owner
            if owner is not None and not owner.unit.cell.locked and owner not in roots:
                roots.append(owner)
        return roots

    def _reach(self, function: str, roots: list[Definition]):
        """(definition, chain) for every definition reached from ``roots``, nearest first."""
        queue = deque((root_definition, (function,)) for root_definition in roots)
        seen = {id(d) for d in roots}
        while queue:
            definition, chain = queue.popleft()
            self.program.facts(definition.unit)
            yield definition, chain
            for name, _ in definition.edges:
                for target in self.program.targets(name):
                    if id(target) not in seen:
                        seen.add(id(target))
                        queue.append((target, chain + (name,)))

    def _violation(self, function, rule, code, fact, family, resolved, chain) -> Violation:
        cell = fact.unit.cell
        return Violation(function, rule, code, self._written(fact), resolved, family,
                         cell.grade_id, cell.index, fact.unit.line(fact.node), chain)

    def violations(self, ruled: dict[str, tuple[str, ...]]) -> list[Violation]:
        found: dict[tuple, Violation] = {}
        for function, rules in ruled.items():
            roots = self._roots(function)
            reached: set[int] = set()
            for rule in rules:
                if rule == "uses_autograd":
                    for violation in self._missing_autograd(function, roots):
                        found.setdefault(violation, violation)
                    continue
                for definition, chain in self._reach(function, roots):
                    reached.add(id(definition))
                    for fact in definition.facts:
                        judged = _rule_judgement(fact, rule, self.engine)
                        if judged:
                            violation = self._violation(function, rule, FORBIDDEN, fact,
                                                        *judged, chain)
                            found.setdefault(violation, violation)
            prohibitive = [r for r in rules if r in PROHIBITIVE]
            if prohibitive:
                for violation in self._unverifiable(function, prohibitive[0], reached):
                    found.setdefault(violation, violation)
        return sorted(found, key=lambda v: (v.function, v.index, v.line, v.rule, v.resolved,
                                            v.construct))

    def _missing_autograd(self, function: str, roots: list[Definition]) -> list[Violation]:
        missing = []
        for definition in roots:
            if _is_stub(definition):
                continue
            if not any(_computes_gradients(fact) for reached, _ in self._reach(function,
                                                                                [definition])
                       for fact in reached.facts):
                cell = definition.unit.cell
                missing.append(Violation(function, "uses_autograd", MISSING_AUTOGRAD, function,
                                         "", AUTOGRAD, cell.grade_id, cell.index,
                                         definition.unit.line(definition.node), (function,)))
        return missing

    def _unverifiable(self, function: str, rule: str, reached: set[int]) -> list[Violation]:
        """Code anywhere in the student's cells that could redefine ``function`` unseen (code
        inside what ``function`` reaches was judged already)."""
        found = []
        for unit in self.students:
            for fact in self.program.facts(unit):
                if fact.owner is not None and id(fact.owner) in reached:
                    continue
                hidden = fact.kind == "opaque" or (
                    fact.store and any(within(n, ("__main__",)) for n in fact.names))
                if hidden:
                    resolved = f"%{fact.detail}" if fact.detail else sorted(fact.names)[0]
                    found.append(self._violation(function, rule, UNVERIFIABLE, fact,
                                                 DYNAMIC_CODE, resolved, ()))
        for problem in self.problems:
            if problem.code == UNREADABLE:
                cell = problem.cell
                found.append(Violation(function, rule, UNVERIFIABLE, problem.detail, "",
                                       UNREADABLE, cell.grade_id, cell.index, problem.line, ()))
        return found

    # ------------------------------------------------------------------------------ the scan

    def flags(self) -> list[Flag]:
        found: dict[Flag, None] = {}
        for problem in self.problems:
            cell = problem.cell
            found[Flag(problem.code, problem.detail, "", cell.grade_id, cell.index,
                       problem.line)] = None
        for unit in self.students:
            for fact in self.program.facts(unit):
                judged = _scan_judgement(fact)
                if judged:
                    cell = unit.cell
                    found[Flag(judged[0], self._written(fact), judged[1], cell.grade_id,
                               cell.index, unit.line(fact.node))] = None
        for flag in self._rebinds():
            found[flag] = None
        return sorted(found, key=lambda f: (f.index, f.line, f.code, f.resolved, f.construct))

    def _rebinds(self) -> list[Flag]:
        """Student bindings of names a locked cell imports or defines (a test's helper, a
        library function), other than importing from the same library again."""
        flags = []
        for name, bindings in self.program.globals.items():
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
                flags.append(Flag(REBIND, name, meaning, cell.grade_id, cell.index,
                                  owner.unit.line(owner.node)))
        return flags
