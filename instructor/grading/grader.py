"""What one machine needs to grade submissions of a lab: :class:`LabGrader`.

It holds the run's workspace (:mod:`.workspace`), a pool of pre-started sandboxed kernels
(:mod:`.kernels`) and one warm nbgrader process (:mod:`instructor.nbgrader_runner`). Its
:meth:`~LabGrader.grade` takes one submitted folder: a scratch course with a copy of it, a
structural check of the files (:mod:`.diagnosis`) and of the rules of by-hand functions
(:mod:`.rules`), then ``nbgrader autograde`` in a forked child of the warm process, under the
per-submission time limit. That child adopts a pre-started kernel, runs the notebook in it, and
recomputes every verdict outside it (:mod:`.preprocessors`). The kernel is killed afterwards.
The result is a :class:`Graded`: the outcome and the scratch course (its gradebook and executed
notebook), for :func:`~.run.record` to take into the course. Nothing a submission does makes
:meth:`~LabGrader.grade` raise.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
import traceback
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import nbformat

from ..nbgrader_runner import WarmNbgrader, shared_runner
from .diagnosis import describe_execution, inspect_submission, nbgrader_failure, read_notebook
from .kernels import KernelPlan, KernelPool
from .limits import Limits
from .outcome import Finding, Outcome, Status
from .rules import review
from .sandbox import require_sandbox
from .workspace import Workspace, lab_imports

MEMORY_FOR_NBGRADER_MB = 2048  # the nbgrader child itself (the replay may import torch)
# what the replay imports when it runs the lab's cells, if the lab does: loaded once, in the
# warm nbgrader process, rather than in each submission's child. torch.distributed.tensor is what
# torch.testing.assert_close imports on its first call (0.8 s here), in tests that use it.
REPLAY_IMPORTS = ("torch", "lab_utils", "torch.distributed.tensor")


def submission_digest(folder: Path) -> str:
    """sha256 over the submitted files (names and contents)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclass
class Graded:
    """One graded submission: its outcome, and its scratch course (holding ``gradebook.db`` and
    ``autograded/<student>/<lab>/``), or None when the grader failed before making one."""

    outcome: Outcome
    scratch: Path | None


class LabGrader:
    """What one machine needs to grade submissions of ``lab`` (from its ``source`` folder and
    the course's ``config``) with ``slots`` submissions at a time, ``needed`` in all."""

    def __init__(self, lab: str, source: Path, config: Path, limits: Limits, *, sandbox: bool,
                 slots: int, needed: int, also_seed: tuple[str, ...] = (),
                 duedate: datetime | None = None):
        self.lab, self.limits = lab, limits
        self.isolation = require_sandbox() if sandbox else "none"
        self.space = self.pool = self.runner = None
        try:
            # the warm nbgrader process and the kernels start at once: they import (nbgrader,
            # torch) while this process prepares the workspace and then seeds the gradebooks
            preload = lab_imports(Path(source))
            packages = {name.split(".")[0] for name in preload}
            replay = tuple(m for m in REPLAY_IMPORTS if m.split(".")[0] in packages)
            shared = shared_runner(replay)  # this process's, if it shares (nbgrader_runner.share)
            self.owns_runner = shared is None
            # one process; each submission is a child of it
            self.runner = shared or WarmNbgrader(also_import=replay)
            self.space = Workspace.open(lab, source, limits)
            plan = KernelPlan(self.space.run_dir, Path(source), limits, sandbox,
                              self.space.matplotlib_cache, preload)
            # one spare more than slots: a quick submission (a blank one) ends before the
            # kernel started in its place is ready; the next kernel is then already there
            self.pool = KernelPool(plan, spare=slots + 1, needed=needed, first=slots)
            self.space.seed(config, self.runner, also_seed, duedate)
        except BaseException:
            self.close()
            raise
        self.numbers = itertools.count(1)  # scratch folders (next() is atomic in CPython)

    def grade(self, student: str, files: Path, log: Path) -> Graded:
        """Grade the submitted folder ``files`` of ``student``; nbgrader's output goes to
        ``log``. Never raises for anything the submission does."""
        number = next(self.numbers)
        outcome = Outcome(student, self.lab, sandbox=self.isolation)
        if self.isolation == "none":
            outcome.flag("no_sandbox")
        start = time.monotonic()
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        scratch = None
        try:
            outcome.submission_sha256 = submission_digest(files)
            scratch = self.space.submission(student, files, number)
            submitted = scratch / "submitted" / student / self.lab
            outcome.problems += inspect_submission(sorted(self.space.source.glob("*.ipynb")),
                                                   submitted)
            self._review(outcome, submitted)
            kernel = self.pool.take()
            try:
                argv = ["autograde", self.lab, "--student", student, "--force", "--db",
                        f"sqlite:///{scratch / 'gradebook.db'}"]
                memory = (self.limits.memory_mb + MEMORY_FOR_NBGRADER_MB) * 1024 * 1024
                child = time.monotonic()
                status, killed = self.runner.run(argv, cwd=scratch, log=log, memory=memory,
                                                 env=self.space.nbgrader_env(scratch, kernel),
                                                 timeout=self.limits.submission_timeout)
                outcome.timings["nbgrader"] = round(time.monotonic() - child, 3)
            finally:
                self.pool.release(kernel)
            self._read(outcome, scratch, status, killed, log)
        except (OSError, RuntimeError, ValueError, nbformat.ValidationError) as error:
            _grader_error(outcome, log, error)
        outcome.seconds = round(time.monotonic() - start, 2)
        return Graded(outcome, scratch)

    def _read(self, outcome: Outcome, scratch: Path, status: int, killed: bool, log: Path) -> None:
        """What the nbgrader child left: its exit status, its report, the executed notebook."""
        if killed:
            outcome.fail("submission_timeout", seconds=self.limits.submission_timeout)
        elif status != 0 and not outcome.has_problem("notebook_missing", "not_a_notebook",
                                                      "cells_duplicated"):
            failure = nbgrader_failure(log.read_text(errors="replace"))
            outcome.fail(failure.code, **failure.params)
        elif status != 0:
            outcome.status = Status.FAILED
        report_path = scratch / "report.json"
        report = json.loads(report_path.read_text()) if report_path.exists() else {}
        outcome.flags += [Finding("verdicts_disagree", d) for d in report.get("disagreements", [])]
        outcome.timings["notebooks"] = report.get("timings", [])
        outcome.problems += describe_execution(
            scratch / "autograded" / outcome.student / self.lab, self.limits)

    def _review(self, outcome: Outcome, submitted: Path) -> None:
        """The rules of by-hand functions, and anything suspicious, read from the submitted
        source in this process (whether or not the notebook then runs)."""
        for source in sorted(self.space.source.glob("*.ipynb")):
            path = submitted / source.name
            nb = read_notebook(path) if path.exists() else None
            if nb is None or isinstance(nb, str):
                continue
            violations, flags = review(nbformat.read(source, as_version=4), nb)
            outcome.violations += [Finding("rule_broken", {("kind" if k == "code" else k): x
                                                             for k, x in asdict(v).items()})
                                   for v in violations]
            outcome.flags += [Finding(f.code, {k: x for k, x in asdict(f).items() if k != "code"})
                              for f in flags]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
        if self.runner is not None and self.owns_runner:
            self.runner.close()
        if self.space is not None:
            self.space.close()


def _grader_error(outcome: Outcome, log: Path, error: BaseException) -> None:
    """The grader itself failed on this submission: say so, keep the traceback in its log."""
    outcome.fail("grader_error", error=f"{type(error).__name__}: {error}"[:300])
    with open(log, "a") as f:
        f.write("\n--- the grader failed on this submission ---\n")
        traceback.print_exception(error, file=f)
