"""What names each piece of code binds, and in which scope: the first walk's handlers.

The walk (:class:`~.bindings.Bindings`) visits every node of a unit with the :class:`Scope` it
is evaluated in and the :class:`Definition` that owns it. For each kind of node that binds
names or opens a scope, :data:`HANDLERS` has a function ``(walk, node, scope, owner, unit)``
that records what the node binds (through ``walk.bind``, ``walk.bind_global``,
``walk.record_assignment``) and returns the node's children, each as ``(child, scope, owner)``.
A node without a handler only passes its children on (:func:`enter`). To follow one more kind
of binding, add a handler here.
"""

from __future__ import annotations

import ast
from collections import defaultdict

from .parsing import Unit
from .syntax import COMPREHENSIONS, children, imported


class Scope:
    """What one module, function, class or comprehension binds."""

    __slots__ = ("kind", "parent", "bound", "global_names", "nonlocal_names", "values",
                 "imports")

    def __init__(self, kind: str, parent: Scope | None):
        self.kind, self.parent = kind, parent
        self.bound: set[str] = set()
        self.global_names: set[str] = set()
        self.nonlocal_names: set[str] = set()
        self.values: dict[str, list] = defaultdict(list)   # name -> [(expr, scope)]
        self.imports: dict[str, list] = defaultdict(list)  # name -> [qualified name]


class Definition:
    """Code reached as a whole from a name: a module-level function or class, the value of a
    module-level assignment (or loop, ``with``), an import. ``facts`` and ``edges`` (the
    names of other definitions it uses) are filled in when its unit's facts are listed."""

    __slots__ = ("node", "unit", "kind", "facts", "edges")

    def __init__(self, node: ast.AST, unit: Unit, kind: str):
        self.node, self.unit, self.kind = node, unit, kind
        self.facts: list = []
        self.edges: list[tuple[str, ast.AST]] = []


class Binding:
    """One way a global name gets its value: ``kind`` is ``def``, ``class``, ``import``
    (``qualified`` is what it imports), ``value`` (``value`` evaluated in ``scope``, when it
    is a plain assignment) or ``iter`` (a loop or ``with`` target); ``owner`` is the
    definition reached through it."""

    __slots__ = ("kind", "owner", "value", "scope", "qualified")

    def __init__(self, kind, owner, value=None, scope=None, qualified=None):
        self.kind, self.owner, self.value, self.scope = kind, owner, value, scope
        self.qualified = qualified


def resolve(name: str, scope: Scope) -> Scope | None:
    """The scope a name refers to where it is used, or None for a global (or builtin)."""
    here = scope
    while here is not None and here.kind != "module":
        if name in here.global_names:
            return None
        if (here is scope or here.kind != "class") and name not in here.nonlocal_names \
                and name in here.bound:
            return here
        here = here.parent
    return None


def enter(walk, node: ast.AST, scope: Scope, owner, unit: Unit) -> list:
    return [(child, scope, owner) for child in children(node)]


def enter_function(walk, node, scope: Scope, owner, unit: Unit) -> list:
    """A function or lambda: defaults, decorators and annotations are evaluated outside."""
    inner = Scope("function", scope)
    outside = list(getattr(node, "decorator_list", ()))
    args = node.args
    positional = args.posonlyargs + args.args
    outside += [d for d in args.defaults + args.kw_defaults if d is not None]
    for arg, default in zip(positional[len(positional) - len(args.defaults):],
                            args.defaults):
        inner.values[arg.arg].append((default, scope))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        if default is not None:
            inner.values[arg.arg].append((default, scope))
    every = positional + args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a]
    inner.bound.update(a.arg for a in every)
    outside += [a.annotation for a in every if a.annotation is not None]
    if isinstance(node, ast.Lambda):
        body = [node.body]
    else:
        walk.bind(node.name, scope, owner)
        body = node.body
        if node.returns is not None:
            outside.append(node.returns)
    return [(n, scope, owner) for n in outside] + [(n, inner, owner) for n in body]


def enter_class(walk, node: ast.ClassDef, scope: Scope, owner, unit: Unit) -> list:
    walk.bind(node.name, scope, owner)
    inner = Scope("class", scope)
    outside = node.decorator_list + node.bases + [k.value for k in node.keywords]
    return [(n, scope, owner) for n in outside] + [(n, inner, owner) for n in node.body]


def enter_comprehension(walk, node, scope: Scope, owner, unit: Unit) -> list:
    """Its first iterable is evaluated outside, the rest inside its own scope."""
    inner = Scope("comprehension", scope)
    first, *rest = node.generators
    parts = [(first.iter, scope, owner), (first.target, inner, owner)]
    parts += [(n, inner, owner) for n in first.ifs]
    for generator in rest:
        parts += [(generator.iter, inner, owner), (generator.target, inner, owner)]
        parts += [(n, inner, owner) for n in generator.ifs]
    results = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
    return parts + [(n, inner, owner) for n in results]


def enter_name(walk, node: ast.Name, scope: Scope, owner, unit: Unit) -> list:
    if type(node.ctx) is not ast.Load:
        walk.bind(node.id, scope, owner)
    return []


def enter_walrus(walk, node: ast.NamedExpr, scope: Scope, owner, unit: Unit) -> list:
    """``(x := value)`` binds ``x`` outside any comprehension it is in."""
    home = scope
    while home.kind == "comprehension" and home.parent is not None:
        home = home.parent
    if home.kind == "module":
        walk.bind_global(node.target.id,
                         Binding("value", owner or Definition(node.value, unit, "value"),
                                 node.value, home))
    else:
        walk.bind(node.target.id, home, owner)
        home.values[node.target.id].append((node.value, scope))
    return [(node.value, scope, owner)]


def enter_assignment(walk, node, scope: Scope, owner, unit: Unit) -> list:
    if node.value is not None:
        for target in node.targets if type(node) is ast.Assign else [node.target]:
            walk.record_assignment(target, node.value, scope, owner)
    return enter(walk, node, scope, owner, unit)


def enter_import(walk, node, scope: Scope, owner, unit: Unit) -> list:
    for name, qualified, _ in imported(node):
        if name == "*":
            walk.stars.append(qualified)
            continue
        walk.bind(name, scope, owner)
        if scope.kind == "module" or name in scope.global_names:
            walk.bind_global(name, Binding("import", owner, qualified=qualified))
        else:
            scope.imports[name].append(qualified)
    return []


def enter_declaration(walk, node, scope: Scope, owner, unit: Unit) -> list:
    names = scope.global_names if type(node) is ast.Global else scope.nonlocal_names
    names.update(node.names)
    return []


def enter_capture(walk, node, scope: Scope, owner, unit: Unit) -> list:
    """An ``except ... as name`` or a ``match`` pattern's name."""
    name = node.rest if type(node) is ast.MatchMapping else node.name
    if name:
        walk.bind(name, scope, owner)
    return enter(walk, node, scope, owner, unit)


HANDLERS = {
    ast.FunctionDef: enter_function, ast.AsyncFunctionDef: enter_function,
    ast.Lambda: enter_function, ast.ClassDef: enter_class,
    **dict.fromkeys(COMPREHENSIONS, enter_comprehension),
    ast.Name: enter_name, ast.NamedExpr: enter_walrus,
    ast.Assign: enter_assignment, ast.AnnAssign: enter_assignment,
    ast.Import: enter_import, ast.ImportFrom: enter_import,
    ast.Global: enter_declaration, ast.Nonlocal: enter_declaration,
    ast.ExceptHandler: enter_capture, ast.MatchAs: enter_capture,
    ast.MatchStar: enter_capture, ast.MatchMapping: enter_capture,
}
