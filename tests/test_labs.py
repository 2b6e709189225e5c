"""Every lab under solutions/ (found automatically) is a well-formed nbgrader assignment:
the solution passes its tests, the student version fails every one of them, the student
version is exactly what nbgrader generates now, and no solution text or output is committed."""

from __future__ import annotations

import json
import shutil

import pytest

from labs import (
    MARKERS,
    NOTEBOOKS,
    ROOT,
    SOLUTIONS,
    discover_labs,
    nbgrader,
    read_cells,
    solution_path,
    student_path,
)

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


@pytest.mark.slow
@lab_param
def test_student_version_is_what_nbgrader_generates(lab, tmp_path):
    """notebooks/<lab>/ is exactly `nbgrader generate_assignment` of solutions/<lab>/ (no drift)."""
    shutil.copy(ROOT / "nbgrader_config.py", tmp_path)
    shutil.copytree(SOLUTIONS / lab, tmp_path / "solutions" / lab)
    nbgrader("generate_assignment", lab, "--force", cwd=tmp_path)
    generated = tmp_path / "notebooks" / lab
    committed = NOTEBOOKS / lab
    def listing(folder):
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                      if p.is_file() and ".ipynb_checkpoints" not in p.parts)
    assert listing(committed) == listing(generated)
    for name in listing(generated):
        if name.endswith(".ipynb"):
            assert json.loads((committed / name).read_text()) == json.loads((generated / name).read_text()), (
                f"notebooks/{lab}/{name} differs from what nbgrader generates: run `python3 kit.py release`")


def _validate(path, *, invert: bool) -> str:
    args = ["validate", *(["--invert"] if invert else []), str(path)]
    result = nbgrader(*args, cwd=path.parent, check=False)
    return result.stdout + result.stderr


@pytest.mark.slow
@lab_param
def test_solution_passes_nbgrader_validate(lab):
    """The instructor version passes every one of its tests."""
    output = _validate(solution_path(lab), invert=False)
    assert "Success! Your notebook passes all the tests." in output, output[-4000:]


@pytest.mark.slow
@lab_param
def test_every_test_fails_on_the_blank_student_version(lab):
    """Run on the untouched student notebook, no graded test passes (nbgrader validate --invert)."""
    output = _validate(student_path(lab), invert=True)
    assert "Success! The notebook does not pass any tests." in output, output[-4000:]
