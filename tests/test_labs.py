"""Every lab under solutions/ (found automatically) is a well-formed nbgrader assignment:
the solution runs top to bottom with its marked outputs as recorded (nbval), the student version
is exactly what nbgrader generates now, and no solution text or output is committed.

Each notebook runs once per mode: nbval here; grading in tests/test_grading_labs.py (the solution
earns every autograded point there and the blank student version passes no test, which is what
`nbgrader validate` and `nbgrader validate --invert` check); the browser's Run All and Validate
buttons in tests/test_browser.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import nbformat
import pytest

from instructor.environment import tool_env
from instructor.notebooks import MARKERS
from labs import (
    NOTEBOOKS,
    SOLUTIONS,
    discover_labs,
    read_cells,
    solution_path,
    student_path,
    two_at_a_time,
)
from record_outputs import EXPECTED, marked_cells

LABS = discover_labs()
lab_param = pytest.mark.parametrize("lab", LABS)


def test_labs_have_student_versions():
    """Every solution lab has a student notebook and every student notebook has a solution."""
    students = sorted(p.parent.name for p in NOTEBOOKS.glob("*/*.ipynb") if p.stem == p.parent.name)
    assert students == LABS, f"notebooks/ has {students}, solutions/ has {LABS}"


@lab_param
def test_no_solution_or_hidden_test_text_in_student_version(lab):
    """The student notebook carries no solution or hidden-test markers (nor the code between them)."""
    text = student_path(lab).read_text()
    leaked = [m for m in MARKERS if m in text]
    assert not leaked, f"{student_path(lab)} contains {leaked}"


@lab_param
@pytest.mark.parametrize("folder", ["solutions", "notebooks"])
def test_notebooks_are_stored_without_outputs(lab, folder):
    """Notebooks are committed clean: no outputs, no execution counts."""
    path = (SOLUTIONS if folder == "solutions" else NOTEBOOKS) / lab / f"{lab}.ipynb"
    dirty = [i for i, c in enumerate(read_cells(path)) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"{path}: cells {dirty} have outputs or execution counts; clear them"


@lab_param
def test_graded_cells_have_unique_ids_and_points(lab):
    """Each nbgrader cell has a unique grade_id; each autograded test cell is locked and worth points."""
    ids, problems = [], []
    for cell in read_cells(solution_path(lab)):
        meta = cell.get("metadata", {}).get("nbgrader")
        if not meta:
            continue
        ids.append(meta["grade_id"])
        if meta.get("grade") and not meta.get("solution"):
            if not meta.get("locked") or not meta.get("points", 0) > 0:
                problems.append(meta["grade_id"])
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"duplicate grade_ids: {duplicates}"
    assert not problems, f"test cells not locked or without points: {problems}"


@pytest.fixture(scope="module")
def generated(released_labs):
    """`nbgrader generate_assignment` of every lab, once per run (tests/conftest.py)."""
    return released_labs / "notebooks"


@pytest.mark.slow
@lab_param
def test_student_version_is_what_nbgrader_generates(lab, generated):
    """notebooks/<lab>/ is exactly `nbgrader generate_assignment` of solutions/<lab>/ (no drift)."""
    fresh, committed = generated / lab, NOTEBOOKS / lab

    def listing(folder):
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                      if p.is_file() and ".ipynb_checkpoints" not in p.parts)
    assert listing(committed) == listing(fresh)
    for name in listing(fresh):
        if name.endswith(".ipynb"):
            assert json.loads((committed / name).read_text()) == json.loads((fresh / name).read_text()), (
                f"notebooks/{lab}/{name} differs from what nbgrader generates: run `python3 kit.py release`")


def _nbval(lab: str, folder) -> subprocess.CompletedProcess:
    """nbval on a copy of the solution whose marked cells carry their recorded outputs."""
    shutil.copytree(SOLUTIONS / lab, folder / lab)
    notebook = folder / lab / f"{lab}.ipynb"
    nb = nbformat.read(notebook, as_version=4)
    recorded_file = EXPECTED / f"{lab}.json"
    recorded = json.loads(recorded_file.read_text()) if recorded_file.exists() else {}
    for cell in marked_cells(nb):
        cell.outputs = [nbformat.from_dict(out) for out in recorded.get(cell.id, [])]
        cell.execution_count = 1
    nbformat.write(nb, notebook)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
         "-q", "--rootdir", str(folder), str(notebook)],
        cwd=folder, env=tool_env(), capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def notebook_runs(tmp_path_factory):
    """Every lab's solution under nbval, each run once, two at a time: lab -> its run."""
    folders = {lab: tmp_path_factory.mktemp(f"nbval-{lab}") for lab in LABS}  # not in threads
    return two_at_a_time(lambda lab: _nbval(lab, folders[lab]), LABS)


def test_every_marked_cell_has_a_recorded_output():
    """Each `# NBVAL_CHECK_OUTPUT` cell has its expected output in tests/expected_outputs/,
    and nothing is recorded for cells that no longer exist."""
    for lab in LABS:
        ids = [c.id for c in marked_cells(nbformat.read(solution_path(lab), as_version=4))]
        recorded_file = EXPECTED / f"{lab}.json"
        recorded = json.loads(recorded_file.read_text()) if recorded_file.exists() else {}
        assert sorted(recorded) == sorted(ids), (
            f"{lab}: marked cells {ids}, recorded {sorted(recorded)}; "
            f"run `python tests/record_outputs.py {lab}` and review the diff")


@pytest.mark.slow
@lab_param
def test_solution_runs_under_nbval_with_marked_outputs_compared(lab, notebook_runs):
    """nbval runs the whole solution notebook (--nbval-lax); the marked cells must print
    exactly the recorded output."""
    result = notebook_runs[lab].result()
    assert result.returncode == 0, result.stdout[-6000:]
