"""Grading on a real Dask cluster: a scheduler and two workers, each a process of its own started
here with Dask's command line, each worker with its own temporary folder.

A tiny lab whose tests read a data file of the lab (so the lab's source and data must travel
with each task) is graded locally (the reference) and with ``kit.py grade --scheduler``: the
gradebooks are equal, and both workers graded. Then a worker is killed, with everything it
started, while it grades a submission: that submission is graded by the other worker, the batch
finishes, and the gradebook still equals the reference.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from gradebooks import row_counts, snapshot
from servers import wait_for
from submission_factory import read_release, read_source, submit, with_solution

from benchmarks.distributed import DaskCluster
from instructor.__main__ import main as kit
from instructor.commands.authoring import markdown, notebook, solution
from instructor.commands.authoring import tests as graded_tests
from instructor.environment import tool_env
from instructor.grading import distributed, distributed_tasks
from instructor.grading.confinement import pids_cgroup_parents
from labs import ROOT, nbgrader

LAB = "tiny"
DATA = "1 2 3 4\n"
MEAN = 'def mean_of(path):\n    """The mean of the numbers in the file at path."""\n'
ANSWER = "    values = [float(x) for x in open(path).read().split()]\n    return sum(values) / len(values)"


def tiny_lab(folder: Path) -> Path:
    """A lab folder: a notebook whose tests read ``numbers.txt``, and that data file."""
    folder.mkdir(parents=True)
    nb = notebook([
        markdown("# Tiny lab\nThe mean of the numbers in a data file.", "intro"),
        solution(MEAN + "    ### BEGIN SOLUTION\n" + ANSWER + "\n    ### END SOLUTION", "mean_of"),
        graded_tests('"""mean_of reads the lab\'s data file."""\nassert mean_of("numbers.txt") == 2.5',
              "test_mean_visible", points=2),
        graded_tests('"""mean_of on another file."""\nwith open("more.txt", "w") as f:\n'
              '    f.write("10 20")\n### BEGIN HIDDEN TESTS\nassert mean_of("more.txt") == 15\n'
              "### END HIDDEN TESTS", "test_mean_hidden", points=1),
    ])
    nbformat.write(nb, folder / f"{LAB}.ipynb")
    (folder / "numbers.txt").write_text(DATA)
    return folder


SUBMISSIONS = {  # student -> the solution cell's code (None: left blank)
    "ada": MEAN + ANSWER,
    "bo": MEAN + "    import time\n    time.sleep(4)\n" + ANSWER,
    "cy": MEAN + "    import time\n    time.sleep(4)\n" + ANSWER,
    "di": MEAN + "    return 2.5  # the visible answer, hard-coded",
    "ed": None,
    "fy": MEAN + "    return sum(float(x) for x in open(path).read().split())",
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dask-pristine")
    source = tiny_lab(root / "solutions" / LAB)
    shutil.copy(ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    nbgrader("generate_assignment", LAB, "--force", "--db", f"sqlite:///{root / 'release.db'}",
             cwd=root)
    release, _ = read_release(root, LAB), read_source(root, LAB)
    for student, code in SUBMISSIONS.items():
        submit(root, LAB, student, release if code is None else with_solution(release, code, "mean_of"))
    shutil.rmtree(root / "notebooks")
    (root / "release.db").unlink()
    assert (source / "numbers.txt").exists()
    return root


def course_copy(pristine: Path, target: Path) -> Path:
    return Path(shutil.copytree(pristine, target))


@pytest.fixture(scope="module")
def local(pristine, tmp_path_factory) -> Path:
    """The reference: the same submissions graded on this machine."""
    root = course_copy(pristine, tmp_path_factory.mktemp("dask-local") / "course")
    assert kit(["grade", LAB, "--course-dir", str(root), "--workers", "2", "--quiet"]) == 0
    return root


@pytest.fixture(scope="module")
def cluster():
    with DaskCluster(2) as running:
        yield running


def db(root: Path) -> str:
    return f"sqlite:///{root / 'gradebook.db'}"


def grade_on(cluster: DaskCluster, course: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "instructor", "grade", LAB, "--course-dir",
                             str(course), "--scheduler", cluster.address, "--quiet"],
                            cwd=ROOT, env=tool_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def results(course: Path) -> dict[str, tuple]:
    data = json.loads((course / "grading" / LAB / "results.json").read_text())
    return {s: (r["status"], r["problems"], r["score"], r["max_score"], r["submission_sha256"])
            for s, r in data.items()}


def assert_same_as_local(course: Path, local: Path) -> None:
    assert snapshot(db(course), LAB) == snapshot(db(local), LAB)
    assert row_counts(db(course)) == row_counts(db(local))
    assert results(course) == results(local)
    for student in SUBMISSIONS:
        here = course / "autograded" / student / LAB
        assert sorted(p.name for p in here.iterdir()) == \
            sorted(p.name for p in (local / "autograded" / student / LAB).iterdir())


def graded_by(course: Path, student: str) -> str:
    first = (course / "grading" / LAB / "logs" / f"{student}.log").read_text().splitlines()[0]
    assert first.startswith("graded on Dask worker "), first
    return first.split()[4]


@pytest.mark.slow
def test_reference_scores(local):
    """The local reference grades the lab as its tests say (3 points: 2 visible, 1 hidden)."""
    from gradebooks import scores
    assert scores(db(local), LAB) == {"ada": 3.0, "bo": 3.0, "cy": 3.0, "di": 2.0, "ed": 0.0,
                                      "fy": 0.0}


@pytest.mark.slow
def test_cluster_grades_exactly_as_local_grading(cluster, pristine, local, tmp_path):
    """Every score, comment and result equals the local run's, and both workers graded."""
    course = course_copy(pristine, tmp_path / "course")
    grader = grade_on(cluster, course)
    output = grader.communicate(timeout=900)[0]
    assert grader.returncode == 0, output + cluster.logs()
    assert_same_as_local(course, local)
    assert len({graded_by(course, s) for s in SUBMISSIONS}) == 2


def _in_progress(cluster: DaskCluster, number: int) -> str | None:
    """The student whose submission worker ``number`` is grading now, if any."""
    for folder in cluster.worker_tmp(number).glob(f"kit-grade-*/s-*/submitted/*/{LAB}"):
        return folder.parent.name
    return None


def _emptied(group: Path) -> bool:
    """Kill whatever is still in the pids cgroup ``group`` and try to remove it: True once it is
    gone. A process the kernel has not finished tearing down keeps the group busy a moment."""
    try:
        for pid in (group / "cgroup.procs").read_text().split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        group.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


@pytest.mark.slow
def test_a_worker_killed_mid_task_has_its_submission_graded_elsewhere(cluster, pristine, local,
                                                                      tmp_path):
    """The submission worker 0 was grading when it died is graded by worker 1; the batch ends
    with the reference's gradebook."""
    doomed = cluster.worker_address(0)
    course = course_copy(pristine, tmp_path / "course")
    grader = grade_on(cluster, course)
    student = wait_for(lambda: _in_progress(cluster, 0), timeout=600,
                       what="worker 0 grading a submission")
    victim = cluster.workers[0].pid
    cluster.kill_worker(0)
    for parent in pids_cgroup_parents():  # the dead worker's kernels left their cgroups
        for group in parent.glob(f"kit-{victim}-*"):
            wait_for(lambda group=group: _emptied(group), timeout=60,
                     what=f"{group} emptied and removed")
    output = grader.communicate(timeout=900)[0]
    assert grader.returncode == 0, output + cluster.logs()
    assert_same_as_local(course, local)
    assert graded_by(course, student) == cluster.worker_address(1) != doomed


@pytest.mark.slow
def test_a_worker_with_another_kit_is_refused(cluster):
    from distributed import Client
    with Client(cluster.address, set_as_default=False) as client:
        with pytest.raises(RuntimeError, match="runs another kit"):
            distributed.check_workers(client, cluster.address, kit="0" * 64, sandbox=True,
                                      timeout=60)
        reports = distributed.check_workers(client, cluster.address,
                                            kit=distributed_tasks.kit_fingerprint(), sandbox=True,
                                            timeout=60)
    assert reports and all(r["sandbox"] is None for r in reports.values())


@pytest.mark.parametrize("address", ["127.0.0.1:8786", "http://host:8786", "tcp://host", "tcp://a b:1"])
def test_scheduler_address_is_checked(tmp_path, address, capsys):
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    assert kit(["grade", LAB, "--course-dir", str(tmp_path), "--scheduler", address]) == 2
    assert f"--scheduler: expected a Dask scheduler's address tcp://HOST:PORT (or tls://HOST:PORT), " \
           f"got {address!r}" in capsys.readouterr().err


@pytest.mark.slow
def test_an_unreachable_scheduler_is_named(pristine, tmp_path):
    from servers import free_port
    course = course_copy(pristine, tmp_path / "course")
    from instructor.course import Course
    with pytest.raises(RuntimeError, match="cannot reach a Dask scheduler at tcp://127.0.0.1"):
        distributed.grade_on_cluster(Course.open(course), LAB, f"tcp://127.0.0.1:{free_port()}",
                                     timeout=3, progress=False)


def test_task_files_stay_inside_their_folder(tmp_path):
    with pytest.raises(ValueError, match="files: expected paths inside the folder, got '../x'"):
        distributed_tasks.write_files({"../x": b""}, tmp_path)
    distributed_tasks.write_files({"a/b.txt": b"1"}, tmp_path)
    assert distributed_tasks.read_files(tmp_path) == {"a/b.txt": b"1"}
