"""On a Dask worker: :func:`grade_task` grades one submission (see :mod:`.distributed`).

Each worker process keeps one :class:`~.grader.LabGrader` per lab bundle (:class:`WorkerGraders`),
created on the first task of that lab and reused for the next ones, so the sandboxed kernel pool
and the warm nbgrader process are started once per worker, not per task; :class:`GraderPlugin`
closes them when the worker stops.
"""

from __future__ import annotations

import shutil
import socket
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from distributed.diagnostics.plugin import WorkerPlugin

from .distributed_tasks import (
    KitMismatch,
    LabBundle,
    Task,
    TaskResult,
    kit_fingerprint,
    read_files,
    write_files,
)
from .grader import LabGrader

PLUGIN_NAME = "backprop-lab-kit-graders"


@dataclass
class _Entry:
    grader: LabGrader
    folder: Path
    busy: int = 0


class WorkerGraders:
    """The :class:`~.grader.LabGrader` objects of one worker process, one per lab bundle, created on
    first use and reused; a new bundle closes the idle graders of others (a worker grades one lab
    at a time, normally)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.entries: dict[str, _Entry] = {}

    def acquire(self, bundle: LabBundle, slots: int) -> LabGrader:
        with self.lock:
            entry = self.entries.get(bundle.key)
            if entry is None:
                self._close(idle_only=True)
                entry = self._create(bundle, slots)
                self.entries[bundle.key] = entry
            entry.busy += 1
            return entry.grader

    def release(self, bundle: LabBundle) -> None:
        with self.lock:
            entry = self.entries.get(bundle.key)
            if entry is not None:
                entry.busy -= 1

    @staticmethod
    def _create(bundle: LabBundle, slots: int) -> _Entry:
        folder = Path(tempfile.mkdtemp(prefix="kit-lab-"))
        try:
            write_files(bundle.source, folder / bundle.lab)
            (folder / "nbgrader_config.py").write_text(bundle.config)
            grader = LabGrader(bundle.lab, folder / bundle.lab, folder / "nbgrader_config.py",
                               bundle.limits, sandbox=bundle.sandbox, slots=slots,
                               needed=sys.maxsize, duedate=bundle.duedate)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return _Entry(grader, folder)

    def _close(self, *, idle_only: bool) -> None:
        for key, entry in list(self.entries.items()):
            if idle_only and entry.busy:
                continue
            entry.grader.close()
            shutil.rmtree(entry.folder, ignore_errors=True)
            del self.entries[key]

    def close(self) -> None:
        with self.lock:
            self._close(idle_only=False)


GRADERS = WorkerGraders()


class GraderPlugin(WorkerPlugin):
    """Closes the worker's graders (their kernels and warm nbgrader processes) when the worker
    stops."""

    def teardown(self, worker) -> None:
        GRADERS.close()


def worker_report() -> dict:
    """Run on each worker before a batch: its host, kit fingerprint and sandbox."""
    from .sandbox import unavailable_reason
    return {"host": socket.gethostname(), "kit": kit_fingerprint(),
            "sandbox": unavailable_reason()}


def grade_task(task: Task) -> TaskResult:
    """On a worker: grade one submission with this process's :class:`~.grader.LabGrader` for the
    task's lab (created on first use). Never raises for anything the submission does."""
    from distributed import get_worker
    worker = get_worker()
    if task.bundle.kit != kit_fingerprint():
        raise KitMismatch(f"worker {worker.address} ({socket.gethostname()}) runs another kit "
                          "than the instructor's machine; install the same version there")
    slots = getattr(worker, "nthreads", None) or worker.state.nthreads
    grader = GRADERS.acquire(task.bundle, slots)
    try:
        with tempfile.TemporaryDirectory(prefix="kit-task-") as folder:
            submitted = Path(folder) / "submitted"
            write_files(task.files, submitted)
            log = Path(folder) / "nbgrader.log"
            graded = grader.grade(task.student, submitted, log)
            result = TaskResult(graded.outcome.to_json(), log.read_text(errors="replace"), None,
                                worker=f"{worker.address} ({socket.gethostname()})")
            if graded.scratch is not None:
                scratch_db = graded.scratch / "gradebook.db"
                result.gradebook = scratch_db.read_bytes() if scratch_db.exists() else None
                produced = graded.scratch / "autograded" / task.student / task.bundle.lab
                result.autograded = read_files(produced) if produced.is_dir() else {}
                shutil.rmtree(graded.scratch, ignore_errors=True)
            return result
    finally:
        GRADERS.release(task.bundle)
