"""A notebook's cell turned into Python the way IPython runs it, as :class:`Unit`\\ s.

A cell is parsed as plain Python; one that does not parse (magics, ``!cmd``) or holds pasted
prompts goes through IPython's own ``TransformerManager`` first (IPython is imported then, not
before). Code that IPython would run from a string the cell spells out (a ``%%time`` body,
``exec("...")``, see :mod:`.code_strings`) is parsed too, as a :class:`Unit` of its own.
Hostile cells (huge, deeply nested, beyond the limits below) become a
:class:`~.cells.Problem`, never an exception.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import lru_cache

from .cells import Cell, Problem
from .code_strings import CODE_CALLS, SHELL_CALLS, code_strings
from .syntax import parse_python, tree_depth_exceeds
from .vocabulary import SYNTAX_ERROR, UNREADABLE

MAX_CELL_CHARS = 100_000     # one student cell
MAX_TOTAL_CHARS = 1_000_000  # all student cells together
MAX_CELLS = 1_000            # student cells read; the rest are unreadable
MAX_MAGIC_WORK = 400_000     # IPython re-reads the cell once per magic: lines x characters
MAX_NESTING = 3              # code strings inside code strings
MAX_CACHED_CHARS = 8_000     # cells this small are parsed once per process
MAX_TREE_DEPTH = 600         # deeper syntax trees are unreadable, whatever the recursion limit
ESCAPES = ("%", "!", "?", ",", ";", "/")


@dataclass(eq=False)
class Unit:
    """Python that runs in the notebook's namespace: a cell, or code a cell runs from a
    string. ``first_line`` is the cell line of the code's line 1."""

    cell: Cell
    tree: ast.Module
    text: str
    first_line: int
    parsed_calls: frozenset[int] = frozenset()  # ids of calls whose code string became a Unit

    def line(self, node: ast.AST) -> int:
        return self.first_line + getattr(node, "lineno", 1) - 1


@dataclass(frozen=True)
class _Unparsable:
    """Why a text does not parse: the code and detail of the :class:`~.cells.Problem` it makes,
    and its line within the text."""

    code: str
    detail: str
    line: int = 1


_transformer = None


def _ipython_code(text: str) -> str:
    global _transformer
    if _transformer is None:
        from IPython.core.inputtransformer2 import TransformerManager
        _transformer = TransformerManager()
    return _transformer.transform_cell(text)


def _escape_lines(text: str) -> int:
    count = 0
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and (stripped[0] in ESCAPES or stripped[-1] == "?" or "= %" in line
                         or "=%" in line or "= !" in line or "=!" in line):
            count += 1
    return count


def _leading_blank_lines(text: str) -> int:
    lines = text.splitlines()
    blank = 0
    for line in lines:
        if line.strip():
            return blank
        blank += 1
    return 0


def _parse(text: str, ipython: bool) -> tuple[ast.Module, str, int, tuple] | _Unparsable:
    """(tree, code parsed, line of the text where the code's line 1 is, code strings), or why
    it does not parse. Small cells are cached: most cells of a class's submissions are the
    same (the locked ones, the "check it yourself" ones)."""
    if len(text) <= MAX_CACHED_CHARS:
        return _parse_cached(text, ipython)
    return _parse_fresh(text, ipython)


def _parse_fresh(text: str, ipython: bool) -> tuple[ast.Module, str, int, tuple] | _Unparsable:
    parsed = _parse_text(text, ipython)
    if isinstance(parsed, _Unparsable):
        return parsed
    code = parsed[1]
    if not any(word in code for word in (*CODE_CALLS, *SHELL_CALLS)):
        return (*parsed, ())
    return (*parsed, tuple(code_strings(parsed[0])))


_parse_cached = lru_cache(maxsize=256)(_parse_fresh)


def _parse_text(text: str, ipython: bool) -> tuple[ast.Module, str, int] | _Unparsable:
    """Plain Python first: IPython's transformer changes nothing in a cell that parses, except
    for pasted prompts (">>>", "In [1]:", "...:"), which send the cell to the transformer."""
    if not ipython or not any(prompt in text for prompt in (">>>", "In [", "...:")):
        try:
            return _shallow(parse_python(text), text, 1)
        except (SyntaxError, ValueError) as error:
            if not ipython:
                return _Unparsable(SYNTAX_ERROR, type(error).__name__,
                                   getattr(error, "lineno", None) or 1)
        except (RecursionError, MemoryError) as error:
            return _too_deep(error)
    if _escape_lines(text) * len(text) > MAX_MAGIC_WORK:
        return _Unparsable(UNREADABLE, "too much IPython syntax to read")
    first_line = 1 + _leading_blank_lines(text)
    try:
        code = _ipython_code(text)
        return _shallow(parse_python(code), code, first_line)
    except (SyntaxError, ValueError) as error:
        line = getattr(error, "lineno", None)
        return _Unparsable(SYNTAX_ERROR, type(error).__name__,
                           first_line + line - 1 if isinstance(line, int) else 1)
    except (RecursionError, MemoryError) as error:
        return _too_deep(error)
    except Exception as error:  # IPython's transformer gave up: IPython cannot run it either
        return _Unparsable(SYNTAX_ERROR, f"{type(error).__name__} in IPython's transformer")


def _shallow(tree: ast.Module, code: str, first_line: int) -> tuple[ast.Module, str, int] | _Unparsable:
    """The parse, unless its tree is deeper than any process reads the same way: whether such a
    tree parses at all depends on the process's recursion limit, and the verdict must not."""
    if tree_depth_exceeds(tree, MAX_TREE_DEPTH):
        return _Unparsable(UNREADABLE, f"nested more than {MAX_TREE_DEPTH} levels deep")
    return tree, code, first_line


def _too_deep(error: Exception) -> _Unparsable:
    """The parser's own stack limit (MemoryError) is the same in every process: IPython cannot
    run the cell either. Python's recursion limit is not: a kernel with a higher one may."""
    if isinstance(error, MemoryError):
        return _Unparsable(SYNTAX_ERROR, "MemoryError (too deeply nested to parse)")
    return _Unparsable(UNREADABLE, "RecursionError (nested deeper than the checker reads)")


def read(cell: Cell, depth: int = 0, text: str | None = None, ipython: bool = True,
         first_line: int = 1) -> tuple[list[Unit], list[Problem]]:
    """The units of ``cell`` (or of ``text``, code it runs from a string at ``first_line``)."""
    text = cell.source if text is None else text
    if not cell.locked and len(text) > MAX_CELL_CHARS:
        return [], [Problem(cell, UNREADABLE, f"{len(text)} characters", first_line)]
    parsed = _parse(text, ipython)
    if isinstance(parsed, _Unparsable):
        return [], [Problem(cell, parsed.code, parsed.detail, first_line + parsed.line - 1)]
    tree, code, offset, strings = parsed
    unit = Unit(cell, tree, code, first_line + offset - 1)
    units, problems = [unit], []
    if depth < MAX_NESTING:
        calls = set()
        for call, inner, inner_ipython, line in strings:
            inner_units, inner_problems = read(cell, depth + 1, inner, inner_ipython,
                                               unit.first_line + line - 1)
            if inner_units:
                calls.add(id(call))
            units += inner_units
            problems += inner_problems
        unit.parsed_calls = frozenset(calls)
    return units, problems


def read_all(cells: list[Cell]) -> tuple[list[Unit], list[Problem]]:
    """Units and problems of ``cells``, within the limits on the student's cells."""
    units, problems, total = [], [], 0
    for number, cell in enumerate(cells):
        if not cell.locked:
            total += len(cell.source)
            if number >= MAX_CELLS or total > MAX_TOTAL_CHARS:
                rest = sum(not c.locked for c in cells[number:])
                problems.append(Problem(cell, UNREADABLE, f"this and {rest - 1} more cells are "
                                        "beyond the notebook's size limit", 1))
                break
        cell_units, cell_problems = read(cell)
        units += cell_units
        problems += cell_problems
    return units, problems
