"""The two notebooks read once, for both the rule check and the scan.

:class:`Analysis` splits the cells (:mod:`.cells`), parses them (:mod:`.parsing`), builds the
:class:`~.facts.Program` they make and collects every cell that could not be read as a
:class:`~.cells.Problem`. It also knows the attribute names the source notebook's own classes
define (Lab 4's ``Value.grad``), and how a construct was written (:meth:`Analysis.written`).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from .bindings import MAX_NODES
from .cells import Cell, Problem, source_code_cells, split_cells, text_of
from .facts import Fact, Program
from .parsing import read, read_all
from .syntax import class_attributes
from .vocabulary import SHELL, UNREADABLE


@lru_cache(maxsize=64)
def _engine_attributes(texts: tuple[str, ...]) -> frozenset[str]:
    """Attribute names that classes of the source notebook define (Lab 4's Value.grad)."""
    names: set[str] = set()
    for text in texts:
        for unit in read(Cell(0, None, text, True))[0]:
            names |= class_attributes(unit.tree)
    return frozenset(names)


def shorten(text: str, width: int = 80) -> str:
    """``text`` on one line, cut to ``width`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


class Analysis:
    """``program``: the locked cells of the source and the student's cells of the submission,
    as one :class:`~.facts.Program`; ``students``: the student's units; ``problems``: cells
    not read; ``engine``: attribute names the source notebook's classes define."""

    def __init__(self, source_nb: Mapping, submitted_nb: Mapping):
        locked, students, problems = split_cells(source_nb, submitted_nb)
        locked_units = [u for cell in locked for u in read(cell)[0]]
        student_units, student_problems = read_all(students)
        texts = tuple(text_of(c) or "" for _, c in source_code_cells(source_nb))
        self.engine = _engine_attributes(texts)
        self.program = Program(locked_units + student_units)
        bindings = self.program.bindings
        self.problems = problems + student_problems + [
            Problem(u.cell, UNREADABLE, f"more than {MAX_NODES} syntax nodes", u.first_line)
            for u in bindings.too_complex]
        self.students = [u for u in bindings.units if not u.cell.locked]
        self._lines: dict[int, list[str]] = {}

    def written(self, fact: Fact) -> str:
        """The construct of ``fact`` as the student wrote it, on one line; for a magic, or
        anything reached through the shell (what ``!cmd`` becomes), the cell's line itself."""
        unit, node = fact.unit, fact.node
        line = unit.line(node)
        if fact.kind == "magic" or any(n.startswith(SHELL) for n in fact.names):
            lines = unit.cell.source.splitlines()
            return shorten(lines[line - 1].strip()) if 0 < line <= len(lines) else ""
        lines = self._lines.get(id(unit))
        if lines is None:
            lines = self._lines[id(unit)] = unit.text.splitlines()
        start = getattr(node, "lineno", 1)
        if not 0 < start <= len(lines):
            return ""
        raw = lines[start - 1].encode()
        if getattr(node, "end_lineno", start) == start:
            raw = raw[node.col_offset:node.end_col_offset]
            return shorten(raw.decode(errors="replace"))
        return shorten(raw[node.col_offset:].decode(errors="replace") + " ...")
