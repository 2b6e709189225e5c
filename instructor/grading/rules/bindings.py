"""The first walk: a notebook's global names, and the definitions that own its code.

:class:`Bindings` walks every student's unit once, with explicit stacks (a deeply nested cell
cannot exhaust Python's recursion), and records the scopes (what each function, class and
comprehension binds, through the handlers of :mod:`.scopes`), the notebook's global bindings
(imports, definitions and assignments at module level, ``global`` ones inside functions) and
what attributes are assigned anywhere. A locked unit is trusted: only its module level is
walked up front, the rest when a rule reaches it (:meth:`Bindings.visits`). Each module-level
statement's code is owned by a :class:`~.scopes.Definition`: what a rule follows by name.
"""

from __future__ import annotations

import ast
from collections import defaultdict

from .parsing import Unit
from .scopes import HANDLERS, Binding, Definition, Scope, enter
from .syntax import FUNCTION_NODES, imported, target_names

MAX_NODES = 50_000     # nodes per unit


class TooComplex(Exception):
    """A unit with more nodes than the checker reads."""


class Bindings:
    """The units of a notebook with their scopes and global bindings. ``globals``: name ->
    [:class:`~.scopes.Binding`]; ``attributes``: attribute -> [(expr, scope)] assigned to it;
    ``stars``: modules imported with ``*``; ``units``: the units walked; ``too_complex``:
    the student's units beyond :data:`MAX_NODES`."""

    def __init__(self, units: list[Unit]):
        self.globals: dict[str, list[Binding]] = defaultdict(list)
        self.attributes: dict[str, list] = defaultdict(list)
        self.stars: list[str] = []
        self.units: list[Unit] = []
        self.too_complex: list[Unit] = []
        self._visits: dict[int, list] = {}
        self._modules: dict[int, Scope] = {}
        self._owners: dict[int, Definition] = {}
        for unit in units:
            if unit.cell.locked:  # trusted: its module level now, the rest when reached
                self._walk_module_level(unit)
                self.units.append(unit)
                continue
            try:
                self._visits[id(unit)] = self._walk_scopes(unit)
                self.units.append(unit)
            except TooComplex:
                self.too_complex.append(unit)

    def visits(self, unit: Unit) -> list:
        """(node, scope, owner) for every node of ``unit`` in source order, ``owner`` the
        definition it belongs to (None outside any); nothing for a unit too complex."""
        if id(unit) not in self._visits and unit.cell.locked:
            self._visits[id(unit)] = self._walk_scopes(unit)
        return self._visits.get(id(unit), ())

    def bind_global(self, name: str, binding: Binding) -> None:
        """One more way the global ``name`` gets its value."""
        self.globals[name].append(binding)

    def _module_scope(self, unit: Unit) -> Scope:
        module = self._modules.get(id(unit))
        if module is None:
            module = self._modules[id(unit)] = Scope("module", None)
        return module

    def _walk_scopes(self, unit: Unit) -> list:
        module = self._module_scope(unit)
        visits, stack = [], [(s, module, None) for s in reversed(unit.tree.body)]
        handlers = HANDLERS
        while stack:
            node, scope, owner = stack.pop()
            visits.append((node, scope, owner))
            if len(visits) > MAX_NODES:
                raise TooComplex
            if scope is module and owner is None and isinstance(node, ast.stmt):
                children = self._module_statement(node, module, unit)
            else:
                children = handlers.get(type(node), enter)(self, node, scope, owner, unit)
            stack.extend(reversed(children))
        return visits

    def _walk_module_level(self, unit: Unit) -> None:
        """Only the module-level statements of a trusted unit: its global bindings."""
        module = self._module_scope(unit)
        stack = list(reversed(unit.tree.body))
        while stack:
            node = stack.pop()
            children = self._module_statement(node, module, unit)
            stack.extend(reversed([c for c, _, owner in children if owner is None and isinstance(
                c, (ast.stmt, ast.ExceptHandler, ast.match_case))]))

    def _owner(self, node: ast.AST, unit: Unit, kind: str) -> tuple[Definition, bool]:
        """The definition owning ``node`` (made once), and whether it is new."""
        owner = self._owners.get(id(node))
        if owner is not None:
            return owner, False
        owner = self._owners[id(node)] = Definition(node, unit, kind)
        return owner, True

    def _module_statement(self, node: ast.AST, module: Scope, unit: Unit) -> list:
        """Children of a module-level statement, each with the definition that owns it."""
        kind = type(node)
        if kind in (*FUNCTION_NODES, ast.ClassDef):
            owner, new = self._owner(node, unit, "class" if kind is ast.ClassDef else "def")
            if new:
                self.bind_global(node.name, Binding(owner.kind, owner))
            return HANDLERS[kind](self, node, module, owner, unit)
        if kind in (ast.Assign, ast.AnnAssign, ast.AugAssign):
            if node.value is None:
                return [(node.target, module, None)]
            owner, new = self._owner(node.value, unit, "value")
            targets = node.targets if kind is ast.Assign else [node.target]
            if new:
                for target in targets:
                    self.record_assignment(target, node.value, module, owner)
            return [*((t, module, None) for t in targets), (node.value, module, owner)]
        if kind in (ast.For, ast.AsyncFor):
            owner, new = self._owner(node.iter, unit, "iter")
            if new:
                for name in target_names(node.target):
                    self.bind_global(name.id, Binding("iter", owner))
            return [(node.target, module, None), (node.iter, module, owner),
                    *((s, module, None) for s in node.body + node.orelse)]
        if kind in (ast.With, ast.AsyncWith):
            children = []
            for item in node.items:
                owner = None
                if item.optional_vars is not None:
                    owner, new = self._owner(item.context_expr, unit, "iter")
                    if new:
                        for name in target_names(item.optional_vars):
                            self.bind_global(name.id, Binding("iter", owner))
                    children.append((item.optional_vars, module, None))
                children.append((item.context_expr, module, owner))
            return children + [(s, module, None) for s in node.body]
        if kind in (ast.Import, ast.ImportFrom):
            owner, new = self._owner(node, unit, "import")
            for name, qualified, _ in imported(node) if new else ():
                if name == "*":
                    self.stars.append(qualified)
                else:
                    self.bind_global(name, Binding("import", owner, qualified=qualified))
            return []
        return HANDLERS.get(kind, enter)(self, node, module, None, unit)

    def record_assignment(self, target, value, scope: Scope, owner) -> None:
        """Remember what ``target = value`` binds: aliases, attributes, globals."""
        pairs = [(target, value)]
        if (isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List))
                and len(target.elts) == len(value.elts)):
            pairs = list(zip(target.elts, value.elts))
        for one_target, one_value in pairs:
            if isinstance(one_target, ast.Attribute):
                self.attributes[one_target.attr].append((one_value, scope))
                continue
            for name in target_names(one_target):
                simple = name is one_target
                if scope.kind == "module" or name.id in scope.global_names:
                    self.bind_global(name.id, Binding("value", owner,
                                                      one_value if simple else None, scope))
                elif simple:
                    scope.values[name.id].append((one_value, scope))
                    if scope.kind == "class":
                        self.attributes[name.id].append((one_value, scope))

    def bind(self, name: str, scope: Scope, owner) -> None:
        """``name`` is bound in ``scope`` (globally, when ``scope`` declares it global)."""
        if name in scope.global_names:
            if owner is not None:  # a function that assigns a global: reaching it reaches all
                self.bind_global(name, Binding("value", owner))
            return
        if name not in scope.nonlocal_names:
            scope.bound.add(name)
