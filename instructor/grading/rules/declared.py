"""The rules a source notebook declares, per graded function or class.

A lab declares rules per solution cell of its SOURCE notebook, next to nbgrader's metadata:
``cell.metadata["kit"] = {"rules": ["by_hand"]}`` (vocabulary in
:data:`~.vocabulary.RULES` and in docs/authoring.md). A rule applies to every top-level
function and class that cell defines. Rules are read from the source only, never from the
submission.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping

from .cells import Cell, nbgrader_of, source_code_cells, text_of
from .parsing import read
from .vocabulary import RULES


def rules_of(source_nb: Mapping) -> dict[str, tuple[str, ...]]:
    """Graded function or class name -> its rules, from the source notebook's solution cells.

    Raises ValueError for malformed rule metadata (an unknown rule, rules on a cell that is not
    a solution cell, a ruled cell that does not parse)."""
    ruled: dict[str, list[str]] = {}
    for index, cell in source_code_cells(source_nb):
        metadata = cell.get("metadata")
        kit = metadata.get("kit") if isinstance(metadata, Mapping) else None
        if not isinstance(kit, Mapping) or "rules" not in kit:
            continue
        grade_id = nbgrader_of(cell).get("grade_id")
        where = f"source_nb: cell {grade_id or index!r}: metadata kit.rules"
        rules = kit["rules"]
        if not isinstance(rules, (list, tuple)) or not all(r in RULES for r in rules):
            raise ValueError(f"{where}: expected a list of rules among {list(RULES)}, "
                             f"got {rules!r}")
        if not nbgrader_of(cell).get("solution"):
            raise ValueError(f"{where}: expected on a solution cell, got it on a cell that "
                             "is not one")
        text = text_of(cell)
        units, problems = read(Cell(index, grade_id, text, True)) if text is not None else ([], [])
        if problems or not units:
            detail, line = (problems[0].detail, problems[0].line) if problems else ("not text", 1)
            raise ValueError(f"{where}: expected a cell that parses, got {detail} at line {line}")
        for statement in units[0].tree.body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = ruled.setdefault(statement.name, [])
                names += [r for r in rules if r not in names]
    return {name: tuple(rules) for name, rules in ruled.items()}
