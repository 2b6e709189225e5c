"""The fault catalogue on the fixture lab: every faulty submission ends as a clear line in the
summary and the score nbgrader's rules give, the batch finishes, the others are graded normally,
submitted files are never modified, regrading gives the same gradebook, and parallel grading gives
exactly the grades of plain serial ``nbgrader autograde``. Feedback and export run on the result."""

from __future__ import annotations

import copy
import csv
import html
import json
import re
import shutil
from pathlib import Path

import pytest
from submission_factory import (
    build_course,
    gradebook_rows,
    read_release,
    read_source,
    scores,
    submit,
    tree_hashes,
    with_solution,
)

from instructor.__main__ import main as kit
from labs import nbgrader

pytestmark = pytest.mark.slow
FIXTURE = Path(__file__).parent / "fixtures" / "fixture_lab.ipynb"
LAB = "fixture"
CELL_TIMEOUT = 5  # the infinite loop runs until then in each of its two test cells, twice
CORRECT = 'def add(a, b):\n    """Return a + b."""\n    return a + b'


def fault_catalogue(release, source):
    """student -> (submission, file name or None, expected score, words expected in the summary)."""
    correct = with_solution(release, CORRECT, "add")
    deleted = copy.deepcopy(correct)
    deleted.cells = [c for c in deleted.cells if not c.metadata.get("nbgrader", {}).get("grade")
                     or c.metadata["nbgrader"].get("solution")]
    duplicated = copy.deepcopy(correct)
    visible = next(i for i, c in enumerate(duplicated.cells)
                   if c.metadata.get("nbgrader", {}).get("grade_id") == "test_add_visible")
    duplicated.cells.insert(visible, copy.deepcopy(duplicated.cells[visible]))
    reordered = copy.deepcopy(correct)
    moved = reordered.cells.pop(visible)
    reordered.cells.insert(1, moved)  # before the solution cell
    return {
        "correct": (correct, None, 3.0, None),
        "blank": (release, None, 0.0, None),
        "partial": (with_solution(release, "def add(a, b):\n    return int(a) + int(b)", "add"),
                    None, 2.0, None),
        # it waits instead of spinning: the limit is on the clock, and a spinning loop held a
        # core for 20 s of a busy suite (both test cells, in the kit and in plain nbgrader)
        "infinite_loop": (with_solution(release, "import time\n\n\ndef add(a, b):\n"
                                        "    while True:\n        time.sleep(0.05)", "add"),
                          None, 0.0, "per-cell time limit"),
        "os_exit": (with_solution(release, "import os\nos._exit(3)\n" + CORRECT, "add"), None, 0.0,
                    "kernel died"),
        "segfault": (with_solution(release, "import ctypes\nctypes.string_at(0)\n" + CORRECT, "add"),
                     None, 0.0, "kernel died"),
        "memory_bomb": (with_solution(release, "def add(a, b):\n    hoard = []\n    while True:\n"
                                      "        hoard.append(bytearray(256 * 1024 * 1024))", "add"),
                        None, 0.0, "memory"),
        "deleted_cells": (deleted, None, 3.0, "deleted"),
        # nbgrader 0.9.6 itself fails on copied graded cells (KeyError in OverwriteCells): 0
        "duplicated_cells": (duplicated, None, 0.0, "duplicated"),
        "reordered_cells": (reordered, None, 1.0, "reordered"),
        "not_json": ('{"cells": [ this is not JSON', None, 0.0, "not a valid notebook"),
        "renamed": (correct, "fixture (1).ipynb", 0.0, "fixture (1).ipynb"),
        "missing": (None, None, 0.0, "missing"),
        "output_flood": (with_solution(release, "for i in range(40_000):\n    print('flood', i)\n"
                                       + CORRECT, "add"), None, 3.0, "printed too much"),
    }


# Graded by plain nbgrader too. Not the memory bomb (nothing limits plain nbgrader's kernel) nor
# the output flood (the kit's kernel caps output, so the flood ends before the cell time limit).
SERIAL = ["correct", "blank", "partial", "infinite_loop", "os_exit", "deleted_cells",
          "reordered_cells", "not_json", "renamed", "missing"]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = build_course(tmp_path_factory.mktemp("faults"), LAB, FIXTURE)
    catalogue = fault_catalogue(read_release(root, LAB), read_source(root, LAB))
    for student, (content, name, _, _) in catalogue.items():
        submit(root, LAB, student, content, name)
    before = tree_hashes(root / "submitted")
    code = kit(["grade", LAB, "--course-dir", str(root), "--workers", "2", "--cell-timeout",
                str(CELL_TIMEOUT), "--timeout", "120", "--memory-mb", "1536", "--quiet"])
    assert code == 0
    return root, catalogue, before


def test_every_submission_gets_the_expected_score(graded):
    """Each fault scores what nbgrader's rules give (0 where nothing can run); the correct,
    partial and blank submissions in the same batch are graded normally."""
    root, catalogue, _ = graded
    got = scores(root / "gradebook.db", LAB)
    expected = {student: entry[2] for student, entry in catalogue.items()}
    assert got == expected


def test_every_fault_is_a_clear_line_in_the_summary(graded):
    """export writes grades.csv and a summary naming each faulty submission and why."""
    root, catalogue, _ = graded
    assert kit(["export", "--course-dir", str(root)]) == 0
    summary = (root / "grading" / "summary.md").read_text()
    lines = {line.split(":")[0][2:]: line for line in summary.splitlines()
             if line.startswith("- ") and "(flagged)" not in line}
    for student, (_, _, _, words) in catalogue.items():
        if words is None:
            assert student not in lines, f"{student} should be graded normally:\n{summary}"
        else:
            assert student in lines and words in lines[student], (student, summary)
    rows = {r["student_id"]: r for r in csv.DictReader((root / "grades.csv").open())}
    assert sorted(rows) == sorted(catalogue)
    assert {s: float(r["score"]) for s, r in rows.items()} == {
        s: entry[2] for s, entry in catalogue.items()}


def test_submitted_files_are_never_modified(graded):
    root, _, before = graded
    assert tree_hashes(root / "submitted") == before


def test_output_flood_is_capped_in_the_autograded_notebook(graded):
    root, _, _ = graded
    notebook = root / "autograded" / "output_flood" / LAB / f"{LAB}.ipynb"
    assert notebook.stat().st_size < 1_000_000, notebook.stat().st_size


def test_errors_in_the_autograded_notebook_are_plain_tracebacks(graded):
    """A failing cell shows where it failed, frame by frame (cell or file, line, the code) and
    the error last, without IPython's context lines around each frame (they take 20-100 ms to
    format per error, and a blank notebook fails in most of its cells)."""
    root, _, _ = graded
    notebook = json.loads((root / "autograded" / "blank" / LAB / f"{LAB}.ipynb").read_text())
    tracebacks = [re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(output["traceback"]))
                  for cell in notebook["cells"] for output in cell.get("outputs", [])
                  if output["output_type"] == "error"]
    assert tracebacks, "the blank submission's notebook shows no error"
    for traceback in tracebacks:
        assert re.search(r"Cell In\[\d+\], line \d+", traceback), traceback
        assert "NotImplementedError" in traceback.splitlines()[-1], traceback
        assert "---->" not in traceback, traceback


def test_regrading_gives_the_same_gradebook(graded):
    """Grading again (some of the same submissions) leaves the gradebook exactly as it was."""
    root, _, _ = graded
    first = gradebook_rows(root / "gradebook.db", LAB)
    assert kit(["grade", LAB, "--course-dir", str(root), "--workers", "2", "--students",
                "correct,os_exit,not_json", "--cell-timeout",
                str(CELL_TIMEOUT), "--quiet"]) == 0
    assert gradebook_rows(root / "gradebook.db", LAB) == first


def test_parallel_grades_equal_serial_nbgrader_autograde(graded, tmp_path):
    """Plain serial `nbgrader autograde` on copies of the same submissions gives exactly the
    grades the parallel grader stored (every cell's auto score and needs-manual-grade flag)."""
    root, _, _ = graded
    serial = build_course(tmp_path / "serial", LAB, FIXTURE)
    for student in SERIAL:
        shutil.copytree(root / "submitted" / student, serial / "submitted" / student)
    nbgrader("generate_assignment", LAB, "--force", cwd=serial)
    nbgrader("autograde", LAB, "--force", f"--Execute.timeout={CELL_TIMEOUT}", cwd=serial,
             check=False, timeout=900)
    ours = {k: v for k, v in gradebook_rows(root / "gradebook.db", LAB).items() if k[0] in SERIAL}
    theirs = gradebook_rows(serial / "gradebook.db", LAB)
    assert {k: v for k, v in ours.items() if k in theirs} == theirs
    # nbgrader records no submission at all for an empty folder; the kit records one scoring 0
    assert {k[0] for k in ours if k not in theirs} == {"missing"}
    assert all(v[0] is None for k, v in ours.items() if k not in theirs)


def test_feedback_explains_failures_without_hidden_test_code(graded):
    """Each student gets HTML feedback; failures are explained in words; the hidden test's code
    (`add(2.5, 0.5)`) appears in no page; nbgrader's own generate_feedback, configured by the
    course's nbgrader_config.py, writes the same page."""
    root, catalogue, _ = graded
    assert kit(["feedback", LAB, "--course-dir", str(root)]) == 0
    pages = {p.parts[-3]: page_text(p) for p in (root / "feedback").glob(f"*/{LAB}/*.html")}
    assert set(catalogue) <= set(pages)
    for student, page in pages.items():
        assert "add(2.5, 0.5)" not in page, student
        assert "BEGIN HIDDEN TESTS" not in page, student
    assert "a check did not hold" in pages["partial"]
    assert "not written yet" in pages["blank"]
    assert "did not finish within the time limit" in pages["infinite_loop"]
    assert "kernel died" in pages["os_exit"]
    assert "passed" in pages["correct"] and "failed" not in pages["correct"]
    kit_page = (root / "feedback" / "partial" / LAB / f"{LAB}.html").read_bytes()
    nbgrader("generate_feedback", LAB, "--force", cwd=root)  # the course's config: the same page
    assert (root / "feedback" / "partial" / LAB / f"{LAB}.html").read_bytes() == kit_page


def page_text(path: Path) -> str:
    """The text a reader sees in an HTML page (tags from syntax highlighting removed)."""
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text()))


def _processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line holds ``text``."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if text.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_submission_time_limit_kills_nbgrader_and_its_kernel(tmp_path, monkeypatch, request):
    """A submission still running at the per-submission limit is stopped (nbgrader and its
    kernel killed, nothing of theirs left running) and scores 0; the others are graded."""
    import tempfile

    from instructor.course import Course
    from instructor.grading.limits import Limits
    from instructor.grading.run import grade

    # the run's folders and the kernels' paths; a short one: kernels' sockets live there
    scratch = Path(tempfile.mkdtemp(prefix="kit-limit-"))
    request.addfinalizer(lambda: shutil.rmtree(scratch, ignore_errors=True))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    root = build_course(tmp_path / "course", LAB, FIXTURE)
    release = read_release(root, LAB)
    submit(root, LAB, "correct", with_solution(release, CORRECT, "add"))
    submit(root, LAB, "stuck", with_solution(release, "import time\nwhile True:\n    time.sleep(1)",
                                             "add"))
    outcomes = grade(Course.open(root), LAB, workers=2, progress=False,
                     limits=Limits(cell_timeout=300, submission_timeout=15))
    by_student = {o.student: o for o in outcomes}
    assert by_student["stuck"].status.value == "failed"
    log = (root / "grading" / LAB / "logs" / "stuck.log").read_text()[-3000:]
    assert [p.code for p in by_student["stuck"].problems] == ["submission_timeout"], (
        by_student["stuck"].problems, log)
    assert by_student["correct"].status.value == "graded"
    assert scores(root / "gradebook.db", LAB) == {"correct": 3.0, "stuck": 0.0}
    assert _processes_mentioning(str(scratch)) == []


def test_a_gradebook_failure_mid_batch_is_reported_and_a_rerun_resumes(tmp_path, monkeypatch):
    """The course gradebook refuses one submission's result in the middle of a batch: the
    others are recorded, results.json is written and says which one and why, and grading again
    grades only that one and ends with exactly the gradebook of an uninterrupted run."""
    from sqlalchemy.exc import OperationalError

    from instructor.course import Course
    from instructor.grading import gradebook
    from instructor.grading.outcome import Status, load_results
    from instructor.grading.run import grade

    def make(name):
        root = build_course(tmp_path / name, LAB, FIXTURE)
        release = read_release(root, LAB)
        for student, code in [("alice", CORRECT), ("bob", "def add(a, b):\n    return a - b"),
                              ("carol", CORRECT)]:
            submit(root, LAB, student, with_solution(release, code, "add"))
        return Course.open(root)

    clean, broken = make("clean"), make("broken")
    grade(clean, LAB, workers=2, progress=False)
    real_record = gradebook.record

    def refuse_bob(db_url, scratch, lab, student):
        if student == "bob":
            raise OperationalError("UPDATE grade", {}, Exception("database is locked"))
        return real_record(db_url, scratch, lab, student)

    monkeypatch.setattr(gradebook, "record", refuse_bob)
    first = {o.student: o for o in grade(broken, LAB, workers=2, progress=False)}
    assert first["bob"].status is Status.UNRECORDED
    assert [p.code for p in first["bob"].problems] == ["gradebook_error"]
    assert {s: o.status for s, o in load_results(broken.grading, LAB).items()} == {
        "alice": Status.GRADED, "bob": Status.UNRECORDED, "carol": Status.GRADED}
    monkeypatch.setattr(gradebook, "record", real_record)
    again = grade(broken, LAB, workers=2, progress=False)
    assert [o.student for o in again] == ["bob"] and again[0].status is Status.GRADED
    assert gradebook_rows(broken.root / "gradebook.db", LAB) == \
        gradebook_rows(clean.root / "gradebook.db", LAB)
    assert grade(broken, LAB, workers=2, progress=False) == []  # nothing left to grade


def test_a_tmpdir_too_long_for_kernel_sockets_is_refused_before_grading(tmp_path, monkeypatch):
    """Kernels talk through Unix sockets in the run's folder, whose paths have a length limit:
    a TMPDIR too deep for them is named, with what to do, before anything starts."""
    import tempfile

    from instructor.course import Course
    from instructor.grading.run import grade

    root = build_course(tmp_path / "course", LAB, FIXTURE)
    submit(root, LAB, "correct", with_solution(read_release(root, LAB), CORRECT, "add"))
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    with pytest.raises(ValueError, match="TMPDIR: expected a folder with a path short enough"):
        grade(Course.open(root), LAB, workers=1, progress=False)
    assert not list(deep.iterdir())  # nothing left behind
    assert not (root / "grading" / LAB / "results.json").exists()
