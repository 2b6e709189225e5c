"""What names mean: the qualified name of a construct, through aliases and imports.

:meth:`Qualifier.qualify` gives what a node names once aliases are followed
(``ag.grad`` -> ``torch.autograd.grad``), through assignments in any scope, imports,
``getattr`` with a literal name, ``vars(m)[...]``, ``m.__dict__[...]``, ``sys.modules[...]``,
``__import__(...)`` and ``importlib.import_module(...)``. A name bound several times has several
meanings; a node that names no library object has none (an empty set). Answers are cached per
node; alias chains longer than :data:`MAX_DEPTH` resolve to
:data:`~.vocabulary.UNRESOLVED`. To follow one more way of reaching an object, extend
:meth:`Qualifier.literal_attribute` (attributes by literal name) or ``_qualify_call``.
"""

from __future__ import annotations

import ast

from .bindings import Bindings
from .scopes import Scope, resolve
from .syntax import constant_text
from .vocabulary import BUILTIN_NAMES, INJECTED_NAMES, SHELL, UNRESOLVED

MAX_DEPTH = 40         # alias chains followed
MAX_CANDIDATES = 16    # meanings kept per construct
EMPTY: frozenset[str] = frozenset()
NAMESPACES = frozenset({"builtins.globals", "builtins.vars", "builtins.locals"})
SHELL_GETTERS = frozenset({"get_ipython", "IPython.get_ipython",
                           "IPython.core.getipython.get_ipython"})


def _join(bases: frozenset[str], attribute: str) -> frozenset[str]:
    return frozenset(UNRESOLVED if b == UNRESOLVED else f"{b}.{attribute}" for b in bases)


class Qualifier:
    """Qualified names of the nodes of the units :class:`~.bindings.Bindings` walked."""

    def __init__(self, bindings: Bindings):
        self.globals = bindings.globals
        self.attributes = bindings.attributes
        self.stars = bindings.stars
        self._qualified: dict[int, frozenset[str]] = {}
        self._global_meaning: dict[str, frozenset[str]] = {}
        self._busy: set[int] = set()

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
            home = resolve(node.id, scope)
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

    def namespace_of(self, node: ast.AST, scope: Scope, depth: int):
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
        namespace = self.namespace_of(node.value, scope, depth)
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
            namespace = self.namespace_of(node.value, scope, depth)
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
                namespace = self.namespace_of(func.value, scope, depth)
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
