"""What crosses between the instructor's machine and the Dask workers (:mod:`.distributed`).

A :class:`Task` is one submission with its :class:`LabBundle` (the lab's source folder, the
course's ``nbgrader_config.py``, the limits, the due date and the instructor's
:func:`kit_fingerprint`); a :class:`TaskResult` is what the worker sends back. Folders travel as
``{relative path: bytes}`` (:func:`read_files`, :func:`write_files`): workers share no file
system with the instructor's machine.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..environment import KIT_ROOT
from .limits import Limits


def read_files(folder: Path) -> dict[str, bytes]:
    """relative path -> bytes of every plain file under ``folder`` (symbolic links are skipped,
    as local grading skips them)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(Path(folder).rglob("*")) if p.is_file() and not p.is_symlink()}


def write_files(files: dict[str, bytes], folder: Path) -> None:
    """Write :func:`read_files`' result under ``folder``; refuses paths that leave it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise ValueError(f"files: expected paths inside the folder, got {name!r}")
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


@functools.lru_cache(maxsize=1)
def kit_fingerprint() -> str:
    """What decides a grade on this machine, hashed: the code of ``instructor/`` and
    ``lab_utils/`` and the versions of Python, nbgrader and torch. Every worker must match the
    instructor's machine."""
    digest = hashlib.sha256()
    for package in ("instructor", "lab_utils"):
        folder = KIT_ROOT / package
        for path in sorted(folder.rglob("*.py")):
            digest.update(path.relative_to(KIT_ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    versions = [f"python {sys.version_info[0]}.{sys.version_info[1]}"]
    for name in ("nbgrader", "torch"):
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} missing")
    digest.update("\n".join(versions).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class LabBundle:
    """What every task of one run needs besides its submission."""

    lab: str
    source: dict[str, bytes]  # the lab's source folder: notebooks and data files
    config: str               # the course's nbgrader_config.py
    limits: Limits
    sandbox: bool
    duedate: datetime | None  # naive UTC, from the course's gradebook
    kit: str                  # kit_fingerprint() of the instructor's machine

    @functools.cached_property
    def key(self) -> str:
        """Equal bundles grade alike: a worker keeps one LabGrader per key."""
        digest = hashlib.sha256()
        for name, data in sorted(self.source.items()):
            digest.update(name.encode() + b"\0" + data)
        digest.update(repr((self.lab, self.config, self.limits, self.sandbox, self.duedate,
                            self.kit)).encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class Task:
    """One submission to grade: the student's submitted folder as files."""

    bundle: LabBundle
    student: str
    files: dict[str, bytes]


@dataclass
class TaskResult:
    """What a worker sends back: the :class:`~.outcome.Outcome` (as JSON), nbgrader's log, the
    scratch gradebook (None when the grader failed before making one) and the files of
    ``autograded/<student>/<lab>/``."""

    outcome: dict
    log: str
    gradebook: bytes | None
    autograded: dict[str, bytes] = field(default_factory=dict)
    worker: str = ""


class KitMismatch(RuntimeError):
    """The worker's kit is not the instructor's: it would not grade alike."""
