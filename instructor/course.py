"""The course on disk: where nbgrader's folders are, which labs exist, and the one builder of a
throw-away course (:func:`build_course`) that the grader, the commands, the tests and the
benchmarks share.

The course root is the folder holding ``nbgrader_config.py`` (by default the kit's repository
root). Every instructor command takes ``--course-dir`` and ``--db`` so that the same code runs on
the real course and on the throw-away courses of the test suite.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .environment import KIT_ROOT

IGNORED = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc")


def find_labs(solutions: Path) -> list[str]:
    """The labs under ``solutions``: every folder ``<lab>/`` holding ``<lab>.ipynb``, sorted.
    Tests, benchmarks and the grader all discover labs by this one rule."""
    return sorted(p.parent.name for p in Path(solutions).glob("*/*.ipynb")
                  if p.stem == p.parent.name and ".ipynb_checkpoints" not in p.parts)


@dataclass(frozen=True)
class Course:
    """An nbgrader course folder: ``root/{solutions,notebooks,submitted,autograded,feedback}``."""

    root: Path
    db_url: str

    @classmethod
    def open(cls, course_dir: str | os.PathLike | None = None, db: str | None = None) -> Course:
        root = Path(course_dir or KIT_ROOT).resolve()
        if not root.is_dir():
            raise ValueError(f"--course-dir: expected an existing folder, got {str(root)!r}")
        if not (root / "nbgrader_config.py").is_file():
            raise ValueError(f"--course-dir: expected a course folder holding nbgrader_config.py, "
                             f"got {str(root)!r} (no nbgrader_config.py there)")
        if db is not None and "://" not in db:
            raise ValueError(f"--db: expected a database URL such as sqlite:///gradebook.db or "
                             f"postgresql://user@host/course, got {db!r}")
        url = absolute_db_url(db or configured_db_url(root) or "sqlite:///gradebook.db", root)
        if url.startswith("postgresql") and not course_setting(root, "course_id"):
            raise ValueError("--db: a PostgreSQL gradebook needs a course id: set "
                             "c.CourseDirectory.course_id = \"...\" in the course's "
                             "nbgrader_config.py, got none (nbgrader files every assignment "
                             "under the course id; PostgreSQL, unlike SQLite, refuses an "
                             "assignment of a course it does not know)")
        return cls(root, url)

    solutions = property(lambda self: self.root / "solutions")
    notebooks = property(lambda self: self.root / "notebooks")
    submitted = property(lambda self: self.root / "submitted")
    autograded = property(lambda self: self.root / "autograded")
    feedback = property(lambda self: self.root / "feedback")
    grading = property(lambda self: self.root / "grading")  # the grader's logs and summaries

    def labs(self) -> list[str]:
        """Labs of this course (see :func:`find_labs`)."""
        return find_labs(self.solutions)

    def check_lab(self, lab: str) -> str:
        labs = self.labs()
        if lab not in labs:
            raise ValueError(f"lab: expected one of {labs} (folders of {self.solutions}), got {lab!r}")
        return lab

    def source_notebooks(self, lab: str) -> list[Path]:
        return sorted((self.solutions / lab).glob("*.ipynb"))

    def students(self, lab: str) -> list[str]:
        """Students with a folder ``submitted/<student>/<lab>/``."""
        return sorted(p.parent.name for p in self.submitted.glob(f"*/{lab}") if p.is_dir())

    def sqlite_path(self) -> Path | None:
        """The gradebook file when the gradebook is SQLite, else None."""
        prefix = "sqlite:///"
        return Path(self.db_url[len(prefix):]) if self.db_url.startswith(prefix) else None


def course_setting(root: Path, name: str) -> str | None:
    """``c.CourseDirectory.<name>`` as the course's ``nbgrader_config.py`` sets it (a non-empty
    string), or None where it sets none."""
    from traitlets.config.loader import PyFileConfigLoader
    try:
        config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    except Exception:  # a broken config fails again, with nbgrader's own message, when used
        return None
    value = config.CourseDirectory.get(name) if "CourseDirectory" in config else None
    return value if isinstance(value, str) and value else None


def configured_db_url(root: Path) -> str | None:
    """The gradebook URL the course's ``nbgrader_config.py`` sets (``c.CourseDirectory.db_url``,
    which Formgrader and nbgrader's own commands use), or None where it sets none."""
    return course_setting(root, "db_url")


def absolute_db_url(url: str, root: Path) -> str:
    """``sqlite:///relative.db`` resolved against the course root; other URLs unchanged."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str((root / url[len(prefix):]).resolve())
    return url


def build_course(root: Path, labs: Mapping[str, Path], *, config: Path | None = None,
                 extra_config: str = "") -> Course:
    """A throw-away course in ``root`` (created): ``nbgrader_config.py`` (the kit's, or
    ``config``, plus ``extra_config`` appended) and, for each ``lab``, its source as
    ``solutions/<lab>/``: a lab folder is copied whole (data files too), a lone notebook becomes
    ``solutions/<lab>/<lab>.ipynb``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    text = Path(config or KIT_ROOT / "nbgrader_config.py").read_text()
    (root / "nbgrader_config.py").write_text(text + extra_config)
    for lab, source in labs.items():
        source = Path(source)
        target = root / "solutions" / lab
        if source.is_dir():
            shutil.copytree(source, target, ignore=IGNORED, dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target / f"{lab}.ipynb")
    return Course.open(root)
