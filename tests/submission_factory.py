"""Generated student submissions for the grading tests: correct, blank and partial ones for any
lab, and the fault and tamper catalogues (each a function of the released notebook)."""

from __future__ import annotations

import atexit
import copy
import hashlib
import json
import shutil
import sqlite3
import tempfile
from pathlib import Path

import nbformat

from instructor.notebooks import answered, grade_id, is_answer_cell
from labs import make_course, nbgrader


def filled(release_nb, source_nb, ids: set[str] | None = None):
    """The released notebook with the answer cells in ``ids`` (default: all) answered."""
    return answered(release_nb, source_nb, ids)


def standard_set(release_nb, source_nb) -> dict[str, object]:
    """correct, blank and partial (the first answer only) submissions."""
    first = next(grade_id(c) for c in source_nb.cells if is_answer_cell(c))
    return {"correct": filled(release_nb, source_nb), "blank": copy.deepcopy(release_nb),
            "partial": filled(release_nb, source_nb, {first})}


def with_solution(release_nb, code: str, cell_id: str):
    nb = copy.deepcopy(release_nb)
    for cell in nb.cells:
        if grade_id(cell) == cell_id:
            cell.source = code
    return nb


# ----------------------------------------------------------------------------- course helpers


_BUILT: dict[tuple[str, str], Path] = {}  # (lab, digest of its source) -> a course built once
_BUILT_HOME = Path(tempfile.mkdtemp(prefix="kit-built-courses-"))
atexit.register(shutil.rmtree, _BUILT_HOME, ignore_errors=True)


def build_course(root: Path, lab: str, source: Path) -> Path:
    """A throw-away course with one lab, its release generated (``nbgrader generate_assignment``
    runs once per lab and source in a test run; later courses are copies of the first)."""
    source = Path(source)
    files = sorted(source.rglob("*")) if source.is_dir() else [source]
    digest = hashlib.sha256()
    for path in (p for p in files if p.is_file()):
        digest.update(str(path.relative_to(source.parent)).encode() + b"\0" + path.read_bytes())
    key = (lab, digest.hexdigest())
    if key not in _BUILT:
        built = _BUILT_HOME / f"{lab}-{len(_BUILT)}"
        make_course(built, {lab: source})
        nbgrader("generate_assignment", lab, "--force", "--db",
                 f"sqlite:///{built / 'release.db'}", cwd=built)
        _BUILT[key] = built
    shutil.copytree(_BUILT[key], root, symlinks=True, dirs_exist_ok=True)
    return Path(root)


def read_release(root: Path, lab: str):
    return nbformat.read(root / "notebooks" / lab / f"{lab}.ipynb", as_version=4)


def read_source(root: Path, lab: str):
    return nbformat.read(root / "solutions" / lab / f"{lab}.ipynb", as_version=4)


def submit(root: Path, lab: str, student: str, content, name: str | None = None) -> Path:
    """Write a submission: a notebook node, raw text (e.g. broken JSON), or None (empty folder)."""
    folder = root / "submitted" / student / lab
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (name or f"{lab}.ipynb")
    if content is None:
        (folder / "README.txt").write_text("no notebook here\n")
    elif isinstance(content, str):
        target.write_text(content)
    else:
        nbformat.write(content, target)
    return folder


def tree_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (relative path -> digest)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def gradebook_rows(db: Path, lab: str) -> dict[tuple[str, str, str], tuple]:
    """(student, notebook, cell) -> (auto_score, manual_score, needs_manual_grade) of ``lab``."""
    query = """
        SELECT student.id, notebook.name, base_cell.name, grade.auto_score, grade.manual_score,
               grade.needs_manual_grade
        FROM grade
        JOIN submitted_notebook ON grade.notebook_id = submitted_notebook.id
        JOIN submitted_assignment ON submitted_notebook.assignment_id = submitted_assignment.id
        JOIN assignment ON submitted_assignment.assignment_id = assignment.id
        JOIN student ON submitted_assignment.student_id = student.id
        JOIN notebook ON submitted_notebook.notebook_id = notebook.id
        JOIN base_cell ON grade.cell_id = base_cell.id
        WHERE assignment.name = ?"""
    with sqlite3.connect(db) as con:
        return {tuple(r[:3]): tuple(r[3:]) for r in con.execute(query, (lab,))}


def scores(db: Path, lab: str) -> dict[str, float]:
    """student -> total auto score of ``lab``."""
    total: dict[str, float] = {}
    for (student, _, _), (auto, manual, _) in gradebook_rows(db, lab).items():
        value = manual if manual is not None else auto
        total[student] = total.get(student, 0.0) + (value or 0.0)
    return total


def copy_submissions(src: Path, dst: Path, lab: str, students: list[str]) -> None:
    for student in students:
        shutil.copytree(src / "submitted" / student / lab, dst / "submitted" / student / lab)


def load_json(path: Path):
    return json.loads(path.read_text())
