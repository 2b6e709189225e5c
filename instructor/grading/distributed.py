"""Grading on several machines: ``kit.py grade LAB --scheduler tcp://HOST:PORT``.

The kit adds no scheduler of its own: any Dask ``distributed`` cluster will do (``dask scheduler``
and ``dask worker`` started by hand, dask-jobqueue on SLURM, dask-kubernetes, ...), as long as
each worker machine has the kit installed the usual way (the same version as the instructor's,
with the ``large-class`` extra) and bubblewrap.

One task per submission, and each carries all it needs (:mod:`.distributed_tasks`): the
submission's files, the lab's source folder (notebooks and data files), the course's
``nbgrader_config.py``, the limits and the due date. Workers share no file system with the
instructor's machine. On a worker, :func:`~.distributed_worker.grade_task` grades with a
:class:`~.grader.LabGrader` (the sandbox, limits and warm nbgrader of local grading) that the worker
process creates on first use and keeps for the next tasks of the same lab, and returns a
:class:`~.distributed_tasks.TaskResult`: the outcome, nbgrader's log, the scratch gradebook's
bytes and the autograded folder's files. This module is the instructor's side: it checks the
workers, hands out the tasks, rebuilds a scratch course from each result and hands it to
:func:`~.run.record`, as after local grading: it stays the only writer of the course's
gradebook.

A worker that dies mid-task is Dask's to handle: the scheduler gives the task to another worker,
and after ``distributed.scheduler.allowed-failures`` deaths (3 by default) reports it failed; the
submission then ends as a ``grader_error`` and the batch goes on. Only a future's one result is
recorded, however often its task ran.
"""

from __future__ import annotations

import re
import tempfile
import uuid
from pathlib import Path

from ..course import Course, build_course
from ..nbgrader_runner import run_nbgrader
from . import gradebook, gradebook_lock
from .distributed_tasks import LabBundle, Task, TaskResult, kit_fingerprint, read_files, write_files
from .distributed_worker import PLUGIN_NAME, GraderPlugin, grade_task, worker_report
from .grader import Graded
from .limits import Limits
from .outcome import Outcome
from .run import progress_bar, record, to_grade

ADDRESS = re.compile(r"^(tcp|tls)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):\d{1,5}$")
CONNECT_TIMEOUT = 60  # seconds to reach the scheduler, and for a first worker to be there
TASKS_PER_THREAD = 4  # tasks handed to the scheduler ahead, per worker thread


def check_address(address: str) -> str:
    """``address`` when it looks like a Dask scheduler's address, else ValueError."""
    if not isinstance(address, str) or not ADDRESS.match(address):
        raise ValueError("--scheduler: expected a Dask scheduler's address tcp://HOST:PORT "
                         f"(or tls://HOST:PORT), got {address!r}")
    return address


def seed_gradebook(course: Course, lab: str) -> None:
    """Give the course's gradebook the lab's assignment, notebooks and cells (``nbgrader
    generate_assignment`` in a throw-away copy of the course), as local grading does."""
    with tempfile.TemporaryDirectory(prefix="kit-seed-") as folder:
        template = build_course(Path(folder), {lab: course.solutions / lab},
                                config=course.root / "nbgrader_config.py")
        with gradebook_lock.seeding(course.db_url):
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
    """A finished task as a :class:`~.grader.Graded`, its scratch course rebuilt here."""
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
