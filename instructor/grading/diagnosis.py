"""Why a submission was not graded normally, as :class:`~.outcome.Finding` codes.

:func:`inspect_submission` reads the submitted files before grading (missing or renamed
notebooks, broken JSON, deleted, duplicated or reordered graded cells); :func:`nbgrader_failure`
reads nbgrader's log when it failed; :func:`describe_execution` reads the executed notebook
(time limits, memory, output floods).
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from ..notebooks import grade_id
from .limits import Limits
from .outcome import Finding

MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024


def read_notebook(path: Path):
    """The notebook at ``path``, or the reason it cannot be read (a string)."""
    if path.stat().st_size > MAX_NOTEBOOK_BYTES:
        return f"larger than {MAX_NOTEBOOK_BYTES // (1024 * 1024)} MiB"
    try:
        return nbformat.read(path, as_version=4)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError,
            nbformat.reader.NotJSONError) as error:
        return f"{type(error).__name__}: {str(error)[:120]}"


def _graded_ids(nb) -> list[str]:
    return [i for i in (grade_id(c) for c in nb.cells) if i]


def inspect_submission(sources: list[Path], folder: Path) -> list[Finding]:
    """Problems with the submitted files (nbgrader restores deleted or edited locked cells)."""
    found: list[Finding] = []
    present = sorted(p.name for p in folder.glob("*.ipynb"))
    expected = {s.name for s in sources}
    for source in sources:
        path = folder / source.name
        if not path.exists():
            found.append(Finding("notebook_missing", {
                "notebook": source.name, "found": [n for n in present if n not in expected]}))
            continue
        submitted = read_notebook(path)
        if isinstance(submitted, str):
            found.append(Finding("not_a_notebook", {"notebook": source.name, "error": submitted}))
            continue
        wanted = _graded_ids(nbformat.read(source, as_version=4))
        got = _graded_ids(submitted)
        missing = [i for i in wanted if i not in got]
        duplicated = sorted({i for i in got if got.count(i) > 1})
        order = [i for i in dict.fromkeys(got) if i in wanted]
        if missing:
            found.append(Finding("cells_deleted", {"notebook": source.name, "cells": missing}))
        if duplicated:
            found.append(Finding("cells_duplicated", {"notebook": source.name,
                                                      "cells": duplicated}))
        if order != [i for i in wanted if i in order]:
            found.append(Finding("cells_reordered", {"notebook": source.name, "order": order}))
    return found


def nbgrader_failure(log: str) -> Finding:
    """What went wrong, read from the log of an ``nbgrader autograde`` that failed."""
    lowered = log.lower()
    if "deadkernelerror" in lowered or "kernel died" in lowered:
        return Finding("kernel_died")
    if "NotJSONError" in log or "JSONDecodeError" in log or "not valid JSON" in log:
        return Finding("not_a_notebook", {"notebook": "the notebook", "error": "not valid JSON"})
    if "KeyError: 'grade_id'" in log:
        return Finding("cells_duplicated", {"notebook": "the notebook", "cells": []})
    if "No notebooks found" in log or "No notebooks were matched" in log:
        return Finding("nothing_recorded")
    if "MemoryError" in log:
        return Finding("nbgrader_failed", {"detail": "the grader ran out of memory (output flood?)"})
    errors = [line.strip() for line in log.splitlines() if "Error" in line or "error" in line]
    return Finding("nbgrader_failed", {"detail": errors[-1][:200] if errors else ""})


def describe_execution(folder: Path, limits: Limits) -> list[Finding]:
    """Time limits, memory and output floods seen in the executed notebooks of ``folder``."""
    found: list[Finding] = []
    for path in sorted(folder.glob("*.ipynb")):
        nb = read_notebook(path)
        if isinstance(nb, str):
            continue
        for index, cell in enumerate(nb.cells):
            where = {"notebook": path.name, "cell": grade_id(cell) or f"cell {index}"}
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    if output.get("ename") == "CellTimeoutError":
                        found.append(Finding("cell_timeout", {**where,
                                                              "seconds": limits.cell_timeout}))
                    elif output.get("ename") == "MemoryError":
                        found.append(Finding("out_of_memory", {**where,
                                                               "limit_mb": limits.memory_mb}))
                text = output.get("text", "") if output.get("output_type") == "stream" else ""
                if "[output truncated by the grader" in text or "Output truncated" in text:
                    found.append(Finding("output_truncated", where))
    unique = {(f.code, tuple(sorted(f.params.items()))): f for f in found}
    return list(unique.values())
