"""Record the outputs nbval compares: ``python tests/record_outputs.py LAB [LAB ...]``.

Notebooks are committed without outputs, so the expected text of every cell marked
``# NBVAL_CHECK_OUTPUT`` lives in ``tests/expected_outputs/<lab>.json`` (cell id → outputs).
This script runs the solution notebook once and writes that file; read the diff before you
commit it. ``tests/test_labs.py`` puts the outputs back into a copy of the notebook and lets
nbval re-run it and compare.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).parent))
from instructor.environment import tool_env  # noqa: E402
from labs import solution_path  # noqa: E402

MARK = "# NBVAL_CHECK_OUTPUT"
EXPECTED = Path(__file__).parent / "expected_outputs"


def marked_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and c.source.lstrip().startswith(MARK)]


def text_outputs(cell) -> list[dict]:
    """The comparable part of a cell's outputs: printed text and plain-text results."""
    kept = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            kept.append({"output_type": "stream", "name": out.name, "text": out.text})
        elif out.output_type == "execute_result" and "text/plain" in out.data:
            kept.append({"output_type": "execute_result", "data": {"text/plain": out.data["text/plain"]},
                         "metadata": {}, "execution_count": 1})
    return kept


def record(lab: str) -> Path:
    path = solution_path(lab)
    nb = nbformat.read(path, as_version=4)
    os.environ.update(tool_env())
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    expected = {cell.id: text_outputs(cell) for cell in marked_cells(nb)}
    EXPECTED.mkdir(exist_ok=True)
    target = EXPECTED / f"{lab}.json"
    target.write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
    return target


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for name in sys.argv[1:]:
        print(f"wrote {record(name)}")
