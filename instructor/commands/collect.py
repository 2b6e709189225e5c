"""``python3 kit.py collect LAB``: bring submissions into ``submitted/<student>/<lab>/``.

Three sources, each ending in nbgrader's own layout:

- ``--from DIR``: a folder in nbgrader's layout (``DIR/<student>/<lab>/...`` or
  ``DIR/submitted/<student>/<lab>/...``), e.g. copied from another machine;
- ``--zip FILE``: a zip of submissions as a learning-management system exports it, unpacked and
  sorted by nbgrader's ``zip_collect`` with ``--regexp`` naming the student and the file in each
  file name (the default fits ``<student>_<number>_<number>_<file>.ipynb`` as Canvas writes them);
- ``--exchange``: nbgrader's exchange on JupyterHub (``nbgrader collect LAB``).

Without a source it lists what ``submitted/`` holds for the lab.

After collecting, each ``submitted/<student>/<lab>/`` is checked for the lab's notebook under its
own name (nbgrader grades nothing else): a folder whose only notebook has another name (an LMS
or a student renamed it) gets it renamed, and says so (``grading/<lab>/collect.json`` keeps the
old name for the student's feedback); a folder with several other notebooks or none is reported
with the command that fixes it.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..course import Course
from ..nbgrader_runner import run_nbgrader

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]*$")
DEFAULT_REGEXP = r".*/(?P<student_id>[A-Za-z0-9.@+-]+)_(?:late_)?\d+_\d+_(?P<file_id>[^/]+?)(?:-\d+)?\.ipynb$"


@dataclass(frozen=True)
class NameCheck:
    """What :func:`check_names` found in one student's folder: ``renamed_from`` (a notebook it
    renamed to the lab's name) or ``problem`` (what a person must fix, with the command)."""

    student: str
    renamed_from: str | None = None
    problem: str | None = None


def collect(course: Course, lab: str, *, source: Path | None = None, archive: Path | None = None,
            regexp: str = DEFAULT_REGEXP, exchange: bool = False, force: bool = False
            ) -> list[str]:
    """Collect ``lab``'s submissions into the course; returns the students now in submitted/
    (see :func:`collect_and_check` for what the name check found)."""
    return collect_and_check(course, lab, source=source, archive=archive, regexp=regexp,
                             exchange=exchange, force=force)[0]


def collect_and_check(course: Course, lab: str, *, source: Path | None = None,
                      archive: Path | None = None, regexp: str = DEFAULT_REGEXP,
                      exchange: bool = False, force: bool = False
                      ) -> tuple[list[str], list[NameCheck]]:
    """:func:`collect`, and the name check of every submission of ``lab``."""
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
    return course.students(lab), check_names(course, lab)


def check_names(course: Course, lab: str) -> list[NameCheck]:
    """Give each submission of ``lab`` its notebooks under the lab's names where that is
    unambiguous; report the others. Renames are recorded in ``grading/<lab>/collect.json``."""
    wanted = [p.name for p in course.source_notebooks(lab)]
    record_path = course.grading / lab / "collect.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    found = []
    for student in course.students(lab):
        folder = course.submitted / student / lab
        present = sorted(p.name for p in folder.glob("*.ipynb") if p.is_file())
        missing = [name for name in wanted if name not in present]
        others = [name for name in present if name not in wanted]
        if not missing:
            continue
        if len(wanted) == 1 and len(others) == 1:
            (folder / others[0]).rename(folder / wanted[0])
            digest = hashlib.sha256((folder / wanted[0]).read_bytes()).hexdigest()
            record[student] = {"renamed_from": others[0], "renamed_to": wanted[0],
                               "sha256": digest}
            found.append(NameCheck(student, renamed_from=others[0]))
            continue
        if others:
            fix = " or ".join(f"mv {shlex.quote(str(folder / name))} "
                              f"{shlex.quote(str(folder / missing[0]))}" for name in others[:3])
            problem = (f"no {', '.join(missing)} but {len(others)} other notebooks "
                       f"({', '.join(others)}): rename the one to grade ({fix}) and move the "
                       "others out of the folder, then grade")
        else:
            files = sorted(p.name for p in folder.iterdir())
            problem = (f"no notebook at all (found: {', '.join(files) or 'nothing'}); ask the "
                       f"student for {', '.join(missing)} and put it in {folder}/")
        found.append(NameCheck(student, problem=problem))
    if any(f.renamed_from for f in found):
        record_path.parent.mkdir(parents=True, exist_ok=True)
        record_path.write_text(json.dumps(dict(sorted(record.items())), indent=1))
    return found


def describe_check(check: NameCheck, lab: str) -> str:
    """One line for the ``collect`` command's output."""
    if check.renamed_from:
        return (f"{check.student}: the only notebook was {check.renamed_from!r}; renamed to "
                f"{lab}.ipynb so that it is graded (the student's feedback says so)")
    return f"{check.student}: {check.problem}"


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
