"""The nbgrader preprocessors the kit adds to ``nbgrader autograde`` (in the order they run).

1. :class:`PrepareCells` (before ``Execute``): the first line of every locked code cell calls
   ``kernel_side.locked_cell`` in the kernel (the guard; for a test cell, also the recorder).
2. nbgrader's ``Execute``, in the sandboxed kernel.
3. :class:`RestoreCells`: takes that line out again.
4. :class:`RecomputeVerdicts`: checks the rules of by-hand functions on the submitted source
   (:mod:`.rules`) and replays every test cell in this process (:mod:`.replay`). The grader's
   verdict becomes the cell's score (nbgrader scores a test cell by whether its outputs hold
   an error): a test that fails here but passed in the kernel gets the grader's error added, one
   that passes here but failed in the kernel loses its error, and a test of a function that
   broke its rule gets an error naming the rule. Every disagreement, and where the seconds
   went, go to the report file the grader reads (``KIT_REPORT``); the grader reads the rule
   violations and flags from the submitted source itself.
5. nbgrader's own: ``IgnorePattern``, ``ClearMetadata``, ``LimitOutput``, ``SaveAutoGrades``,
   ``AssignLatePenalties``, ``CheckCellMetadata``.

These run in the grader's nbgrader process, outside the sandbox; the source notebook comes from
the course's ``solutions/`` folder, never from the submission.
"""

from __future__ import annotations

import ast
import json
import os
import time
from datetime import datetime
from pathlib import Path

import nbformat
from nbformat.v4 import new_output
from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.utils import has_failed
from traitlets import Integer

from ..notebooks import grade_id, graded_names, is_context_cell, is_locked, is_test_cell
from .rules.syntax import parse_python

PROLOGUE = '__import__("kernel_side").locked_cell'
PIPELINE = ["instructor.grading.preprocessors.PrepareCells", "nbgrader.preprocessors.Execute",
            "instructor.grading.preprocessors.RestoreCells",
            "instructor.grading.preprocessors.RecomputeVerdicts",
            "nbgrader.preprocessors.IgnorePattern",
            "nbconvert.preprocessors.ClearMetadataPreprocessor",
            "nbgrader.preprocessors.LimitOutput", "nbgrader.preprocessors.SaveAutoGrades",
            "nbgrader.preprocessors.AssignLatePenalties", "nbgrader.preprocessors.CheckCellMetadata"]
GRADER_ERROR = "GraderCheckFailed"
RULE_ERROR = "RuleBroken"


def source_notebook(resources: dict):
    """The source (solution) notebook of the notebook being graded, from the course."""
    info = resources["nbgrader"]
    path = Path.cwd() / "solutions" / info["assignment"] / f"{info['notebook']}.ipynb"
    return nbformat.read(path, as_version=4)


class PrepareCells(NbGraderPreprocessor):
    """Put the kernel-side call at the top of every locked code cell."""

    def preprocess(self, nb, resources):
        resources["kit_started"] = time.time()
        names = tuple(graded_names(source_notebook(resources)))
        for cell in nb.cells:
            if cell.cell_type == "code" and is_locked(cell):
                test = grade_id(cell) if is_test_cell(cell) else None
                cell.source = f"{PROLOGUE}({test!r}, {names!r})\n{cell.source}"
        return nb, resources


class RestoreCells(NbGraderPreprocessor):
    """Take the kernel-side call out again (and note how long the execution took)."""

    def preprocess(self, nb, resources):
        resources["kit_executed"] = time.time()
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and cell.source.startswith(PROLOGUE):
            cell.source = cell.source.split("\n", 1)[1] if "\n" in cell.source else ""
        return cell, resources


def _names_used_by_helpers(source_nb) -> dict[str, set[str]]:
    """For each function a context cell defines: the names its body uses."""
    used = {}
    for cell in source_nb.cells:
        if not is_context_cell(cell):
            continue
        try:
            tree = parse_python(cell.source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                used[node.name] = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    return used


def _seconds(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _timings(nb, resources: dict, replay_started: float) -> dict:
    """Where this notebook's seconds went: waiting for the kernel, each cell, the replay."""
    started, executed = resources.get("kit_started"), resources.get("kit_executed")
    cells, first_input = [], None
    for index, cell in enumerate(nb.cells):
        timing = cell.get("metadata", {}).get("execution", {})
        begin = _seconds(timing.get("iopub.execute_input"))
        end = _seconds(timing.get("shell.execute_reply"))
        if begin is not None and end is not None:
            first_input = begin if first_input is None else min(first_input, begin)
            cells.append([grade_id(cell) or f"cell {index}", round(end - begin, 4)])
    return {"notebook": resources["nbgrader"]["notebook"],
            "execute": round(executed - started, 4) if started and executed else None,
            "kernel_wait": round(first_input - started, 4) if started and first_input else None,
            "replay": round(time.time() - replay_started, 4), "cells": cells}


def _fail(cell, ename: str, message: str) -> None:
    """First among the outputs: nbgrader scores a cell by its first error or result."""
    cell.outputs.insert(0, new_output("error", ename=ename, evalue=message,
                                      traceback=[f"{ename}: {message}"]))


def _pass(cell) -> None:
    cell.outputs = [o for o in cell.outputs if o.output_type != "error"
                    and not (o.output_type == "stream" and o.get("name") == "stderr")]
    cell.outputs.append(new_output("stream", name="stdout", text=(
        "[the grader re-ran this test in its own process and it passed]\n")))


class RecomputeVerdicts(NbGraderPreprocessor):
    """The grader's verdict on each test cell becomes its score (see the module's docstring)."""

    cell_timeout = Integer(120, help="seconds per test cell in the grader's process").tag(config=True)

    def preprocess(self, nb, resources):
        from .replay import Verdict, replay_notebook  # torch: not in the grader's main process
        from .rules import describe, review

        source = source_notebook(resources)
        records = os.environ.get("KIT_RECORDS")
        violations, _ = review(source, nb)
        replay_started = time.time()
        verdicts = replay_notebook(source, Path(records) if records else None,
                                   cell_timeout=self.cell_timeout)
        timings = _timings(nb, resources, replay_started)
        helpers = _names_used_by_helpers(source)
        notebook = resources["nbgrader"]["notebook"]
        disagreements = []
        for cell in nb.cells:
            if not is_test_cell(cell):
                continue
            cell_id = grade_id(cell)
            verdict = verdicts.get(cell_id) or Verdict(cell_id, False, "not a test of the source")
            tested = set(verdict.called).union(*(helpers.get(n, set()) for n in verdict.called))
            broken = [v for v in violations if v.function in tested]
            kernel_passed = not has_failed(cell)
            if broken:
                _fail(cell, RULE_ERROR, " ".join(describe(v) for v in broken[:3]))
            elif not verdict.passed and kernel_passed:
                _fail(cell, GRADER_ERROR, verdict.message)
            elif verdict.passed and not kernel_passed:
                _pass(cell)
            if verdict.passed != kernel_passed:
                disagreements.append({"notebook": notebook, "cell": cell_id,
                                      "kernel": "passed" if kernel_passed else "failed",
                                      "grader": "passed" if verdict.passed else "failed",
                                      "reason": verdict.message[:500]})
        self._report({"disagreements": disagreements, "timings": [timings]})
        return nb, resources

    @staticmethod
    def _report(found: dict) -> None:
        path = os.environ.get("KIT_REPORT")
        if not path:
            return
        report = json.loads(Path(path).read_text()) if Path(path).exists() else {}
        for key, items in found.items():
            report.setdefault(key, []).extend(items)
        Path(path).write_text(json.dumps(report, indent=1, default=str))
