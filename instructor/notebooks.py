"""What a cell of an nbgrader notebook is, and nbgrader's markers: the one place for both.

The predicates build on :mod:`nbgrader.utils` (``is_grade``, ``is_solution``, ``is_locked``), so
that the kit and nbgrader never disagree on what a cell is. A *test cell* is an autograded code
cell (locked, worth points); an *answer cell* is where a student writes (``solution``); a
*context cell* is a locked code cell that is not a test (setup, data, test helpers): the grader
runs those again in its own process before it replays the tests.
"""

from __future__ import annotations

import ast
import re

from nbgrader.utils import is_grade, is_locked, is_solution

__all__ = ["is_grade", "is_locked", "is_solution", "grade_id", "points", "is_test_cell",
           "is_answer_cell", "is_written_answer", "is_context_cell", "rules_of_cell",
           "MARKERS", "MARKER_LINE", "SOLUTION_REGION", "HIDDEN_REGION", "solved_source",
           "answered", "defined_names"]

MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
#: One marker line (``### BEGIN SOLUTION`` ... ``### END HIDDEN TESTS``), with its newline.
MARKER_LINE = re.compile(r"^[ \t]*### (BEGIN|END) (SOLUTION|HIDDEN TESTS)[ \t]*\n?", re.M)
#: A solution region; group 1 is the code between the markers.
SOLUTION_REGION = re.compile(r"[ \t]*### BEGIN SOLUTION[ \t]*\n(.*?)[ \t]*### END SOLUTION[ \t]*\n?",
                             re.S)
#: A hidden-test region; group 1 is the code between the markers.
HIDDEN_REGION = re.compile(
    r"[ \t]*### BEGIN HIDDEN TESTS[ \t]*\n(.*?)[ \t]*### END HIDDEN TESTS[ \t]*\n?", re.S)


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def points(cell) -> float:
    return float(cell.get("metadata", {}).get("nbgrader", {}).get("points", 0) or 0)


def is_test_cell(cell) -> bool:
    """An autograded test: a graded, locked code cell that is not an answer."""
    return cell.cell_type == "code" and is_grade(cell) and not is_solution(cell)


def is_answer_cell(cell) -> bool:
    """A code cell the student fills in (nbgrader's autograded answer)."""
    return cell.cell_type == "code" and is_solution(cell)


def is_written_answer(cell) -> bool:
    """A manually graded markdown answer."""
    return cell.cell_type == "markdown" and is_grade(cell) and is_solution(cell)


def is_context_cell(cell) -> bool:
    """A locked code cell that is not a test (setup, data, test helpers)."""
    return cell.cell_type == "code" and is_locked(cell) and not is_grade(cell)


def rules_of_cell(cell) -> tuple[str, ...]:
    """The rules a solution cell declares for the functions it defines (``metadata.kit.rules``)."""
    rules = cell.get("metadata", {}).get("kit", {}).get("rules", ())
    return tuple(rules) if isinstance(rules, (list, tuple)) else ()


def solved_source(cell) -> str:
    """A solution cell's code as a student who solved it would hand it in (markers removed)."""
    return MARKER_LINE.sub("", cell.source)


def answered(release_nb, source_nb, ids: set[str] | None = None):
    """A copy of the released notebook with the answer cells in ``ids`` (default: all) filled in
    from the source, as a student who solved them would hand it in."""
    import copy
    solved = {grade_id(c): solved_source(c) for c in source_nb.cells if is_answer_cell(c)}
    nb = copy.deepcopy(release_nb)
    for cell in nb.cells:
        if is_answer_cell(cell) and (ids is None or grade_id(cell) in ids):
            cell.source = solved.get(grade_id(cell), cell.source)
    return nb


def defined_names(source: str) -> list[str]:
    """Top-level functions and classes a cell's source defines (none if it does not parse)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    return [node.name for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def graded_names(source_nb) -> list[str]:
    """The functions and classes the source notebook's answer cells define."""
    names: list[str] = []
    for cell in source_nb.cells:
        if is_answer_cell(cell):
            names += [n for n in defined_names(cell.source) if n not in names]
    return names
