"""A PostgreSQL gradebook shared by several graders, against a real server started here.

Submissions of the fixture lab (a function, a visible and a hidden test, a written answer):
correct, partial (passes only the visible test), blank, and a correct one handed in after the
due date, with nbgrader's "zero" late penalty, are graded once into SQLite: the reference. Then two ``kit.py
grade`` processes grade them at once, from one course folder, into one PostgreSQL gradebook:
on different students, then on overlapping students. Each time the gradebook holds exactly the
reference's rows: every score, comment, timestamp and late penalty, no row lost or doubled.
Concurrent recording of the same submissions is also hammered directly. Formgrader and ``kit.py
export`` read the PostgreSQL gradebook.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from gradebooks import record_while_another_grader_seeds, row_counts, snapshot
from servers import PostgresServer, unavailable_reason
from submission_factory import read_release, read_source, standard_set, submit, with_solution

from instructor.__main__ import main as kit
from instructor.environment import tool_env
from instructor.grading import gradebook
from labs import ROOT, make_course, nbgrader

pytestmark = pytest.mark.slow
LAB = "fixture"
FIXTURE = Path(__file__).parent / "fixtures" / "fixture_lab.ipynb"
HALF_RIGHT = "def add(a, b):\n    return int(a) + int(b)  # wrong for fractions: the hidden test"
DUE = "2026-03-02 12:00:00 UTC"
SUBMITTED_AT = {"correct": "2026-03-01 10:00:00.000000 UTC", "partial": "2026-03-02 11:59:00.000000 UTC",
                "blank": "2026-03-01 18:30:00.000000 UTC", "late": "2026-03-03 09:15:00.000000 UTC"}
COURSE_CONFIG = ('\nc.CourseDirectory.course_id = "backprop"  # PostgreSQL needs one\n'
                 'c.LateSubmissionPlugin.penalty_method = "zero"  # late work scores 0\n')


@pytest.fixture(scope="module")
def postgres():
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A course of the fixture lab with its four submissions, nothing graded."""
    root = make_course(tmp_path_factory.mktemp("pg-pristine"), {LAB: FIXTURE})
    with open(root / "nbgrader_config.py", "a") as config:
        config.write(COURSE_CONFIG)
    nbgrader("generate_assignment", LAB, "--force", "--db", f"sqlite:///{root / 'release.db'}",
             cwd=root)
    made = standard_set(read_release(root, LAB), read_source(root, LAB))
    made["partial"] = with_solution(made["correct"], HALF_RIGHT, "add")
    made["late"] = made["correct"]
    for student, nb in made.items():
        folder = submit(root, LAB, student, nb)
        (folder / "timestamp.txt").write_text(SUBMITTED_AT[student])
    shutil.rmtree(root / "notebooks")
    (root / "release.db").unlink()
    return root


def copy_course(pristine: Path, target: Path) -> Path:
    shutil.copytree(pristine, target)
    return target


@pytest.fixture(scope="module")
def reference(pristine, tmp_path_factory) -> tuple[Path, str]:
    """The four submissions graded by one ``kit.py grade`` run into the default SQLite gradebook."""
    root = copy_course(pristine, tmp_path_factory.mktemp("pg-reference") / "course")
    url = f"sqlite:///{root / 'gradebook.db'}"
    set_due_date(root, url)
    assert kit(["grade", LAB, "--course-dir", str(root), "--workers", "2", "--quiet"]) == 0
    return root, url


def test_reference_grades_are_what_nbgrader_documents(reference):
    """The baseline the PostgreSQL runs are compared with is itself right: full marks, some, none,
    and the late copy of the correct notebook loses everything to the "zero" late penalty."""
    _, url = reference
    data = snapshot(url, LAB)
    points = {}
    for (student, _, _), (auto, _, _) in data["grades"].items():
        points[student] = points.get(student, 0.0) + (auto or 0.0)
    assert points["correct"] == points["late"] > points["partial"] > points["blank"] == 0.0
    assert data["penalties"][("late", LAB)] == points["late"]
    on_time = {k[0]: v for k, v in data["penalties"].items() if k[0] != "late"}
    assert sorted(on_time) == ["blank", "correct", "partial"]
    assert all(v in (None, 0.0) for v in on_time.values()), on_time


def set_due_date(course: Path, db_url: str) -> None:
    """As the instructor does before grading (Formgrader's Manage Assignments does the same)."""
    nbgrader("db", "assignment", "add", LAB, f"--duedate={DUE}", "--db", db_url, cwd=course)


def start_grader(course: Path, db_url: str, students: list[str]) -> subprocess.Popen:
    """``kit.py grade`` for ``students`` as a process of its own (as a second TA would run it)."""
    argv = [sys.executable, "-m", "instructor", "grade", LAB, "--course-dir", str(course),
            "--db", db_url, "--students", ",".join(students), "--workers", "1", "--quiet"]
    return subprocess.Popen(argv, cwd=ROOT, env=tool_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def run_two_graders(course: Path, db_url: str, first: list[str], second: list[str]) -> None:
    set_due_date(course, db_url)
    graders = [start_grader(course, db_url, first), start_grader(course, db_url, second)]
    outputs = [g.communicate(timeout=1500)[0] for g in graders]
    assert [g.returncode for g in graders] == [0, 0], "\n\n".join(outputs)


def assert_same_gradebook(db_url: str, reference_url: str) -> None:
    assert snapshot(db_url, LAB) == snapshot(reference_url, LAB)
    assert row_counts(db_url) == row_counts(reference_url)


@pytest.fixture(scope="module")
def disjoint(postgres, pristine, reference, tmp_path_factory) -> tuple[Path, str]:
    course = copy_course(pristine, tmp_path_factory.mktemp("pg-disjoint") / "course")
    url = postgres.create_database("disjoint")
    run_two_graders(course, url, ["correct", "partial"], ["blank", "late"])
    return course, url


def test_two_graders_on_different_students(disjoint, reference):
    """Two grade processes at once, one folder, one gradebook, disjoint students: the gradebook,
    results.json and autograded/ hold all four, exactly as the single SQLite run gave them."""
    course, url = disjoint
    assert_same_gradebook(url, reference[1])
    results = (course / "grading" / LAB / "results.json").read_text()
    assert all(f'"{s}"' in results for s in SUBMITTED_AT)
    assert sorted(p.parent.name for p in course.glob(f"autograded/*/{LAB}")) == sorted(SUBMITTED_AT)


def test_two_graders_on_overlapping_students(postgres, pristine, reference, tmp_path_factory):
    """Both graders start with the same two students (so both create their rows at once), then
    each grades one more: still exactly the reference's rows, none doubled."""
    course = copy_course(pristine, tmp_path_factory.mktemp("pg-overlap") / "course")
    url = postgres.create_database("overlapping")
    run_two_graders(course, url, ["partial", "blank", "correct"], ["partial", "blank", "late"])
    assert_same_gradebook(url, reference[1])


RECORDER = textwrap.dedent("""
    import random, sys, time
    from pathlib import Path
    from instructor.grading import gradebook
    url, scratch, lab, go, seed = sys.argv[1:]
    students = ["correct", "partial", "blank", "late"]
    random.Random(int(seed)).shuffle(students)
    while not Path(go).exists():
        time.sleep(0.01)
    for _ in range(3):
        for student in students:
            gradebook.record(url, Path(scratch), lab, student)
""")


def test_concurrent_records_of_the_same_submissions(postgres, reference, tmp_path):
    """Four processes record the same four submissions three times each, all released at the same
    instant into a freshly seeded gradebook: unique-key clashes and lock waits are retried, and the
    result equals the reference (nothing lost, nothing doubled)."""
    course, reference_url = reference
    url = postgres.create_database("hammered")
    nbgrader("generate_assignment", LAB, "--force", "--db", url, cwd=course)
    set_due_date(course, url)
    go = tmp_path / "go"
    processes = [subprocess.Popen([sys.executable, "-c", RECORDER, url,
                                   str(course / "gradebook.db"), LAB, str(go), str(seed)],
                                  cwd=ROOT, env=tool_env(), stderr=subprocess.PIPE, text=True)
                 for seed in range(4)]
    go.write_text("")
    errors = [p.communicate(timeout=300)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], "\n".join(errors)
    assert_same_gradebook(url, reference_url)


def test_a_submission_is_not_recorded_while_another_grader_seeds_the_gradebook(postgres, tmp_path):
    """PostgreSQL (an advisory lock): see :func:`gradebooks.record_while_another_grader_seeds`."""
    record_while_another_grader_seeds(postgres.create_database("halfway"), tmp_path / "scratch.db")


def test_retrying_gives_up_on_errors_no_retry_can_fix():
    calls = []

    def broken():
        calls.append(1)
        raise ValueError("not a database problem")
    with pytest.raises(ValueError):
        gradebook.retrying(broken)
    assert len(calls) == 1


def test_export_reads_the_postgres_gradebook(disjoint, reference, tmp_path):
    """``kit.py export --db postgresql://...`` writes the grades the SQLite reference exports."""
    course, url = disjoint
    ref_course, _ = reference

    def exported(root: Path, *db: str) -> dict[str, dict]:
        target = tmp_path / f"{root.parent.name}.csv"
        assert kit(["export", "--course-dir", str(root), "--to", str(target), *db]) == 0
        rows = {r["student_id"]: r for r in csv.DictReader(target.open()) if r["assignment"] == LAB}
        return {s: {k: r[k] for k in ("raw_score", "late_submission_penalty", "score", "max_score",
                                      "timestamp")} for s, r in rows.items()}
    from_postgres = exported(course, "--db", url)
    assert from_postgres == exported(ref_course)
    assert float(from_postgres["late"]["score"]) == 0.0 < float(from_postgres["late"]["raw_score"])


def test_formgrader_reads_the_gradebook_named_in_nbgrader_config(disjoint, reference, tmp_path):
    """With ``c.CourseDirectory.db_url`` set in the course's nbgrader_config.py, Formgrader shows
    the PostgreSQL gradebook's scores, and the kit's commands use it without ``--db``."""
    from browser_support import JupyterServer
    course, url = disjoint
    with open(course / "nbgrader_config.py", "a") as config:
        config.write(f"\nc.CourseDirectory.db_url = {url!r}\n")
    from instructor.course import Course
    assert Course.open(course).db_url == url
    (course / "notebooks").mkdir(exist_ok=True)  # what the server opens on
    with JupyterServer(course, tmp_path / "state", instructor=True) as server:
        submissions = server.api("GET", f"formgrader/api/submissions/{LAB}")
    shown = {s["student"]: (s["score"], s["max_score"]) for s in submissions}
    expected = {}
    ref = snapshot(reference[1], LAB)
    for (student, _, _), (auto, _, _) in ref["grades"].items():
        expected[student] = expected.get(student, 0.0) + (auto or 0.0)
    assert {s: v[0] for s, v in shown.items()} == pytest.approx(expected)


def test_a_postgres_gradebook_needs_a_course_id(tmp_path, capsys):
    """nbgrader files assignments under the course id; PostgreSQL refuses an empty one, so every
    command says so before anything runs."""
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    assert kit(["export", "--course-dir", str(tmp_path), "--db", "postgresql+psycopg://u@h/db"]) == 2
    assert "--db: a PostgreSQL gradebook needs a course id" in capsys.readouterr().err
    (tmp_path / "nbgrader_config.py").write_text('c = get_config()\nc.CourseDirectory.course_id = "x"\n')
    from instructor.course import Course
    assert Course.open(tmp_path, "postgresql+psycopg://u@h/db").db_url == "postgresql+psycopg://u@h/db"
