"""``python3 kit.py grade LAB``: autograde many submissions in parallel with nbgrader's own machinery.

How one submission is graded (a worker; N of them run at once):

1. A throw-away course in a private temp folder: the course's ``nbgrader_config.py`` (plus the
   grader's settings), a copy of ``solutions/<lab>/``, a copy of ``submitted/<student>/<lab>/``
   (symbolic links left out) and a scratch SQLite gradebook copied from a template that
   ``nbgrader generate_assignment`` seeded once for the whole run.
2. ``nbgrader autograde <lab> --student <student>`` runs there in a child forked by the worker's
   warm nbgrader process (:mod:`instructor.warm`: nbgrader imported once per worker, each child
   in its own session) with a wall-clock limit (the per-submission limit, at which the child's
   process group and its kernels are killed; nbgrader applies the per-cell one). Its kernel is started
   through :mod:`instructor.sandbox` (memory/file/CPU limits, private mount namespace where
   available) and runs :mod:`instructor.kernel_guard` before any student code.
3. The main process (the only writer of the real gradebook) copies the scores, comments and
   penalties of that submission from the scratch gradebook into the real one with nbgrader's
   ``Gradebook`` API and stores the autograded notebook under ``autograded/<student>/<lab>/``.

Every submission ends as a :class:`Outcome` in ``grading/<lab>/results.json``: ``graded`` or
``failed``, with the problems in words (read by ``export`` and ``feedback``).
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from sqlalchemy.exc import SAWarning

from .course import KIT_ROOT, Course, tool_env
from .kernel_guard import STARTUP
from .sandbox import can_isolate
from .warm import WarmNbgrader

KERNEL_NAME = "kit-sandbox"
HIDDEN_NAMES = ("solutions", "submitted", "autograded", "feedback", "downloaded", "release",
                "source", "grading", ".git", "gradebook.db")
SUSPICIOUS = [  # (pattern in a student's cell, what it suggests); flagged for review, not scored
    (r"\bos\s*\.\s*_exit\b|\bsys\s*\.\s*exit\b|\bSystemExit\b", "exits the kernel or the cell"),
    (r"\b(torch|np|numpy|math|lab_utils|builtins|testing)\s*\.\s*\w+\s*=[^=]|setattr\s*\(",
     "replaces a library function"),
    (r"__builtins__|\bbuiltins\b", "touches the builtins"),
    (r"\bsys\s*\.\s*modules\b|\bkernel_guard\b|\bctypes\b|\bgc\s*\.\s*get_", "reaches into the "
     "interpreter (sys.modules, ctypes, gc, the grader's guard)"),
    (r"set_custom_exc|excepthook|\.events\b|showtraceback", "changes how errors are reported"),
    (r"gradebook|sqlite|\bsubmitted\b|\bautograded\b|\bsolutions\b", "refers to grading files"),
    (r"\.backward\s*\(|autograd\s*\.\s*grad\b", "calls autograd"),
]


@dataclass
class Limits:
    """Per-cell and per-submission wall-clock limits (s), kernel memory and file size (MiB)."""

    cell_timeout: int = 120
    submission_timeout: int = 900
    memory_mb: int = 4096
    file_mb: int = 256

    def __post_init__(self):
        for name in ("cell_timeout", "submission_timeout", "memory_mb", "file_mb"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")


@dataclass
class Outcome:
    """What happened to one submission: ``graded`` (nbgrader graded it) or ``failed`` (it could
    not; every score of that submission is then what nbgrader's rules give, 0 when nothing ran)."""

    student: str
    lab: str
    status: str = "graded"
    problems: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    seconds: float = 0.0
    score: float = 0.0
    max_score: float = 0.0
    workdir: str = ""


# ----------------------------------------------------------------------------- the run


def grade(course: Course, lab: str, *, students: list[str] | None = None, workers: int | None = None,
          limits: Limits | None = None, isolate: bool | None = None, progress: bool = True
          ) -> list[Outcome]:
    """Autograde ``students`` (default: every ``submitted/<student>/<lab>/``) with ``workers``
    parallel workers (default: the CPU count) into the course's gradebook."""
    course.check_lab(lab)
    limits = limits or Limits()
    workers = (os.cpu_count() or 1) if workers is None else workers
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected a positive integer, got {workers!r}")
    isolate = can_isolate() if isolate is None else isolate
    if isolate and not can_isolate():
        raise ValueError("isolate: the private mount namespace needs root on Linux; "
                         "run as root or pass --no-isolation")
    available = course.students(lab)
    students = available if students is None else students
    unknown = sorted(set(students) - set(available))
    if unknown:
        raise ValueError(f"students: no folder submitted/<student>/{lab}/ for {unknown} "
                         f"(found {available})")
    run_dir = Path(tempfile.mkdtemp(prefix="kit-grade-", dir="/tmp" if isolate else None))
    outcomes: list[Outcome] = []
    warm: queue.Queue[WarmNbgrader] = queue.Queue()
    started: list[WarmNbgrader] = []
    try:
        for _ in range(min(workers, max(len(students), 1))):
            started.append(WarmNbgrader())
            warm.put(started[-1])
        template = _prepare_template(course, lab, run_dir, started[0])
        hide = _hidden_paths(course)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(grade_one, course, lab, s, template, run_dir, limits, isolate,
                                   hide, warm) for s in students]
            bar = _progress(len(futures), lab, progress)
            for future in as_completed(futures):
                outcome = future.result()
                import_outcome(course, outcome)  # only this thread writes the real gradebook
                shutil.rmtree(outcome.workdir, ignore_errors=True)
                outcomes.append(outcome)
                bar.update(1)
            bar.close()
    finally:
        for worker in started:
            worker.close()
        shutil.rmtree(run_dir, ignore_errors=True)
    outcomes.sort(key=lambda o: o.student)
    _save_results(course, lab, outcomes)
    return outcomes


def _progress(total: int, lab: str, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, desc=f"grading {lab}", unit="submission", disable=not enabled,
                file=sys.stderr)


def _prepare_template(course: Course, lab: str, run_dir: Path, warm: WarmNbgrader) -> Path:
    """A course holding only this lab's source, its release and a seeded scratch gradebook; the
    real gradebook gets the same assignment (nbgrader generate_assignment, as a serial run would,
    in children of a warm nbgrader process)."""
    template = run_dir / "template"
    shutil.copytree(course.solutions / lab, template / "solutions" / lab,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copy(course.root / "nbgrader_config.py", template / "nbgrader_config.py")
    db = f"sqlite:///{template / 'gradebook.db'}"
    for url in (db, course.db_url):
        argv = ["generate_assignment", lab, "--force", "--db", url]
        log = run_dir / "generate_assignment.log"
        status, _ = warm.run(argv, cwd=template, env=tool_env(), log=log)
        if status != 0:
            raise RuntimeError(f"nbgrader {' '.join(argv)} failed (exit {status}):\n"
                               f"{log.read_text(errors='replace')[-3000:]}")
    return template


def _hidden_paths(course: Course) -> list[str]:
    roots = {course.root, KIT_ROOT}
    paths = [str(root / name) for root in roots for name in HIDDEN_NAMES]
    if course.sqlite_path():
        paths.append(str(course.sqlite_path()))
    return sorted(p for p in set(paths) if os.path.lexists(p))


# ----------------------------------------------------------------------------- one submission


def grade_one(course: Course, lab: str, student: str, template: Path, run_dir: Path,
              limits: Limits, isolate: bool, hide: list[str],
              warm: queue.Queue[WarmNbgrader]) -> Outcome:
    """Autograde one submission in its own throw-away course with a free warm nbgrader process
    from ``warm``; never raises."""
    outcome = Outcome(student, lab)
    start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="w-", dir=run_dir))
    outcome.workdir = str(work)
    worker = warm.get()
    try:
        _grade_in(course, lab, student, template, work, limits, isolate, hide, outcome, worker)
    except Exception as error:  # the batch always finishes
        outcome.status = "failed"
        outcome.problems.append(f"the grader itself failed: {type(error).__name__}: {error}")
    finally:
        warm.put(worker)
    outcome.seconds = round(time.monotonic() - start, 2)
    return outcome


def _grade_in(course, lab, student, template, work, limits, isolate, hide, outcome, worker) -> None:
    scratch = work / "course"
    submission = scratch / "submitted" / student / lab
    shutil.copytree(template / "solutions" / lab, scratch / "solutions" / lab)
    shutil.copytree(course.submitted / student / lab, submission, symlinks=True,
                    ignore=_skip_links)
    (work / "db").mkdir()
    shutil.copy(template / "gradebook.db", work / "db" / "gradebook.db")
    config = (template / "nbgrader_config.py").read_text() + _grading_config(work, limits)
    (scratch / "nbgrader_config.py").write_text(config)
    pid_file = work / "kernels.pid"
    _write_kernelspec(work, limits, isolate, hide, pid_file)
    outcome.problems += inspect_submission(course.source_notebooks(lab), submission)
    outcome.flags += scan_for_tampering(submission)

    log_path = course.grading / lab / "logs" / f"{student}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = tool_env(JUPYTER_PATH=str(work / "jupyter"), JUPYTER_RUNTIME_DIR=str(work / "runtime"),
                   JUPYTER_DATA_DIR=str(work / "data"))
    argv = ["autograde", lab, "--student", student, "--force"]
    memory = (limits.memory_mb + 2048) * 1024 * 1024
    try:  # nbgrader in its own session, killed with its whole group at the submission limit
        status, killed = worker.run(argv, cwd=scratch, env=env, log=log_path, memory=memory,
                                    timeout=limits.submission_timeout)
    finally:
        _kill_kernels(pid_file)
    if killed:
        outcome.status = "failed"
        outcome.problems.append(f"stopped after {limits.submission_timeout} s, the "
                                "per-submission time limit; nothing of it was graded")
    text = log_path.read_text(errors="replace")
    if status != 0 and outcome.status != "failed":
        outcome.status = "failed"
        explained = any("is missing" in p or "not a valid notebook" in p for p in outcome.problems)
        if not explained:
            outcome.problems.append(explain_nbgrader_failure(text))
    outcome.problems += describe_execution(scratch / "autograded" / student / lab, limits)


def _skip_links(folder: str, names: list[str]) -> list[str]:
    """Copy only plain files and folders: no symbolic links, sockets or devices."""
    paths = {n: os.path.join(folder, n) for n in names}
    return [n for n, p in paths.items() if os.path.islink(p) or not (os.path.isfile(p) or os.path.isdir(p))]


def _grading_config(work: Path, limits: Limits) -> str:
    pre = ["instructor.guard.InjectGuard", "nbgrader.preprocessors.Execute",
           "instructor.guard.RemoveGuard", "nbgrader.preprocessors.IgnorePattern",
           "nbconvert.preprocessors.ClearMetadataPreprocessor", "nbgrader.preprocessors.LimitOutput",
           "nbgrader.preprocessors.SaveAutoGrades", "nbgrader.preprocessors.AssignLatePenalties",
           "nbgrader.preprocessors.CheckCellMetadata"]
    return f"""

# ---- added by the kit's grader for this one throw-away course
c.CourseDirectory.db_url = {f"sqlite:///{work / 'db' / 'gradebook.db'}"!r}
c.Execute.kernel_name = {KERNEL_NAME!r}
c.ExecutePreprocessor.kernel_name = {KERNEL_NAME!r}
c.Execute.timeout = {limits.cell_timeout}
c.ExecutePreprocessor.timeout = {limits.cell_timeout}
c.Execute.startup_timeout = 120
c.KernelManager.transport = "ipc"  # unix sockets: no TCP port races between parallel workers
c.KernelManager.ip = {str(work / "runtime" / "k")!r}
c.Autograde.autograde_preprocessors = {pre!r}
"""


def _write_kernelspec(work: Path, limits: Limits, isolate: bool, hide: list[str], pid_file: Path):
    settings = {"memory_mb": limits.memory_mb, "file_mb": limits.file_mb,
                "cpu_s": limits.submission_timeout + 60, "pid_file": str(pid_file),
                "hide": hide, "startup": STARTUP, "isolate": isolate,
                "home": str(work / "home"), "bind": [str(work / "runtime")]}
    spec = {"argv": [sys.executable, "-m", "instructor.sandbox", "-f", "{connection_file}"],
            "display_name": "Python 3 (grading sandbox)", "language": "python",
            "env": {"KIT_SANDBOX": json.dumps(settings), "PYTHONPATH": str(KIT_ROOT)}}
    (work / "home").mkdir()
    (work / "runtime").mkdir()
    folder = work / "jupyter" / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1))


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_kernels(pid_file: Path) -> None:
    """Kill every kernel this submission started, with whatever it started itself."""
    if pid_file.exists():
        for line in pid_file.read_text().split():
            _kill_group(int(line))


# ----------------------------------------------------------------------------- diagnosis


def inspect_submission(sources: list[Path], folder: Path) -> list[str]:
    """Problems with the submitted files, in words: missing/renamed notebooks, invalid JSON,
    deleted, duplicated or reordered graded cells (nbgrader restores those from the source)."""
    problems = []
    present = sorted(p.name for p in folder.glob("*.ipynb"))
    for source in sources:
        path = folder / source.name
        if not path.exists():
            others = [n for n in present if n not in {s.name for s in sources}]
            hint = f" (found {', '.join(others)}: nbgrader grades only {source.name})" if others else ""
            problems.append(f"notebook {source.name} is missing{hint}; its tests score 0")
            continue
        try:
            submitted = nbformat.read(path, as_version=4)
        except Exception as error:
            problems.append(f"{source.name} is not a valid notebook ({type(error).__name__}: "
                            f"{str(error)[:120]}); nothing in it could run")
            continue
        wanted = _graded_ids(nbformat.read(source, as_version=4))
        got = _graded_ids(submitted)
        missing = [i for i in wanted if i not in got]
        duplicated = sorted({i for i in got if got.count(i) > 1})
        order = [i for i in dict.fromkeys(got) if i in wanted]
        if missing:
            problems.append(f"{source.name}: graded cells deleted or their metadata changed: "
                            f"{', '.join(missing)} (restored from the source by nbgrader)")
        if duplicated:
            problems.append(f"{source.name}: graded cells duplicated: {', '.join(duplicated)} "
                            "(nbgrader keeps the first copy)")
        if order != [i for i in wanted if i in order]:
            problems.append(f"{source.name}: graded cells reordered ({', '.join(order)}); "
                            "cells run in the submitted order")
    return problems


def _graded_ids(nb) -> list[str]:
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells
            if c.get("metadata", {}).get("nbgrader", {}).get("grade_id")]


def _readable_notebooks(folder: Path):
    """``(path, notebook)`` for each notebook in ``folder`` that nbformat can read."""
    for path in sorted(folder.glob("*.ipynb")):
        try:
            yield path, nbformat.read(path, as_version=4)
        except Exception:
            continue


def scan_for_tampering(folder: Path) -> list[str]:
    """Flags for review: code in the student's (unlocked) cells that looks like tampering."""
    flags = []
    for path, nb in _readable_notebooks(folder):
        for index, cell in enumerate(nb.cells):
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if cell.cell_type != "code" or (meta.get("locked") and not meta.get("solution")):
                continue
            for pattern, meaning in SUSPICIOUS:
                if re.search(pattern, cell.source):
                    where = meta.get("grade_id") or f"cell {index}"
                    flags.append(f"{path.name} [{where}] {meaning}")
    return sorted(set(flags))


def explain_nbgrader_failure(log: str) -> str:
    if "DeadKernelError" in log or "Kernel died" in log or "kernel died" in log.lower():
        return ("the kernel died (os._exit, a crash such as a segfault, or the memory limit); "
                "nbgrader stops such a notebook and all its tests score 0")
    if "NotJSONError" in log or "JSONDecodeError" in log or "not valid JSON" in log:
        return "the notebook is not valid JSON; nbgrader could not read it and all its tests score 0"
    if "KeyError: 'grade_id'" in log:
        return ("nbgrader cannot grade a notebook whose graded cells were copied (its "
                "OverwriteCells fails); all its tests score 0: delete the copies and regrade")
    if "No notebooks found" in log or "No notebooks were matched" in log:
        return "no notebook under its released name; nbgrader graded nothing and all tests score 0"
    if "MemoryError" in log:
        return "the grader ran out of memory on this submission (output flood?); all tests score 0"
    errors = [line for line in log.splitlines() if "Error" in line or "error" in line]
    return "nbgrader could not grade it: " + (errors[-1].strip()[:200] if errors else "unknown error")


def describe_execution(folder: Path, limits: Limits) -> list[str]:
    """Problems seen in the executed (autograded) notebooks: timeouts, memory, output floods."""
    notes = []
    for path, nb in _readable_notebooks(folder):
        for index, cell in enumerate(nb.cells):
            where = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or f"cell {index}"
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    if output.get("ename") == "CellTimeoutError":
                        notes.append(f"{path.name} [{where}] stopped at the per-cell time limit "
                                     f"({limits.cell_timeout} s; an infinite loop?)")
                    elif output.get("ename") == "MemoryError":
                        notes.append(f"{path.name} [{where}] ran out of memory (kernel limit "
                                     f"{limits.memory_mb} MiB)")
                text = output.get("text", "") if output.get("output_type") == "stream" else ""
                if "[output truncated by the grader" in text or "Output truncated" in text:
                    notes.append(f"{path.name} [{where}] printed too much; output truncated")
    return list(dict.fromkeys(notes))


# ----------------------------------------------------------------------------- into the gradebook


def import_outcome(course: Course, outcome: Outcome) -> None:
    """Copy one submission's results from its scratch gradebook into the real one, and its
    autograded folder into ``autograded/<student>/<lab>/``."""
    with warnings.catch_warnings():  # nbgrader's own session warnings on new submissions
        warnings.simplefilter("ignore", SAWarning)
        _import_outcome(course, outcome)


def _import_outcome(course: Course, outcome: Outcome) -> None:
    work = Path(outcome.workdir)
    scratch_db = work / "db" / "gradebook.db"
    student, lab = outcome.student, outcome.lab
    with Gradebook(course.db_url) as gb:
        gb.update_or_create_student(student)
        try:
            with Gradebook(f"sqlite:///{scratch_db}") as sgb:
                done = sgb.find_submission(lab, student)
                timestamp = done.timestamp
                notebooks = [(nb.name, [(g.name, g.auto_score, g.needs_manual_grade)
                                        for g in nb.grades],
                              [(c.name, c.auto_comment) for c in nb.comments],
                              nb.late_submission_penalty) for nb in done.notebooks]
        except (MissingEntry, Exception):
            timestamp, notebooks = None, []  # nbgrader never got to it: nothing scores
            if outcome.status == "graded":
                outcome.status = "failed"
                outcome.problems.append("nbgrader recorded nothing for this submission")
        submission = gb.update_or_create_submission(lab, student, timestamp=timestamp)
        for name, grades, comments, penalty in notebooks:
            for grade_id, auto_score, needs_manual in grades:
                grade = gb.find_grade(grade_id, name, lab, student)
                grade.auto_score = auto_score
                grade.needs_manual_grade = bool(needs_manual or grade.manual_score is not None)
            for comment_id, auto_comment in comments:
                gb.find_comment(comment_id, name, lab, student).auto_comment = auto_comment
            gb.find_submission_notebook(name, lab, student).late_submission_penalty = penalty
        if not notebooks:
            for nb in submission.notebooks:
                for grade in nb.grades:
                    grade.auto_score, grade.needs_manual_grade = None, True
        gb.db.commit()
        submission = gb.find_submission(lab, student)
        outcome.score, outcome.max_score = float(submission.score), float(submission.max_score)
    target = course.autograded / student / lab
    shutil.rmtree(target, ignore_errors=True)
    produced = work / "course" / "autograded" / student / lab
    if produced.is_dir():
        shutil.copytree(produced, target, symlinks=True, ignore=_skip_links)


def _save_results(course: Course, lab: str, outcomes: list[Outcome]) -> Path:
    """Merge these outcomes into ``grading/<lab>/results.json`` (one entry per student)."""
    path = course.grading / lab / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(path.read_text()) if path.exists() else {}
    for outcome in outcomes:
        entry = asdict(outcome)
        entry.pop("workdir")
        results[outcome.student] = entry
    path.write_text(json.dumps(dict(sorted(results.items())), indent=1))
    return path


def load_results(course: Course, lab: str) -> dict[str, dict]:
    path = course.grading / lab / "results.json"
    return json.loads(path.read_text()) if path.exists() else {}
