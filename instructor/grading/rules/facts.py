"""The second walk: what each piece of a unit's code touches, as :class:`Fact`\\ s.

:meth:`Program.facts` lists, per unit and on demand, each construct with its qualified names
(through :mod:`.qualify`), each attribute of an unknown object that matters
(``loss.backward``), each call that runs code the checker cannot read, each write into a
library or a namespace, and each use of another definition of the notebook (its ``edges``,
which a rule follows). Facts are only listed here; :mod:`.violations` and :mod:`.flags` judge
them. To notice one more kind of construct, give it a fact kind here and judge it there.
"""

from __future__ import annotations

import ast

from .bindings import Bindings
from .escapes import INTERPRETER_ATTRIBUTES
from .forbidden import SOFTMAX_ATTRIBUTES, TENSOR_AUTOGRAD_ATTRIBUTES
from .parsing import Unit
from .qualify import EMPTY, Qualifier
from .scopes import resolve
from .suspicious import PYTHON_MAGICS, is_opaque_magic, string_family
from .syntax import constant_text, imported
from .vocabulary import BUILTIN_NAMES, HISTORY_NAMES, SHELL

WATCHED_ATTRIBUTES = (TENSOR_AUTOGRAD_ATTRIBUTES | SOFTMAX_ATTRIBUTES | INTERPRETER_ATTRIBUTES
                      | {"do_shutdown"})
ATTRIBUTE_FUNCTIONS = frozenset({"builtins.getattr", "builtins.setattr", "builtins.delattr",
                                 "builtins.hasattr"})
CODE_RUNNERS = frozenset({"builtins.exec", "builtins.eval", "builtins.compile",
                          f"{SHELL}.run_cell", f"{SHELL}.run_cell_async"})
MAGIC_RUNNERS = frozenset({f"{SHELL}.run_line_magic", f"{SHELL}.run_cell_magic"})
RUNNERS = CODE_RUNNERS | MAGIC_RUNNERS  # their names are judged where they are used
COMPUTED_NAME = "<computed>"  # a magic whose name is not a literal


class Fact:
    """A construct of a unit. ``kind``: ``name`` (a qualified reference; ``names`` its
    meanings), ``attribute`` (an attribute ``detail`` of an unknown object), ``keyword``
    (``requires_grad=``), ``computed`` (getattr & co. with a computed name), ``opaque`` (code the
    checker cannot read), ``magic`` (``%detail extra``), ``exit`` (raise SystemExit),
    ``string`` (a path-like string ``detail``), ``patch`` (a write into a library object:
    ``setattr``, ``vars(m).update(...)``, ``sys.modules[k] = ...``), ``history`` (IPython's
    In/Out). ``store``: the construct is written to; ``owner``: the
    :class:`~.scopes.Definition` it belongs to (None outside any)."""

    __slots__ = ("kind", "node", "unit", "owner", "names", "store", "detail", "extra")

    def __init__(self, kind, node, unit, owner, names=EMPTY, store=False, detail="", extra=""):
        self.kind, self.node, self.unit, self.owner = kind, node, unit, owner
        self.names, self.store, self.detail, self.extra = names, store, detail, extra


class Program:
    """A notebook's units read as one program: ``bindings`` (the first walk), what names mean
    (``qualifier``) and the facts of each unit (:meth:`facts`)."""

    def __init__(self, units: list[Unit]):
        self.bindings = Bindings(units)
        self.qualifier = Qualifier(self.bindings)
        self.qualify = self.qualifier.qualify
        self._facts: dict[int, list[Fact]] = {}

    def facts(self, unit: Unit) -> list[Fact]:
        """The facts of ``unit`` (listed once, then kept); each is also filed under the
        definition that owns it, with the edges to other definitions."""
        known = self._facts.get(id(unit))
        if known is not None:
            return known
        found: list[Fact] = []
        suppressed, quiet = set(), set()
        for node, scope, owner in self.bindings.visits(unit):
            kind = type(node)
            judged = id(node) not in suppressed  # not a part of a longer qualified construct
            if not judged:
                suppressed.update(id(n) for n in self._links(node, scope))
            if kind is ast.Name:
                self._name_facts(node, scope, owner, unit, found, judged)
            elif kind in (ast.Attribute, ast.Subscript):
                self._reference_facts(node, scope, owner, unit, found, suppressed, judged)
            elif kind is ast.Call:
                self._call_facts(node, scope, owner, unit, found, suppressed, judged)
            elif kind in (ast.Import, ast.ImportFrom):
                for _, _, loaded in imported(node):
                    found.append(Fact("name", node, unit, owner, frozenset({loaded}),
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

    def _links(self, node: ast.AST, scope) -> list[ast.AST]:
        """The parts of a qualified construct that are not judged on their own (``torch`` in
        ``torch.autograd``); ``sys.modules``, ``__import__`` and ``globals()`` stay judged."""
        if isinstance(node, ast.Attribute):
            return [node.value]
        reached = self.qualifier.literal_attribute(node, scope)
        if reached is not None:  # getattr(x, "a"), vars(x)["a"]...: x and the function
            parts = [reached[0], node.value if isinstance(node, ast.Subscript) else node.func]
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                parts.append(node.func.value)  # x.__dict__ in x.__dict__.get("a")
            return parts
        if isinstance(node, ast.Subscript):
            value = node.value
            return [value] if isinstance(value, ast.Name) and value.id == "__builtins__" else []
        return []

    def _name_facts(self, node: ast.Name, scope, owner, unit, found, judged) -> None:
        if not isinstance(node.ctx, ast.Load):
            return
        name = node.id
        if name == "__builtins__":
            found.append(Fact("attribute", node, unit, owner, detail="__builtins__"))
        meaning = self.qualify(node, scope) if judged else EMPTY
        if meaning:
            found.append(Fact("name", node, unit, owner, meaning))
        if resolve(name, scope) is None:
            if name in self.bindings.globals:
                if owner is not None:
                    owner.edges.append((name, node))
            elif name not in BUILTIN_NAMES and HISTORY_NAMES.match(name):
                found.append(Fact("history", node, unit, owner, detail=name))

    def _reference_facts(self, node, scope, owner, unit, found, suppressed, judged) -> None:
        store = not isinstance(node.ctx, ast.Load)
        meaning = self.qualify(node, scope) if judged else EMPTY
        if meaning:
            suppressed.update(id(n) for n in self._links(node, scope))
            found.append(Fact("name", node, unit, owner, meaning, store))
        elif judged and isinstance(node, ast.Attribute) and node.attr in WATCHED_ATTRIBUTES:
            found.append(Fact("attribute", node, unit, owner, store=store, detail=node.attr))
        elif judged:
            self._literal_attribute_fact(node, scope, owner, unit, found)
        if store and isinstance(node, ast.Subscript) and not self._namespace_write(
                node.value, node, scope, owner, unit, found):
            library = self.qualify(node.value, scope)
            if library & {"sys.modules", "builtins"}:
                found.append(Fact("patch", node, unit, owner, library))

    def _namespace_write(self, container, node, scope, owner, unit, found) -> bool:
        """``node`` writes into ``container`` when it is a namespace (``globals()[k] = v``,
        ``vars(m).update(...)``, ``m.__dict__[k] = v``): code that could redefine anything, or
        a patch of ``m``. False when ``container`` is no namespace."""
        namespace = self.qualifier.namespace_of(container, scope, 0)
        if namespace == "globals":
            found.append(Fact("opaque", node, unit, owner, frozenset({"builtins.globals"})))
        elif namespace is not None:
            target = self.qualify(namespace, scope)
            if target:
                found.append(Fact("patch", node, unit, owner, target))
        return namespace is not None

    def _literal_attribute_fact(self, node, scope, owner, unit, found) -> None:
        """``getattr(loss, "backward")`` on an object of unknown type: like ``loss.backward``."""
        reached = self.qualifier.literal_attribute(node, scope)
        if reached is not None and reached[1] in WATCHED_ATTRIBUTES and not self.qualify(
                reached[0], scope):
            found.append(Fact("attribute", node, unit, owner, detail=reached[1],
                              store=reached[2] in ("setattr", "delattr")))

    def _call_facts(self, node: ast.Call, scope, owner, unit, found, suppressed, judged) -> None:
        meaning = self.qualify(node, scope) if judged else EMPTY
        if meaning:
            suppressed.update(id(n) for n in self._links(node, scope))
            found.append(Fact("name", node, unit, owner, meaning))
        elif judged:
            self._literal_attribute_fact(node, scope, owner, unit, found)
        for keyword in node.keywords:
            if keyword.arg == "requires_grad" and not (
                    isinstance(keyword.value, ast.Constant) and not keyword.value.value):
                found.append(Fact("keyword", keyword.value, unit, owner, detail="requires_grad"))
        if isinstance(node.func, ast.Attribute) and node.func.attr == "update":
            self._namespace_write(node.func.value, node, scope, owner, unit, found)
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
            detail = COMPUTED_NAME if name is None else name
            found.append(Fact("magic", node, unit, owner, function & MAGIC_RUNNERS,
                              detail=detail, extra=argument or ""))
            if name is None or is_opaque_magic(name, argument or "") or (
                    name in PYTHON_MAGICS and id(node) not in unit.parsed_calls):
                found.append(Fact("opaque", node, unit, owner, function & MAGIC_RUNNERS,
                                  detail=detail))
        if "torch.set_grad_enabled" in function and args and isinstance(args[0], ast.Constant) \
                and args[0].value is False:
            suppressed.add(id(node.func))  # switching autograd off is fine
