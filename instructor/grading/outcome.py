"""What grading one submission ended as, and ``grading/<lab>/results.json``, its store.

Everything here is data: a :class:`Status`, and :class:`Finding` codes with parameters. Words for
people are made from them in :mod:`instructor.words`, only where a person reads them (the
summary, the feedback, the command's output).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path


class Status(str, Enum):
    """``graded``: nbgrader graded it. ``failed``: it could not be graded; its scores are what
    nbgrader's rules give (0 where nothing ran). ``unrecorded``: graded, but the gradebook could
    not take the result (a rerun records it)."""

    GRADED = "graded"
    FAILED = "failed"
    UNRECORDED = "unrecorded"


@dataclass(frozen=True)
class Finding:
    """One thing the grader found, as a code and its parameters, e.g.
    ``Finding("cell_timeout", {"cell": "test_fib", "seconds": 120})``."""

    code: str
    params: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"code": self.code, **self.params}

    @classmethod
    def from_json(cls, data: dict) -> Finding:
        params = {k: v for k, v in data.items() if k != "code"}
        return cls(str(data["code"]), params)


@dataclass
class Outcome:
    """One submission: its status; ``problems`` (why it was not graded normally), ``violations``
    (rules of by-hand functions broken: those tests score 0), ``flags`` (for review: scores
    unchanged); the score nbgrader's gradebook holds; how it was isolated; the hash of what was
    submitted (a rerun skips a submission graded and recorded with the same hash); and where the
    seconds went (``timings``: the nbgrader child, recording, and the child's own breakdown)."""

    student: str
    lab: str
    status: Status = Status.GRADED
    problems: list[Finding] = field(default_factory=list)
    violations: list[Finding] = field(default_factory=list)
    flags: list[Finding] = field(default_factory=list)
    score: float = 0.0
    max_score: float = 0.0
    seconds: float = 0.0
    sandbox: str = ""
    submission_sha256: str = ""
    timings: dict = field(default_factory=dict)

    def fail(self, code: str, **params) -> None:
        self.status = Status.FAILED
        self.problems.append(Finding(code, params))

    def note(self, code: str, **params) -> None:
        self.problems.append(Finding(code, params))

    def flag(self, code: str, **params) -> None:
        self.flags.append(Finding(code, params))

    def has_problem(self, *codes: str) -> bool:
        return any(p.code in codes for p in self.problems)

    def to_json(self) -> dict:
        data = asdict(self)
        data["status"] = self.status.value
        for key in ("problems", "violations", "flags"):
            data[key] = [f.to_json() for f in getattr(self, key)]
        return data

    @classmethod
    def from_json(cls, data: dict) -> Outcome:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["status"] = Status(fields.get("status", "graded"))
        for key in ("problems", "violations", "flags"):
            fields[key] = [Finding.from_json(f) for f in fields.get(key, [])]
        return cls(**fields)


def results_path(grading: Path, lab: str) -> Path:
    return Path(grading) / lab / "results.json"


def load_results(grading: Path, lab: str) -> dict[str, Outcome]:
    """student -> :class:`Outcome` from ``grading/<lab>/results.json`` (empty when absent)."""
    path = results_path(grading, lab)
    if not path.exists():
        return {}
    return {student: Outcome.from_json(entry)
            for student, entry in json.loads(path.read_text()).items()}


@contextlib.contextmanager
def lab_lock(grading: Path, lab: str) -> Iterator[None]:
    """An exclusive lock on ``grading/<lab>/`` for the block, held by one process at a time (two
    ``grade`` runs of one course at once); nothing where ``fcntl`` is missing."""
    folder = Path(grading) / lab
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover (Windows: grading needs Linux anyway)
        yield
        return
    with open(folder / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def save_results(grading: Path, lab: str, outcomes: list[Outcome]) -> Path:
    """Merge ``outcomes`` into ``grading/<lab>/results.json`` (one entry per student), written
    atomically so that an interrupted run never leaves half a file, under :func:`lab_lock` so
    that concurrent runs lose none of each other's entries."""
    path = results_path(grading, lab)
    with lab_lock(grading, lab):
        merged = {s: o.to_json() for s, o in load_results(grading, lab).items()}
        merged.update({o.student: o.to_json() for o in outcomes})
        scratch = path.with_suffix(f".json.{os.getpid()}.tmp")
        scratch.write_text(json.dumps(dict(sorted(merged.items())), indent=1))
        os.replace(scratch, path)
    return path
