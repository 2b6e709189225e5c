"""``python3 kit.py collect LAB``: bring submissions into ``submitted/<student>/<lab>/``.

Three sources, each ending in nbgrader's own layout:

- ``--from DIR``: a folder in nbgrader's layout (``DIR/<student>/<lab>/...`` or
  ``DIR/submitted/<student>/<lab>/...``), e.g. copied from another machine;
- ``--zip FILE``: a zip of submissions as a learning-management system exports it, unpacked and
  sorted by nbgrader's ``zip_collect`` with ``--regexp`` naming the student and the file in each
  file name (the default fits ``<student>_<number>_<number>_<file>.ipynb`` as Canvas writes them);
- ``--exchange``: nbgrader's exchange on JupyterHub (``nbgrader collect LAB``).

Without a source it lists what ``submitted/`` holds for the lab.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ..course import Course
from ..nbgrader_runner import run_nbgrader

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]*$")
DEFAULT_REGEXP = r".*/(?P<student_id>[A-Za-z0-9.@+-]+)_(?:late_)?\d+_\d+_(?P<file_id>[^/]+?)(?:-\d+)?\.ipynb$"


def collect(course: Course, lab: str, *, source: Path | None = None, archive: Path | None = None,
            regexp: str = DEFAULT_REGEXP, exchange: bool = False, force: bool = False
            ) -> list[str]:
    """Collect ``lab``'s submissions into the course; returns the students now in submitted/."""
    course.check_lab(lab)
    if sum(x is not None and x is not False for x in (source, archive, exchange or None)) > 1:
        raise ValueError("collect: give at most one of --from, --zip and --exchange")
    if source is not None:
        from_folder(course, lab, Path(source), force=force)
    elif archive is not None:
        from_zip(course, lab, Path(archive), regexp)
    elif exchange:
        run_nbgrader("collect", lab, *(["--update"] if force else []), "--db", course.db_url,
                     cwd=course.root)
    return course.students(lab)


def from_folder(course: Course, lab: str, folder: Path, *, force: bool = False) -> list[str]:
    if not folder.is_dir():
        raise ValueError(f"--from: expected a folder of submissions, got {str(folder)!r}")
    if (folder / "submitted").is_dir():
        folder = folder / "submitted"
    found = sorted(p.parent for p in folder.glob(f"*/{lab}") if p.is_dir())
    if not found:
        raise ValueError(f"--from: expected {folder}/<student>/{lab}/ folders, found none")
    copied = []
    for student_dir in found:
        student = student_dir.name
        if not STUDENT_ID.match(student):
            raise ValueError(f"--from: student folder names must match {STUDENT_ID.pattern}, "
                             f"got {student!r}")
        target = course.submitted / student / lab
        if target.exists():
            if not force:
                continue
            shutil.rmtree(target)
        shutil.copytree(student_dir / lab, target, symlinks=True,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        copied.append(student)
    return copied


def from_zip(course: Course, lab: str, archive: Path, regexp: str) -> None:
    if not archive.is_file() or archive.suffix.lower() != ".zip":
        raise ValueError(f"--zip: expected a .zip file, got {str(archive)!r}")
    try:
        compiled = re.compile(regexp)
    except re.error as error:
        raise ValueError(f"--regexp: not a regular expression ({error}): {regexp!r}") from None
    if not {"student_id", "file_id"} <= set(compiled.groupindex):
        raise ValueError(f"--regexp: expected named groups student_id and file_id, got {regexp!r}")
    inbox = course.root / "downloaded" / lab / "archive"
    inbox.mkdir(parents=True, exist_ok=True)
    shutil.copy(archive, inbox / archive.name)
    run_nbgrader("zip_collect", lab, "--force", f"--FileNameCollectorPlugin.named_regexp={regexp}",
                 "--db", course.db_url, cwd=course.root)
