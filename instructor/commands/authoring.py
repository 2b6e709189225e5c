"""Build nbgrader notebooks from Python: used for test fixtures and when writing a lab.

Each helper returns an ``nbformat`` cell carrying the nbgrader metadata of its kind::

    nb = notebook([
        markdown("# Lab"),
        solution("def add(a, b):\\n    ### BEGIN SOLUTION\\n    return a + b\\n    ### END SOLUTION", "add"),
        tests("assert add(1, 2) == 3", "test_add", points=1),
    ])
    nbformat.write(nb, "solutions/lab/lab.ipynb")
"""

from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

SCHEMA_VERSION = 3


def _meta(grade_id: str, *, grade: bool, solution: bool, locked: bool, task: bool = False,
          points: float | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked,
            "schema_version": SCHEMA_VERSION, "solution": solution, "task": task}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def markdown(text: str, grade_id: str | None = None) -> nbformat.NotebookNode:
    """A markdown cell; with ``grade_id`` it is locked (read-only for students)."""
    cell = new_markdown_cell(text.strip("\n"))
    if grade_id:
        cell.metadata.update(_meta(grade_id, grade=False, solution=False, locked=True))
    return cell


def code(source: str, grade_id: str | None = None) -> nbformat.NotebookNode:
    """A plain code cell; with ``grade_id`` it is locked."""
    cell = new_code_cell(source.strip("\n"))
    if grade_id:
        cell.metadata.update(_meta(grade_id, grade=False, solution=False, locked=True))
    return cell


def solution(source: str, grade_id: str) -> nbformat.NotebookNode:
    """An autograded-answer cell: the part between BEGIN/END SOLUTION is cleared for students."""
    cell = new_code_cell(source.strip("\n"))
    cell.metadata.update(_meta(grade_id, grade=False, solution=True, locked=False))
    return cell


def tests(source: str, grade_id: str, points: float) -> nbformat.NotebookNode:
    """A locked autograder-test cell worth ``points``."""
    cell = new_code_cell(source.strip("\n"))
    cell.metadata.update(_meta(grade_id, grade=True, solution=False, locked=True, points=points))
    return cell


def written_answer(text: str, grade_id: str, points: float) -> nbformat.NotebookNode:
    """A manually graded markdown answer cell."""
    cell = new_markdown_cell(text.strip("\n"))
    cell.metadata.update(_meta(grade_id, grade=True, solution=True, locked=False, points=points))
    return cell


def notebook(cells: list[nbformat.NotebookNode]) -> nbformat.NotebookNode:
    """A Python 3 notebook holding ``cells``, without outputs."""
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python",
                                 "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb
