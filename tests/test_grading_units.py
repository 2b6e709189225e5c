"""Fast checks of the grader's pieces: argument validation, submission diagnosis, tamper flags,
and the feedback cleaner (no kernels started)."""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
import pytest

from instructor.course import Course, absolute_db_url
from instructor.feedback import HIDDEN_NOTE, clean_notebook, explain_error
from instructor.grade import Limits, inspect_submission, scan_for_tampering
from instructor.guard import GUARD_LINE, InjectGuard, RemoveGuard

FIXTURE = Path(__file__).parent / "fixtures" / "fixture_lab.ipynb"


@pytest.mark.parametrize("field, value", [("cell_timeout", 0), ("memory_mb", -1),
                                          ("submission_timeout", 1.5), ("file_mb", True)])
def test_limits_reject_bad_values(field, value):
    with pytest.raises(ValueError, match=f"{field}: expected a positive integer, got {value!r}"):
        Limits(**{field: value})


def test_course_open_validates_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="--course-dir: expected an existing folder"):
        Course.open(tmp_path / "nope")
    with pytest.raises(ValueError, match="no nbgrader_config.py"):
        Course.open(tmp_path)
    (tmp_path / "nbgrader_config.py").write_text("")
    with pytest.raises(ValueError, match="--db: expected a database URL"):
        Course.open(tmp_path, "gradebook.db")
    course = Course.open(tmp_path)
    assert course.db_url == f"sqlite:///{tmp_path.resolve() / 'gradebook.db'}"
    with pytest.raises(ValueError, match="lab: expected one of \\[\\]"):
        course.check_lab("lab1")
    assert absolute_db_url("postgresql://u@h/db", tmp_path) == "postgresql://u@h/db"


def _write(folder: Path, nb, name="fixture_lab.ipynb"):
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / name)


def test_inspect_submission_names_each_structural_fault(tmp_path):
    source = nbformat.read(FIXTURE, as_version=4)
    ok = tmp_path / "ok"
    _write(ok, source)
    assert inspect_submission([FIXTURE], ok) == []
    deleted = copy.deepcopy(source)
    deleted.cells = [c for c in deleted.cells if c.metadata.get("nbgrader", {}).get("grade_id")
                     != "test_add_hidden"]
    _write(tmp_path / "deleted", deleted)
    assert "deleted" in inspect_submission([FIXTURE], tmp_path / "deleted")[0]
    reordered = copy.deepcopy(source)
    reordered.cells.reverse()
    _write(tmp_path / "reordered", reordered)
    assert "reordered" in inspect_submission([FIXTURE], tmp_path / "reordered")[0]
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "fixture_lab.ipynb").write_text("{nope")
    assert "not a valid notebook" in inspect_submission([FIXTURE], tmp_path / "broken")[0]
    _write(tmp_path / "renamed", source, "copy.ipynb")
    assert "found copy.ipynb" in inspect_submission([FIXTURE], tmp_path / "renamed")[0]


def test_scan_flags_tricks_in_student_cells_only(tmp_path):
    nb = nbformat.read(FIXTURE, as_version=4)
    _write(tmp_path / "clean", nb)
    assert scan_for_tampering(tmp_path / "clean") == []
    nb.cells[1].source = "import torch\ntorch.allclose = lambda *a, **k: True\nimport os\nos._exit(0)"
    _write(tmp_path / "dirty", nb)
    flags = scan_for_tampering(tmp_path / "dirty")
    assert any("replaces a library function" in f for f in flags)
    assert any("exits the kernel" in f for f in flags)


def test_guard_line_is_added_to_locked_cells_and_removed_again():
    nb = nbformat.read(FIXTURE, as_version=4)
    original = [c.source for c in nb.cells]
    injected, _ = InjectGuard().preprocess(copy.deepcopy(nb), {})
    locked = [c.metadata.get("nbgrader", {}).get("grade_id") for c in injected.cells
              if c.source.startswith(GUARD_LINE)]
    assert locked == ["test_add_visible", "test_add_hidden"]
    restored, _ = RemoveGuard().preprocess(injected, {})
    assert [c.source for c in restored.cells] == original


def test_clean_notebook_hides_hidden_tests_and_explains_errors():
    nb = nbformat.read(FIXTURE, as_version=4)
    hidden = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_add_hidden")
    hidden.execution_count = 4
    hidden.outputs = [nbformat.v4.new_output("stream", name="stderr", text="assert add(2.5, 0.5) == 3.0\n"),
                      nbformat.v4.new_output("error", ename="AssertionError", evalue="",
                                             traceback=["----> 4 assert add(2.5, 0.5) == 3.0"])]
    cleaned = clean_notebook(nb, {"problems": ["a note"]})
    text = nbformat.writes(cleaned)
    assert "add(2.5, 0.5)" not in text and HIDDEN_NOTE.strip() in text
    summary = cleaned.cells[0].source
    assert "**test_add_hidden** (1 point): failed: a check did not hold" in summary
    assert "**test_add_visible** (2 points): not run" in summary and "a note" in summary
    assert explain_error("CellTimeoutError", "").startswith("it did not finish")
