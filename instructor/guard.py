"""nbgrader preprocessors the grader adds around ``Execute``: every locked code cell (instructor
setup and test cells) starts with a call to :func:`instructor.kernel_guard.locked_cell` while it
runs, and the line is taken out again before the grades and the notebook are saved."""

from __future__ import annotations

from nbgrader.preprocessors import NbGraderPreprocessor

GUARD_LINE = '__import__("instructor.kernel_guard").kernel_guard.locked_cell()\n'


def is_locked_code(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.cell_type == "code" and not meta.get("solution") and bool(
        meta.get("locked") or meta.get("grade"))


class InjectGuard(NbGraderPreprocessor):
    """Before execution: prefix each locked code cell with the guard line."""

    def preprocess_cell(self, cell, resources, index):
        if is_locked_code(cell) and not cell.source.startswith(GUARD_LINE):
            cell.source = GUARD_LINE + cell.source
        return cell, resources


class RemoveGuard(NbGraderPreprocessor):
    """After execution: remove the guard line again."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and cell.source.startswith(GUARD_LINE):
            cell.source = cell.source[len(GUARD_LINE):]
        return cell, resources
