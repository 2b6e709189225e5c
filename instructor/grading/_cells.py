"""A notebook's code cells, read the way IPython runs them.

Which cells are the student's: every code cell of the submission except those nbgrader restores
from the source before it runs anything (a cell whose ``grade_id`` is a locked cell of the
source). The source's locked code cells are read from the source itself. Each cell is turned
into Python by IPython's own ``TransformerManager`` (magics, ``!cmd``) and parsed; code that
IPython would run from a string the cell spells out (a ``%%time`` body, ``exec("...")``) is
parsed too, as a :class:`Unit` of its own. Hostile cells (huge, deeply nested, not text)
become a :class:`Problem`, never an exception.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from ._families import PYTHON_MAGICS, SYNTAX_ERROR, UNREADABLE

MAX_CELL_CHARS = 100_000     # one student cell
MAX_TOTAL_CHARS = 1_000_000  # all student cells together
MAX_CELLS = 1_000            # student cells read; the rest are unreadable
MAX_MAGIC_WORK = 400_000     # IPython re-reads the cell once per magic: lines x characters
MAX_NESTING = 3              # code strings inside code strings
MAX_CACHED_CHARS = 8_000     # cells this small are parsed once per process
ESCAPES = ("%", "!", "?", ",", ";", "/")
CODE_CALLS = frozenset({"exec", "eval", "compile"})
SHELL_CALLS = frozenset({"run_cell", "run_line_magic", "run_cell_magic"})


@dataclass(frozen=True)
class Cell:
    """A code cell: its position in the submission, its ``grade_id`` (None for a cell the
    student added), its text and whether it is a locked cell of the source (trusted)."""

    index: int
    grade_id: str | None
    source: str
    locked: bool


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
class Problem:
    """A cell that could not be read: ``code`` is SYNTAX_ERROR (IPython cannot run it either)
    or UNREADABLE (it may run, but is beyond the checker's limits)."""

    cell: Cell
    code: str
    detail: str
    line: int


class _Unparsable(Exception):
    def __init__(self, code: str, detail: str, line: int = 1):
        super().__init__(detail)
        self.code, self.detail, self.line = code, detail, line


def describe(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def notebook_cells(nb: object, argument: str) -> list:
    cells = nb.get("cells") if isinstance(nb, Mapping) else None
    if not isinstance(cells, list):
        raise TypeError(f"{argument}: expected a notebook (a dict with a list of cells), "
                        f"got {describe(nb)}")
    return cells


def nbgrader_of(cell: Mapping) -> Mapping:
    meta = cell.get("metadata")
    meta = meta.get("nbgrader") if isinstance(meta, Mapping) else None
    return meta if isinstance(meta, Mapping) else {}


def grade_id_of(cell: Mapping) -> str | None:
    grade_id = nbgrader_of(cell).get("grade_id")
    return grade_id if isinstance(grade_id, str) else None


def is_locked(cell: Mapping) -> bool:
    """nbgrader's rule: a solution cell is never locked, a grade (test) cell always is."""
    meta = nbgrader_of(cell)
    return not meta.get("solution") and bool(meta.get("grade") or meta.get("locked"))


def text_of(cell: Mapping) -> str | None:
    source = cell.get("source", "")
    if isinstance(source, list) and all(isinstance(s, str) for s in source):
        return "".join(source)
    return source if isinstance(source, str) else None


def source_code_cells(source_nb: object) -> list[tuple[int, Mapping]]:
    return [(i, c) for i, c in enumerate(notebook_cells(source_nb, "source_nb"))
            if isinstance(c, Mapping) and c.get("cell_type") == "code"]


def split_cells(source_nb: object, submitted_nb: object
                ) -> tuple[list[Cell], list[Cell], list[Problem]]:
    """(locked cells of the source, student cells of the submission, cells not text)."""
    source = [c for c in notebook_cells(source_nb, "source_nb") if isinstance(c, Mapping)]
    submitted = notebook_cells(submitted_nb, "submitted_nb")
    known = {}  # grade_id -> (cell type, locked) in the source
    for cell in source:
        grade_id = grade_id_of(cell)
        if grade_id is not None:
            known.setdefault(grade_id, (cell.get("cell_type"), is_locked(cell)))
    position = {}
    students, problems = [], []
    for index, cell in enumerate(submitted):
        if not isinstance(cell, Mapping):
            continue
        grade_id = grade_id_of(cell)
        cell_type = cell.get("cell_type")
        if grade_id in known:
            position.setdefault(grade_id, index)
            cell_type, locked = known[grade_id]  # nbgrader restores the source's cell type
            if locked:
                continue
        if cell_type != "code":
            continue
        text = text_of(cell)
        if text is None:
            problems.append(Problem(Cell(index, grade_id, "", False), UNREADABLE,
                                    "source is not text", 1))
            continue
        students.append(Cell(index, grade_id, text, False))
    locked = []
    for index, cell in enumerate(source):
        text = text_of(cell)
        if cell.get("cell_type") == "code" and is_locked(cell) and text is not None:
            grade_id = grade_id_of(cell)
            locked.append(Cell(position.get(grade_id, index), grade_id, text, True))
    return locked, students, problems


# ------------------------------------------------------------------------------------ parsing

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


def _python(text: str) -> ast.Module:
    """``ast.parse``, quiet about the warnings the compiler would print (invalid escapes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(text)


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
    return (*parsed, tuple(_code_strings(parsed[0])))


_parse_cached = lru_cache(maxsize=256)(_parse_fresh)


def _parse_text(text: str, ipython: bool) -> tuple[ast.Module, str, int] | _Unparsable:
    """Plain Python first: IPython's transformer changes nothing in a cell that parses, except
    for pasted prompts (">>>", "In [1]:", "...:"), which send the cell to the transformer."""
    if not ipython or not any(prompt in text for prompt in (">>>", "In [", "...:")):
        try:
            return _python(text), text, 1
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
        return _python(code), code, first_line
    except (SyntaxError, ValueError) as error:
        line = getattr(error, "lineno", None)
        return _Unparsable(SYNTAX_ERROR, type(error).__name__,
                           first_line + line - 1 if isinstance(line, int) else 1)
    except (RecursionError, MemoryError) as error:
        return _too_deep(error)
    except Exception as error:  # IPython's transformer gave up: IPython cannot run it either
        return _Unparsable(SYNTAX_ERROR, f"{type(error).__name__} in IPython's transformer")


def _too_deep(error: Exception) -> _Unparsable:
    """The parser's own stack limit (MemoryError) is the same in every process: IPython cannot
    run the cell either. Python's recursion limit is not: a kernel with a higher one may."""
    if isinstance(error, MemoryError):
        return _Unparsable(SYNTAX_ERROR, "MemoryError (too deeply nested to parse)")
    return _Unparsable(UNREADABLE, "RecursionError (nested deeper than the checker reads)")


def _code_strings(tree: ast.Module) -> list[tuple[ast.Call, str, bool, int]]:
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
                    found.append((node, _without_options(texts[1]), True, line))
            elif func.attr == "run_cell_magic" and len(texts) == 3 and None not in texts:
                if texts[0] in PYTHON_MAGICS:
                    found.append((node, _without_options(texts[1]), True, line))
                    found.append((node, texts[2], True, line + 1))
    return found


def _without_options(argument: str) -> str:
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
            _python(argument[start:])
            return argument[start:]
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
    return argument


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
