"""What names mean in a notebook, and what each piece of its code touches.

:class:`Program` reads every :class:`~instructor.grading._cells.Unit` of a notebook twice.
The first walk records the scopes (what each function, class and comprehension binds), the
notebook's global bindings (imports, definitions and assignments at module level, ``global``
ones inside functions) and what attributes are assigned anywhere. The second walk, done per unit
on demand, lists the unit's :class:`Fact`\\ s: each construct with its *qualified name*
(``ag.grad`` -> ``torch.autograd.grad``, through aliases, ``getattr`` with a literal name,
``vars(m)[...]``, ``sys.modules[...]``, ``__import__(...)``), each attribute of an unknown object
that matters (``loss.backward``), each call that runs code the checker cannot read, and each
reference to another definition of the notebook (the edges a rule follows).

Both walks use explicit stacks, so a deeply nested cell cannot exhaust Python's recursion.
"""

from __future__ import annotations

import ast
from collections import defaultdict

from ._cells import Unit
from ._families import (
    BUILTIN_NAMES,
    HISTORY_NAMES,
    INTERPRETER_ATTRIBUTES,
    PYTHON_MAGICS,
    SHELL,
    SOFTMAX_ATTRIBUTES,
    TENSOR_AUTOGRAD_ATTRIBUTES,
    UNRESOLVED,
    is_opaque_magic,
    string_family,
)

MAX_NODES = 50_000     # nodes per unit
MAX_DEPTH = 40         # alias chains followed
MAX_CANDIDATES = 16    # meanings kept per construct
EMPTY: frozenset[str] = frozenset()
WATCHED_ATTRIBUTES = (TENSOR_AUTOGRAD_ATTRIBUTES | SOFTMAX_ATTRIBUTES | INTERPRETER_ATTRIBUTES
                      | {"do_shutdown"})
ATTRIBUTE_FUNCTIONS = frozenset({"builtins.getattr", "builtins.setattr", "builtins.delattr",
                                 "builtins.hasattr"})
CODE_RUNNERS = frozenset({"builtins.exec", "builtins.eval", "builtins.compile",
                          f"{SHELL}.run_cell", f"{SHELL}.run_cell_async"})
MAGIC_RUNNERS = frozenset({f"{SHELL}.run_line_magic", f"{SHELL}.run_cell_magic"})
NAMESPACES = frozenset({"builtins.globals", "builtins.vars", "builtins.locals"})
SHELL_GETTERS = frozenset({"get_ipython", "IPython.get_ipython",
                           "IPython.core.getipython.get_ipython"})
COMPUTED_NAME = "<computed>"  # a magic whose name is not a literal
# names the kernel defines without an import: IPython's, and the grader's guard at start-up
INJECTED_NAMES = {"get_ipython": "get_ipython", "display": "IPython.display.display",
                  "_kit_guard": "instructor.kernel_guard"}
FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)
COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


class TooComplex(Exception):
    """A unit with more nodes than the checker reads."""


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
    module-level assignment (or loop, ``with``), an import."""

    __slots__ = ("node", "unit", "kind", "facts", "edges")

    def __init__(self, node: ast.AST, unit: Unit, kind: str):
        self.node, self.unit, self.kind = node, unit, kind
        self.facts: list[Fact] = []
        self.edges: list[tuple[str, ast.AST]] = []


class Binding:
    """One way a global name gets its value."""

    __slots__ = ("kind", "owner", "value", "scope", "qualified")

    def __init__(self, kind, owner, value=None, scope=None, qualified=None):
        self.kind, self.owner, self.value, self.scope = kind, owner, value, scope
        self.qualified = qualified


class Fact:
    """A construct of a unit. ``kind``: ``name`` (a qualified reference; ``names`` its
    meanings), ``attribute`` (an attribute ``detail`` of an unknown object), ``keyword``
    (``requires_grad=``), ``computed`` (getattr & co. with a computed name), ``opaque`` (code the
    checker cannot read), ``magic`` (``%detail extra``), ``exit`` (raise SystemExit),
    ``string`` (a path-like string ``detail``), ``patch`` (``setattr`` on a library object),
    ``history`` (IPython's In/Out)."""

    __slots__ = ("kind", "node", "unit", "owner", "names", "store", "detail", "extra")

    def __init__(self, kind, node, unit, owner, names=EMPTY, store=False, detail="", extra=""):
        self.kind, self.node, self.unit, self.owner = kind, node, unit, owner
        self.names, self.store, self.detail, self.extra = names, store, detail, extra


def constant_text(node: ast.AST, depth: int = 0) -> str | None:
    """The value of a string expression built from literals only ("auto" + "grad", f"x")."""
    if depth > 20:
        return None
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = constant_text(node.left, depth + 1), constant_text(node.right, depth + 1)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.JoinedStr):
        parts = [constant_text(v, depth + 1) for v in node.values]
        return None if None in parts else "".join(parts)
    return None


def target_names(target: ast.AST) -> list[ast.Name]:
    names, stack = [], [target]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name):
            names.append(node)
        elif isinstance(node, (ast.Tuple, ast.List)):
            stack.extend(node.elts)
        elif isinstance(node, ast.Starred):
            stack.append(node.value)
    return names


_FIELDS: dict[type, tuple[str, ...]] = {}
_SKIPPED_FIELDS = frozenset({"ctx", "op", "ops", "type_ignores"})


def _children(node: ast.AST) -> list[ast.AST]:
    """``ast.iter_child_nodes`` without the operator and context nodes nothing here reads."""
    fields = _FIELDS.get(type(node))
    if fields is None:
        fields = _FIELDS[type(node)] = tuple(f for f in node._fields
                                             if f not in _SKIPPED_FIELDS)
    children = []
    for field in fields:
        value = getattr(node, field, None)
        if isinstance(value, list):
            children += [v for v in value if isinstance(v, ast.AST)]
        elif isinstance(value, ast.AST):
            children.append(value)
    return children


def _join(bases: frozenset[str], attribute: str) -> frozenset[str]:
    return frozenset(UNRESOLVED if b == UNRESOLVED else f"{b}.{attribute}" for b in bases)


class Program:
    """The notebook's units with their scopes and global bindings; facts are listed per unit
    on demand (:meth:`facts`)."""

    def __init__(self, units: list[Unit]):
        self.globals: dict[str, list[Binding]] = defaultdict(list)
        self.attributes: dict[str, list] = defaultdict(list)  # attribute -> [(expr, scope)]
        self.stars: list[str] = []
        self.units: list[Unit] = []
        self.too_complex: list[Unit] = []
        self._visits: dict[int, list] = {}
        self._modules: dict[int, Scope] = {}
        self._owners: dict[int, Definition] = {}
        self._facts: dict[int, list[Fact]] = {}
        self._qualified: dict[int, frozenset[str]] = {}
        self._global_meaning: dict[str, frozenset[str]] = {}
        self._busy: set[int] = set()
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

    # ----------------------------------------------------------------- pass 1: scopes, bindings

    def _bind_global(self, name: str, binding: Binding) -> None:
        self.globals[name].append(binding)

    def _module_scope(self, unit: Unit) -> Scope:
        module = self._modules.get(id(unit))
        if module is None:
            module = self._modules[id(unit)] = Scope("module", None)
        return module

    def _walk_scopes(self, unit: Unit) -> list:
        module = self._module_scope(unit)
        visits, stack = [], [(s, module, None) for s in reversed(unit.tree.body)]
        handlers = _HANDLERS
        while stack:
            node, scope, owner = stack.pop()
            visits.append((node, scope, owner))
            if len(visits) > MAX_NODES:
                raise TooComplex
            if scope is module and owner is None and isinstance(node, ast.stmt):
                children = self._module_statement(node, module, unit)
            else:
                children = handlers.get(type(node), Program._enter)(self, node, scope, owner,
                                                                     unit)
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
                self._bind_global(node.name, Binding(owner.kind, owner))
            return _HANDLERS[kind](self, node, module, owner, unit)
        if kind in (ast.Assign, ast.AnnAssign, ast.AugAssign):
            if node.value is None:
                return [(node.target, module, None)]
            owner, new = self._owner(node.value, unit, "value")
            targets = node.targets if kind is ast.Assign else [node.target]
            if new:
                for target in targets:
                    self._record_assignment(target, node.value, module, owner)
            return [*((t, module, None) for t in targets), (node.value, module, owner)]
        if kind in (ast.For, ast.AsyncFor):
            owner, new = self._owner(node.iter, unit, "iter")
            if new:
                for name in target_names(node.target):
                    self._bind_global(name.id, Binding("iter", owner))
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
                            self._bind_global(name.id, Binding("iter", owner))
                    children.append((item.optional_vars, module, None))
                children.append((item.context_expr, module, owner))
            return children + [(s, module, None) for s in node.body]
        if kind in (ast.Import, ast.ImportFrom):
            owner, new = self._owner(node, unit, "import")
            for name, qualified in _imported(node) if new else ():
                if name == "*":
                    self.stars.append(qualified)
                else:
                    self._bind_global(name, Binding("import", owner, qualified=qualified))
            return []
        return _HANDLERS.get(kind, Program._enter)(self, node, module, None, unit)

    def _record_assignment(self, target, value, scope: Scope, owner) -> None:
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
                    self._bind_global(name.id, Binding("value", owner,
                                                       one_value if simple else None, scope))
                elif simple:
                    scope.values[name.id].append((one_value, scope))
                    if scope.kind == "class":
                        self.attributes[name.id].append((one_value, scope))

    # each _enter_* binds what its node binds in ``scope`` and returns the node's children,
    # each with the scope it is evaluated in and its owning definition

    def _enter(self, node: ast.AST, scope: Scope, owner, unit: Unit) -> list:
        return [(child, scope, owner) for child in _children(node)]

    def _enter_function(self, node, scope: Scope, owner, unit: Unit) -> list:
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
            self._bind(node.name, scope, owner)
            body = node.body
            if node.returns is not None:
                outside.append(node.returns)
        return [(n, scope, owner) for n in outside] + [(n, inner, owner) for n in body]

    def _enter_class(self, node: ast.ClassDef, scope: Scope, owner, unit: Unit) -> list:
        self._bind(node.name, scope, owner)
        inner = Scope("class", scope)
        outside = node.decorator_list + node.bases + [k.value for k in node.keywords]
        return [(n, scope, owner) for n in outside] + [(n, inner, owner) for n in node.body]

    def _enter_comprehension(self, node, scope: Scope, owner, unit: Unit) -> list:
        inner = Scope("comprehension", scope)
        first, *rest = node.generators
        children = [(first.iter, scope, owner), (first.target, inner, owner)]
        children += [(n, inner, owner) for n in first.ifs]
        for generator in rest:
            children += [(generator.iter, inner, owner), (generator.target, inner, owner)]
            children += [(n, inner, owner) for n in generator.ifs]
        results = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        return children + [(n, inner, owner) for n in results]

    def _enter_name(self, node: ast.Name, scope: Scope, owner, unit: Unit) -> list:
        if type(node.ctx) is not ast.Load:
            self._bind(node.id, scope, owner)
        return []

    def _enter_walrus(self, node: ast.NamedExpr, scope: Scope, owner, unit: Unit) -> list:
        home = scope
        while home.kind == "comprehension" and home.parent is not None:
            home = home.parent
        if home.kind == "module":
            self._bind_global(node.target.id,
                              Binding("value", owner or Definition(node.value, unit, "value"),
                                      node.value, home))
        else:
            self._bind(node.target.id, home, owner)
            home.values[node.target.id].append((node.value, scope))
        return [(node.value, scope, owner)]

    def _enter_assignment(self, node, scope: Scope, owner, unit: Unit) -> list:
        if node.value is not None:
            for target in node.targets if type(node) is ast.Assign else [node.target]:
                self._record_assignment(target, node.value, scope, owner)
        return self._enter(node, scope, owner, unit)

    def _enter_import(self, node, scope: Scope, owner, unit: Unit) -> list:
        for name, qualified in _imported(node):
            if name == "*":
                self.stars.append(qualified)
                continue
            self._bind(name, scope, owner)
            if scope.kind == "module" or name in scope.global_names:
                self._bind_global(name, Binding("import", owner, qualified=qualified))
            else:
                scope.imports[name].append(qualified)
        return []

    def _enter_declaration(self, node, scope: Scope, owner, unit: Unit) -> list:
        names = scope.global_names if type(node) is ast.Global else scope.nonlocal_names
        names.update(node.names)
        return []

    def _enter_capture(self, node, scope: Scope, owner, unit: Unit) -> list:
        """An ``except ... as name`` or a ``match`` pattern's name."""
        name = node.rest if type(node) is ast.MatchMapping else node.name
        if name:
            self._bind(name, scope, owner)
        return self._enter(node, scope, owner, unit)

    def _bind(self, name: str, scope: Scope, owner) -> None:
        if name in scope.global_names:
            if owner is not None:  # a function that assigns a global: reaching it reaches all
                self._bind_global(name, Binding("value", owner))
            return
        if name not in scope.nonlocal_names:
            scope.bound.add(name)

    # ---------------------------------------------------------------------- qualified names

    @staticmethod
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

    def qualify(self, node: ast.AST, scope: Scope, depth: int = 0) -> frozenset[str]:
        """What ``node`` names (``torch.autograd.grad``...), or nothing when it is not a
        library object. Several meanings when a name is bound several times."""
        key = id(node)
        known = self._qualified.get(key)
        if known is not None:
            return known
        if key in self._busy:
            return EMPTY
        if depth > MAX_DEPTH:
            return frozenset({UNRESOLVED})
        self._busy.add(key)
        try:
            result = self._qualify(node, scope, depth + 1)
        finally:
            self._busy.discard(key)
        if len(result) > MAX_CANDIDATES:
            result = frozenset(sorted(result)[:MAX_CANDIDATES])
        self._qualified[key] = result
        return result

    def _qualify(self, node: ast.AST, scope: Scope, depth: int) -> frozenset[str]:
        kind = type(node)
        if kind is ast.Name:
            home = self.resolve(node.id, scope)
            if home is None:
                return self.global_meaning(node.id, depth)
            found = set(home.imports.get(node.id, ()))
            for value, value_scope in home.values.get(node.id, ())[:MAX_CANDIDATES]:
                found |= self.qualify(value, value_scope, depth)
            return frozenset(found)
        if kind is ast.Attribute:
            bases = self.qualify(node.value, scope, depth)
            if bases:
                return _join(bases, node.attr)
            found = set()
            for value, value_scope in self.attributes.get(node.attr, ())[:MAX_CANDIDATES]:
                found |= self.qualify(value, value_scope, depth)
            return frozenset(found)
        if kind is ast.Subscript:
            return self._qualify_item(node, scope, depth)
        if kind is ast.Call:
            return self._qualify_call(node, scope, depth)
        if kind is ast.NamedExpr:
            return self.qualify(node.value, scope, depth)
        if kind is ast.IfExp:
            return self.qualify(node.body, scope, depth) | self.qualify(node.orelse, scope, depth)
        if kind is ast.BoolOp:
            return frozenset().union(*(self.qualify(v, scope, depth) for v in node.values))
        return EMPTY

    def global_meaning(self, name: str, depth: int = 0) -> frozenset[str]:
        known = self._global_meaning.get(name)
        if known is not None:
            return known
        bindings = self.globals.get(name)
        if bindings:
            found = set()
            for binding in bindings[:MAX_CANDIDATES]:
                if binding.kind == "import":
                    found.add(binding.qualified)
                elif binding.kind == "value" and binding.value is not None:
                    found |= self.qualify(binding.value, binding.scope, depth)
            result = frozenset(found)
        elif name in BUILTIN_NAMES:
            result = frozenset({f"builtins.{name}"})
        elif name == "__builtins__":
            result = frozenset({"builtins"})
        elif name in INJECTED_NAMES:
            result = frozenset({INJECTED_NAMES[name]})
        else:
            result = frozenset(f"{module}.{name}" for module in self.stars[:MAX_CANDIDATES])
        if depth == 0 or UNRESOLVED not in result:
            self._global_meaning[name] = result
        return result

    def _namespace_of(self, node: ast.AST, scope: Scope, depth: int):
        """For ``X.__dict__`` and ``vars(X)``: the node X; for ``globals()``: "globals"."""
        if isinstance(node, ast.Attribute) and node.attr == "__dict__":
            return node.value
        if isinstance(node, ast.Call):
            function = self.qualify(node.func, scope, depth)
            if "builtins.vars" in function and len(node.args) == 1:
                return node.args[0]
            if function & NAMESPACES and not node.args:
                return "globals"
        return None

    def _qualify_item(self, node: ast.Subscript, scope: Scope, depth: int) -> frozenset[str]:
        key = constant_text(node.slice)
        if key is None:
            return EMPTY
        namespace = self._namespace_of(node.value, scope, depth)
        if namespace == "globals":
            return self.global_meaning(key, depth)
        if namespace is not None:
            return _join(self.qualify(namespace, scope, depth), key)
        bases = self.qualify(node.value, scope, depth)
        if "sys.modules" in bases:
            return frozenset({key})
        if "builtins" in bases:
            return frozenset({f"builtins.{key}"})
        return EMPTY

    def literal_attribute(self, node: ast.AST, scope: Scope, depth: int = 0):
        """(object, attribute, how) for an attribute reached by a literal name:
        ``getattr(x, "a")``, ``x.__getattribute__("a")``, ``x.__dict__["a"]``, ``vars(x)["a"]``,
        ``x.__dict__.get("a")`` (how: "get"), ``hasattr``/``setattr``/``delattr`` (their
        name); None for anything else."""
        if isinstance(node, ast.Subscript):
            key = constant_text(node.slice)
            namespace = self._namespace_of(node.value, scope, depth)
            if key is not None and namespace not in (None, "globals"):
                return namespace, key, "get"
            return None
        if not isinstance(node, ast.Call) or not node.args:
            return None
        func, args = node.func, node.args
        first = constant_text(args[0])
        if isinstance(func, ast.Attribute):
            if func.attr in ("__getattribute__", "__getattr__") and first is not None:
                return func.value, first, "get"
            if func.attr == "get" and first is not None and len(args) <= 2:
                namespace = self._namespace_of(func.value, scope, depth)
                if namespace not in (None, "globals"):
                    return namespace, first, "get"
        if len(args) < 2 or constant_text(args[1]) is None:
            return None
        function = self.qualify(func, scope, depth)
        for name, how in (("builtins.getattr", "get"), ("builtins.hasattr", "hasattr"),
                          ("builtins.setattr", "setattr"), ("builtins.delattr", "delattr")):
            if name in function:
                return args[0], constant_text(args[1]), how
        if any(f.endswith(".__getattribute__") for f in function):
            return args[0], constant_text(args[1]), "get"
        return None

    def _qualify_call(self, node: ast.Call, scope: Scope, depth: int) -> frozenset[str]:
        reached = self.literal_attribute(node, scope, depth)
        if reached is not None:
            target, attribute, how = reached
            return _join(self.qualify(target, scope, depth), attribute) if how == "get" \
                else EMPTY
        function = self.qualify(node.func, scope, depth)
        if not function:
            return EMPTY
        if function & SHELL_GETTERS:
            return frozenset({SHELL})
        text = constant_text(node.args[0]) if node.args else None
        if text is None:
            return EMPTY
        if "builtins.__import__" in function:
            args = node.args
            fromlist = args[3] if len(args) > 3 else next(
                (k.value for k in node.keywords if k.arg == "fromlist"), None)
            empty = fromlist is None or (isinstance(fromlist, (ast.Tuple, ast.List))
                                         and not fromlist.elts)
            return frozenset({text.split(".")[0] if empty else text})
        if function & {"importlib.import_module", "importlib.__import__", "sys.modules.get",
                       "sys.modules.__getitem__"}:
            return frozenset({text})
        return EMPTY

    def links(self, node: ast.AST, scope: Scope) -> list[ast.AST]:
        """The parts of a qualified construct that are not judged on their own (``torch`` in
        ``torch.autograd``); ``sys.modules``, ``__import__`` and ``globals()`` stay judged."""
        if isinstance(node, ast.Attribute):
            return [node.value]
        reached = self.literal_attribute(node, scope)
        if reached is not None:  # getattr(x, "a"), vars(x)["a"]...: x and the function
            parts = [reached[0], node.value if isinstance(node, ast.Subscript) else node.func]
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                parts.append(node.func.value)  # x.__dict__ in x.__dict__.get("a")
            return parts
        if isinstance(node, ast.Subscript):
            value = node.value
            return [value] if isinstance(value, ast.Name) and value.id == "__builtins__" else []
        return []

    # ------------------------------------------------------------------------ pass 2: facts

    def facts(self, unit: Unit) -> list[Fact]:
        """The facts of ``unit`` (listed once, then kept); each is also filed under the
        definition that owns it, with the edges to other definitions."""
        known = self._facts.get(id(unit))
        if known is not None:
            return known
        if id(unit) not in self._visits and unit.cell.locked:
            self._visits[id(unit)] = self._walk_scopes(unit)
        found: list[Fact] = []
        suppressed, quiet = set(), set()
        for node, scope, owner in self._visits.get(id(unit), ()):
            kind = type(node)
            judged = id(node) not in suppressed  # not a part of a longer qualified construct
            if not judged:
                suppressed.update(id(n) for n in self.links(node, scope))
            if kind is ast.Name:
                self._name_facts(node, scope, owner, unit, found, judged)
            elif kind in (ast.Attribute, ast.Subscript):
                self._reference_facts(node, scope, owner, unit, found, suppressed, judged)
            elif kind is ast.Call:
                self._call_facts(node, scope, owner, unit, found, suppressed, judged)
            elif kind in (ast.Import, ast.ImportFrom):
                for qualified in _import_targets(node):
                    found.append(Fact("name", node, unit, owner, frozenset({qualified}),
                                      detail="import"))
            elif kind is ast.Raise and node.exc is not None:
                raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                meaning = self.qualify(raised, scope)
                if meaning & {"builtins.SystemExit", "builtins.KeyboardInterrupt"}:
                    found.append(Fact("exit", node, unit, owner, meaning))
            elif kind is ast.Expr and isinstance(node.value, ast.Constant):
                quiet.add(id(node.value))  # a docstring, or a string on its own
            elif kind is ast.JoinedStr:
                quiet.update(id(v) for v in node.values[1:])
            elif kind is ast.Constant and isinstance(node.value, str) and id(node) not in quiet:
                if string_family(node.value):
                    found.append(Fact("string", node, unit, owner, detail=node.value))
        for fact in found:
            if fact.owner is not None:
                fact.owner.facts.append(fact)
        self._facts[id(unit)] = found
        return found

    def _name_facts(self, node: ast.Name, scope, owner, unit, found, judged) -> None:
        if not isinstance(node.ctx, ast.Load):
            return
        name = node.id
        if name == "__builtins__":
            found.append(Fact("attribute", node, unit, owner, detail="__builtins__"))
        meaning = self.qualify(node, scope) if judged else EMPTY
        if meaning:
            found.append(Fact("name", node, unit, owner, meaning))
        if self.resolve(name, scope) is None:
            if name in self.globals:
                if owner is not None:
                    owner.edges.append((name, node))
            elif name not in BUILTIN_NAMES and HISTORY_NAMES.match(name):
                found.append(Fact("history", node, unit, owner, detail=name))

    def _reference_facts(self, node, scope, owner, unit, found, suppressed, judged) -> None:
        store = not isinstance(node.ctx, ast.Load)
        meaning = self.qualify(node, scope) if judged else EMPTY
        if meaning:
            suppressed.update(id(n) for n in self.links(node, scope))
            found.append(Fact("name", node, unit, owner, meaning, store))
        elif judged and isinstance(node, ast.Attribute) and node.attr in WATCHED_ATTRIBUTES:
            found.append(Fact("attribute", node, unit, owner, store=store, detail=node.attr))
        elif judged:
            self._literal_attribute_fact(node, scope, owner, unit, found)
        if store and isinstance(node, ast.Subscript):
            namespace = self._namespace_of(node.value, scope, 0)
            if namespace == "globals":
                found.append(Fact("opaque", node, unit, owner, frozenset({"builtins.globals"})))
            elif namespace is not None:
                target = self.qualify(namespace, scope)
                if target:
                    found.append(Fact("patch", node, unit, owner, target))
            elif self.qualify(node.value, scope) & {"sys.modules", "builtins"}:
                found.append(Fact("patch", node, unit, owner, self.qualify(node.value, scope)))

    def _literal_attribute_fact(self, node, scope, owner, unit, found) -> None:
        """``getattr(loss, "backward")`` on an object of unknown type: like ``loss.backward``."""
        reached = self.literal_attribute(node, scope)
        if reached is not None and reached[1] in WATCHED_ATTRIBUTES and not self.qualify(
                reached[0], scope):
            found.append(Fact("attribute", node, unit, owner, detail=reached[1],
                              store=reached[2] in ("setattr", "delattr")))

    def _call_facts(self, node: ast.Call, scope, owner, unit, found, suppressed, judged) -> None:
        meaning = self.qualify(node, scope) if judged else EMPTY
        if meaning:
            suppressed.update(id(n) for n in self.links(node, scope))
            found.append(Fact("name", node, unit, owner, meaning))
        elif judged:
            self._literal_attribute_fact(node, scope, owner, unit, found)
        for keyword in node.keywords:
            if keyword.arg == "requires_grad" and not (
                    isinstance(keyword.value, ast.Constant) and not keyword.value.value):
                found.append(Fact("keyword", keyword.value, unit, owner, detail="requires_grad"))
        if isinstance(node.func, ast.Attribute) and node.func.attr == "update":
            namespace = self._namespace_of(node.func.value, scope, 0)  # globals().update(...)
            if namespace == "globals":
                found.append(Fact("opaque", node, unit, owner, frozenset({"builtins.globals"})))
            elif namespace is not None and self.qualify(namespace, scope):
                found.append(Fact("patch", node, unit, owner, self.qualify(namespace, scope)))
        function = self.qualify(node.func, scope)
        if not function:
            return
        args = node.args
        if function & ATTRIBUTE_FUNCTIONS and len(args) >= 2 and constant_text(args[1]) is None:
            found.append(Fact("computed", node, unit, owner, function & ATTRIBUTE_FUNCTIONS))
        if function & {"builtins.setattr", "builtins.delattr"} and args:
            target = self.qualify(args[0], scope)
            if target:
                found.append(Fact("patch", node, unit, owner, target))
        if function & CODE_RUNNERS and id(node) not in unit.parsed_calls:
            found.append(Fact("opaque", node, unit, owner, function & CODE_RUNNERS))
        if function & MAGIC_RUNNERS:
            name = constant_text(args[0]) if args else None
            argument = constant_text(args[1]) if len(args) > 1 else None
            found.append(Fact("magic", node, unit, owner, function & MAGIC_RUNNERS,
                              detail=COMPUTED_NAME if name is None else name,
                              extra=argument or ""))
            if name is None or is_opaque_magic(name, argument or "") or (
                    name in PYTHON_MAGICS and id(node) not in unit.parsed_calls):
                found.append(Fact("opaque", node, unit, owner, function & MAGIC_RUNNERS,
                                  detail=COMPUTED_NAME if name is None else name))
        if "torch.set_grad_enabled" in function and args and isinstance(args[0], ast.Constant) \
                and args[0].value is False:
            suppressed.add(id(node.func))  # switching autograd off is fine

    # ----------------------------------------------------------------------------- reaching

    def targets(self, name: str) -> list[Definition]:
        """The definitions a use of the global ``name`` reaches (aliases and imports are
        judged where they are used, not followed)."""
        reached = []
        for binding in self.globals.get(name, ()):
            if binding.owner is None or binding.kind == "import":
                continue
            if binding.kind == "value" and binding.value is not None and self.qualify(
                    binding.value, binding.scope):
                continue
            reached.append(binding.owner)
        return reached


_HANDLERS = {
    ast.FunctionDef: Program._enter_function, ast.AsyncFunctionDef: Program._enter_function,
    ast.Lambda: Program._enter_function, ast.ClassDef: Program._enter_class,
    **dict.fromkeys(COMPREHENSIONS, Program._enter_comprehension),
    ast.Name: Program._enter_name, ast.NamedExpr: Program._enter_walrus,
    ast.Assign: Program._enter_assignment, ast.AnnAssign: Program._enter_assignment,
    ast.Import: Program._enter_import, ast.ImportFrom: Program._enter_import,
    ast.Global: Program._enter_declaration, ast.Nonlocal: Program._enter_declaration,
    ast.ExceptHandler: Program._enter_capture, ast.MatchAs: Program._enter_capture,
    ast.MatchStar: Program._enter_capture, ast.MatchMapping: Program._enter_capture,
}


def _imported(node: ast.Import | ast.ImportFrom) -> list[tuple[str, str]]:
    """(name bound, qualified name) for each name an import statement binds."""
    if isinstance(node, ast.Import):
        return [(a.asname or a.name.split(".")[0], a.name if a.asname else a.name.split(".")[0])
                for a in node.names]
    module = "." * node.level + (node.module or "")
    return [(a.asname or a.name, module if a.name == "*" else f"{module}.{a.name}")
            for a in node.names]


def _import_targets(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The full qualified name of each module or object an import statement loads."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    module = "." * node.level + (node.module or "")
    return [module if a.name == "*" else f"{module}.{a.name}" for a in node.names]


def class_attributes(tree: ast.Module) -> set[str]:
    """Attribute names the classes of ``tree`` define: methods, class attributes, and
    attributes their methods assign on ``self``."""
    names = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        for item in ast.walk(node):
            if isinstance(item, (*FUNCTION_NODES, ast.ClassDef)) and item is not node:
                names.add(item.name)
            elif isinstance(item, ast.Attribute) and not isinstance(item.ctx, ast.Load):
                names.add(item.attr)
        for statement in node.body:
            if isinstance(statement, (ast.Assign, ast.AnnAssign)):
                targets = statement.targets if isinstance(statement, ast.Assign) \
                    else [statement.target]
                names.update(n.id for t in targets for n in target_names(t))
    return names
