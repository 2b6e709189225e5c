"""Which cells of a submission are the student's, as nbformat or ``json.load`` gives them.

The student's cells are every code cell of the submission except those nbgrader restores from
the source before it runs anything (a cell whose ``grade_id`` is a locked cell of the source)
and the kit's install cell when it is exactly the released one; the source's locked code cells
are taken from the source itself. Malformed notebooks raise a
TypeError naming the argument; a cell whose source is not text becomes a :class:`Problem`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ...plugins.install_cell import is_install_cell
from .vocabulary import UNREADABLE


@dataclass(frozen=True)
class Cell:
    """A code cell: its position in the submission, its ``grade_id`` (None for a cell the
    student added), its text and whether it is a locked cell of the source (trusted)."""

    index: int
    grade_id: str | None
    source: str
    locked: bool


@dataclass(frozen=True)
class Problem:
    """A cell that could not be read: ``code`` is SYNTAX_ERROR (IPython cannot run it either)
    or UNREADABLE (it may run, but is beyond the checker's limits); ``line`` counts from 1."""

    cell: Cell
    code: str
    detail: str
    line: int


def _described(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def notebook_cells(nb: object, argument: str) -> list:
    """The cells of the notebook ``nb``; a TypeError naming ``argument`` if it is none."""
    cells = nb.get("cells") if isinstance(nb, Mapping) else None
    if not isinstance(cells, list):
        raise TypeError(f"{argument}: expected a notebook (a dict with a list of cells), "
                        f"got {_described(nb)}")
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
    """The cell's source as one string, or None when it is not text."""
    source = cell.get("source", "")
    if isinstance(source, list) and all(isinstance(s, str) for s in source):
        return "".join(source)
    return source if isinstance(source, str) else None


def source_code_cells(source_nb: object) -> list[tuple[int, Mapping]]:
    """(position, cell) for each code cell of the source notebook."""
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
        if grade_id is None and is_install_cell(text):  # the kit's own, exactly as released
            continue
        students.append(Cell(index, grade_id, text, False))
    locked = []
    for index, cell in enumerate(source):
        text = text_of(cell)
        if cell.get("cell_type") == "code" and is_locked(cell) and text is not None:
            grade_id = grade_id_of(cell)
            locked.append(Cell(position.get(grade_id, index), grade_id, text, True))
    return locked, students, problems
