"""Small readings of Python's syntax tree that the walks share; none knows about rules.

Shapes: a *node* is an :mod:`ast` node; qualified names are strings (``torch.autograd.grad``).
"""

from __future__ import annotations

import ast
import threading
import warnings

FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)
COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


# CPython 3.11 keeps the AST converter's recursion depth in state shared by all threads, so two
# parses at once can fail with "AST constructor recursion depth mismatch"; the grader reviews
# submissions from several threads, so parses take turns.
_PARSING = threading.Lock()


def parse_python(text: str) -> ast.Module:
    """``ast.parse``, quiet about the warnings the compiler would print (invalid escapes)."""
    with _PARSING, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(text)


def tree_depth_exceeds(tree: ast.AST, limit: int) -> bool:
    """Whether some node of ``tree`` lies more than ``limit`` levels below it (no recursion)."""
    pending = [(tree, 0)]
    while pending:
        node, depth = pending.pop()
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return False


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
    """The names an assignment target binds (``a, (b, *c) = ...``: a, b, c)."""
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


def children(node: ast.AST) -> list[ast.AST]:
    """``ast.iter_child_nodes`` without the operator and context nodes nothing here reads."""
    fields = _FIELDS.get(type(node))
    if fields is None:
        fields = _FIELDS[type(node)] = tuple(f for f in node._fields
                                             if f not in _SKIPPED_FIELDS)
    found = []
    for field in fields:
        value = getattr(node, field, None)
        if isinstance(value, list):
            found += [v for v in value if isinstance(v, ast.AST)]
        elif isinstance(value, ast.AST):
            found.append(value)
    return found


def imported(node: ast.Import | ast.ImportFrom) -> list[tuple[str, str, str]]:
    """(name bound, its qualified name, the qualified name loaded) for each name an import
    statement binds: ``import a.b`` binds ``a`` to ``a`` and loads ``a.b``; ``from m import *``
    binds ``*`` to ``m``."""
    found = []
    for alias in node.names:
        if isinstance(node, ast.Import):
            top = alias.name.split(".")[0]
            found.append((alias.asname or top, alias.name if alias.asname else top, alias.name))
        else:
            module = "." * node.level + (node.module or "")
            full = module if alias.name == "*" else f"{module}.{alias.name}"
            found.append((alias.asname or alias.name, full, full))
    return found


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
