"""Grading on several machines: ``kit.py grade LAB --scheduler tcp://HOST:PORT``.

The kit adds no scheduler of its own: any Dask ``distributed`` cluster will do (``dask scheduler``
and ``dask worker`` started by hand, dask-jobqueue on SLURM, dask-kubernetes, ...), as long as
each worker machine has the kit installed the usual way (the same version as the instructor's,
with the ``large-class`` extra) and bubblewrap.

One task per submission, and each carries all it needs (:class:`Task`): the submission's files,
the lab's source folder (notebooks and data files), the course's ``nbgrader_config.py``, the
limits and the due date. Workers share no file system with the instructor's machine. On a
worker, :func:`grade_task` grades with a :class:`~.run.LabGrader` (the sandbox, limits and warm
nbgrader of local grading) that the worker process creates on first use and keeps for the next
tasks of the same lab, and returns a :class:`TaskResult`: the outcome, nbgrader's log, the
scratch gradebook's bytes and the autograded folder's files. The instructor's process rebuilds a
scratch course from them and hands it to :func:`~.run.record`, as after local grading: it stays
the only writer of the course's gradebook.

A worker that dies mid-task is Dask's to handle: the scheduler gives the task to another worker,
and after ``distributed.scheduler.allowed-failures`` deaths (3 by default) reports it failed; the
submission then ends as a ``grader_error`` and the batch goes on. Only a future's one result is
recorded, however often its task ran.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import re
import shutil
import socket
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from distributed.diagnostics.plugin import WorkerPlugin

from ..course import Course, build_course
from ..environment import KIT_ROOT
from ..nbgrader_runner import run_nbgrader
from . import gradebook
from .limits import Limits
from .outcome import Outcome
from .run import Graded, LabGrader, progress_bar, record, to_grade

ADDRESS = re.compile(r"^(tcp|tls)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):\d{1,5}$")
PLUGIN_NAME = "backprop-lab-kit-graders"
CONNECT_TIMEOUT = 60  # seconds to reach the scheduler, and for a first worker to be there
TASKS_PER_THREAD = 4  # tasks handed to the scheduler ahead, per worker thread


def check_address(address: str) -> str:
    """``address`` when it looks like a Dask scheduler's address, else ValueError."""
    if not isinstance(address, str) or not ADDRESS.match(address):
        raise ValueError("--scheduler: expected a Dask scheduler's address tcp://HOST:PORT "
                         f"(or tls://HOST:PORT), got {address!r}")
    return address


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


# ----------------------------------------------------------------------------- on the workers


@dataclass
class _Entry:
    grader: LabGrader
    folder: Path
    busy: int = 0


class WorkerGraders:
    """The :class:`~.run.LabGrader` objects of one worker process, one per lab bundle, created on
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
    """On a worker: grade one submission with this process's :class:`~.run.LabGrader` for the
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


# ----------------------------------------------------------------------------- on the instructor's machine


def seed_gradebook(course: Course, lab: str) -> None:
    """Give the course's gradebook the lab's assignment, notebooks and cells (``nbgrader
    generate_assignment`` in a throw-away copy of the course), as local grading does."""
    with tempfile.TemporaryDirectory(prefix="kit-seed-") as folder:
        template = build_course(Path(folder), {lab: course.solutions / lab},
                                config=course.root / "nbgrader_config.py")
        with gradebook.exclusive(course.db_url):
            run_nbgrader("generate_assignment", lab, "--force", "--db", course.db_url,
                         cwd=template.root)


def check_workers(client, address: str, *, kit: str, sandbox: bool, timeout: float
                  ) -> dict[str, dict]:
    """Wait for a first worker, then ask every worker whether it can grade like this machine:
    the same ``kit`` fingerprint, and a working sandbox when ``sandbox``. Returns each worker's
    report; RuntimeError naming the workers that cannot."""
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        raise RuntimeError(f"--scheduler: no Dask worker joined {address} within {timeout:.0f} s "
                           f"(start some with `dask worker {address}`)") from None
    try:
        reports = client.run(worker_report)
    except Exception as error:
        raise RuntimeError(f"--scheduler: the workers of {address} could not run the kit (is it "
                           f"installed on every worker?): {type(error).__name__}: {error}") from None
    problems = []
    for worker, report in sorted(reports.items()):
        if report["kit"] != kit:
            problems.append(f"{worker} ({report['host']}) runs another kit (code of instructor/ or "
                            "lab_utils/, or the Python, nbgrader or torch version differ)")
        if sandbox and report["sandbox"]:
            problems.append(f"{worker} ({report['host']}) cannot sandbox: {report['sandbox']}")
    if problems:
        raise RuntimeError("--scheduler: workers that cannot grade like this machine: "
                           + "; ".join(problems))
    return reports


def _unpack(course: Course, lab: str, student: str, future) -> Graded:
    """A finished task as a :class:`~.run.Graded`, its scratch course rebuilt here."""
    log = course.grading / lab / "logs" / f"{student}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        result: TaskResult = future.result()
    except Exception as error:  # the task died with its workers, a worker's kit differs, ...
        outcome = Outcome(student, lab)
        outcome.fail("grader_error", error=f"{type(error).__name__}: {error}"[:300])
        log.write_text(f"the Dask task grading this submission failed: "
                       f"{type(error).__name__}: {error}\n")
        return Graded(outcome, None)
    log.write_text(f"graded on Dask worker {result.worker}\n{result.log}")
    outcome = Outcome.from_json(result.outcome)
    if result.gradebook is None and not result.autograded:
        return Graded(outcome, None)
    scratch = Path(tempfile.mkdtemp(prefix="kit-remote-"))
    if result.gradebook is not None:
        (scratch / "gradebook.db").write_bytes(result.gradebook)
    write_files(result.autograded, scratch / "autograded" / student / lab)
    return Graded(outcome, scratch)


def grade_on_cluster(course: Course, lab: str, scheduler: str, *,
                     students: list[str] | None = None, limits: Limits | None = None,
                     sandbox: bool = True, force: bool = False, progress: bool = True,
                     timeout: float = CONNECT_TIMEOUT) -> list[Outcome]:
    """Like :func:`~.run.grade`, with every submission graded on the Dask cluster whose
    scheduler is at ``scheduler``; this process records the results."""
    check_address(scheduler)
    course.check_lab(lab)
    limits = limits or Limits()
    names = to_grade(course, lab, students, force)
    if not names:
        return []
    from distributed import Client, as_completed

    try:
        client = Client(scheduler, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise RuntimeError(f"--scheduler: cannot reach a Dask scheduler at {scheduler}: "
                           f"{error}") from None
    outcomes = []
    with client:
        check_workers(client, scheduler, kit=kit_fingerprint(), sandbox=sandbox, timeout=timeout)
        seed_gradebook(course, lab)
        bundle = LabBundle(lab, read_files(course.solutions / lab),
                           (course.root / "nbgrader_config.py").read_text(), limits, sandbox,
                           gradebook.duedate(course.db_url, lab), kit_fingerprint())
        client.register_plugin(GraderPlugin(), name=PLUGIN_NAME)
        run = uuid.uuid4().hex[:8]
        waiting = list(reversed(names))
        students_of = {}

        def submit_next():
            student = waiting.pop()
            task = Task(bundle, student, read_files(course.submitted / student / lab))
            future = client.submit(grade_task, task, key=f"grade-{lab}-{student}-{run}",
                                   pure=False)
            students_of[future.key] = student
            return future

        ahead = max(8, TASKS_PER_THREAD * sum(client.nthreads().values()))
        running = as_completed([submit_next() for _ in range(min(ahead, len(waiting)))],
                               loop=client.loop)
        bar = progress_bar(len(names), lab, progress)
        for future in running:
            student = students_of.pop(future.key)
            outcomes.append(record(course, _unpack(course, lab, student, future)))
            future.release()
            bar.update(1)
            if waiting:
                running.add(submit_next())
        bar.close()
    return sorted(outcomes, key=lambda o: o.student)
