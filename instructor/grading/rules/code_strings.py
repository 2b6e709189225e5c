"""Code a cell runs from a string the cell spells out, which the checker reads too.

``exec("...")``, ``eval``, ``compile`` with a literal string, and IPython's ``run_cell``,
``run_line_magic`` and ``run_cell_magic`` (what ``%time``, ``%%timeit``, ``%%capture``... turn
into) with literal arguments: :func:`code_strings` finds them in a parsed cell, and
:mod:`.parsing` reads each as a unit of its own. Any other way of running code from a string
is judged where it is used (it makes a rule unverifiable, and the scan flags it).
"""

from __future__ import annotations

import ast
import re

from .suspicious import PYTHON_MAGICS
from .syntax import parse_python

CODE_CALLS = frozenset({"exec", "eval", "compile"})
SHELL_CALLS = frozenset({"run_cell", "run_line_magic", "run_cell_magic"})


def code_strings(tree: ast.Module) -> list[tuple[ast.Call, str, bool, int]]:
    """Code a tree runs from literal strings: (call, code, IPython syntax?, line in the
    tree's numbering where that code's line 1 is)."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func, args = node.func, node.args
        texts = [a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None
                 for a in args]
        line = node.lineno
        if isinstance(func, ast.Name) and func.id in CODE_CALLS and texts[0] is not None:
            found.append((node, texts[0], False, line))
        elif isinstance(func, ast.Attribute) and func.attr in SHELL_CALLS:
            if func.attr == "run_cell" and texts[0] is not None:
                found.append((node, texts[0], True, line))
            elif func.attr == "run_line_magic" and len(texts) == 2 and None not in texts:
                if texts[0] in PYTHON_MAGICS:
                    found.append((node, without_options(texts[1]), True, line))
            elif func.attr == "run_cell_magic" and len(texts) == 3 and None not in texts:
                if texts[0] in PYTHON_MAGICS:
                    found.append((node, without_options(texts[1]), True, line))
                    found.append((node, texts[2], True, line + 1))
    return found


def without_options(argument: str) -> str:
    """The Python statement of ``%timeit -n 1 -r3 stmt``: the argument without its leading
    options (and their values), the first such suffix that parses."""
    tokens = [t.start() for t in re.finditer(r"\S+", argument)] + [len(argument)]
    starts, number = [0], 0
    while number < len(tokens) - 1 and argument[tokens[number]] == "-":
        starts.append(tokens[number + 1])  # after an option
        if number + 1 < len(tokens) - 1 and argument[tokens[number + 1]] != "-":
            starts.append(tokens[number + 2])  # after an option and its value
            number += 2
        else:
            number += 1
    for start in starts:
        try:
            parse_python(argument[start:])
            return argument[start:]
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
    return argument
