"""Hostile submissions (tests/hostile.py), graded through ``kit.py grade`` in one batch per user:
as root (when the suite runs as root) and as an ordinary user (the suite's own user, or
``nobody`` when the suite runs as root).

Every escape gets nowhere: no canary of the solution, another student or the grader's home shows
up in what any kernel printed, no file of the course changes, the host's loopback sees no
connection, nothing is unpickled from a forged record, and each attempt is shown to have run.
No trick earns a point; the honest submission in the same batch keeps all of its points; plain
serial nbgrader, given a few of the same tricks, is shown to fall for them."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import nbformat
import pytest
from hostile import (
    HOME_CANARY,
    LAB,
    SOLUTION_CANARY,
    SUBMISSION_CANARY,
    escapes,
    gradient_lab,
    tricks,
)
from submission_factory import build_course, read_release, scores, submit, tree_hashes

from instructor.course import Course
from instructor.environment import KIT_ROOT, tool_env
from instructor.grading.outcome import load_results
from instructor.grading.sandbox import unavailable_reason
from labs import nbgrader

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(unavailable_reason() is not None,
                                 reason=f"no sandbox here: {unavailable_reason()}")]
ESCAPES_FOR_EVERY_USER = ["honest", "escape_everything", "escape_bombs"]
FOOLS_NBGRADER = ["redefine_assert_helper", "patch_assert_close", "patch_lab_utils_checker"]
CANARIES = (SOLUTION_CANARY, SUBMISSION_CANARY, HOME_CANARY)


class Listener:
    """A TCP server on the host's loopback that records whoever connects."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, address = self.server.accept()
            except OSError:
                return
            self.connections.append(address)
            conn.close()

    def close(self):
        self.server.close()


def _ordinary_user() -> tuple[int, int] | None:
    """(uid, gid) to grade as an ordinary user: ourselves, or ``nobody`` when we are root."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


def _let_user_run_python(uid: int, gid: int) -> list[tuple[Path, int]]:
    """Make the interpreter reachable for ``uid`` (a Python under /root is not, by default) by
    letting others traverse (never list) the folders above it; returns what to put back."""
    changed = []
    for prefix in {sys.base_prefix, sys.prefix, str(KIT_ROOT)}:
        for folder in [Path(prefix), *Path(prefix).parents]:
            mode = folder.stat().st_mode
            if not mode & 0o001:
                folder.chmod(mode | 0o001)
                changed.append((folder, mode))
    return changed


def _grade_batch(base: Path, user: str):
    source = base / "tamper_source.ipynb"
    nbformat.write(gradient_lab(), source)
    root = build_course(base / "course", LAB, source)
    home = base / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text(f"-----BEGIN KEY----- {HOME_CANARY}\n")
    scratch = base / "tmp"  # the grader's temporary folder: its run folders are made here
    scratch.mkdir()
    listener = Listener()
    catalogue = escapes(read_release(root, LAB), course=root, home=home, scratch=scratch,
                        port=listener.port)
    if user == "root":
        catalogue.update({name: (nb, []) for name, nb in tricks(read_release(root, LAB)).items()})
    else:
        catalogue = {k: v for k, v in catalogue.items() if k in ESCAPES_FOR_EVERY_USER}
    for student, (nb, _) in catalogue.items():
        submit(root, LAB, student, nb)
    before = {name: tree_hashes(root / name) for name in ("submitted", "solutions")}
    command = [sys.executable, "-m", "instructor", "grade", LAB, "--course-dir", str(root),
               "--workers", "2", "--cell-timeout", "60", "--timeout", "300", "--memory-mb",
               "2048", "--quiet"]
    env = tool_env(HOME=str(home), TMPDIR=str(scratch))
    restore = []
    if user == "root":
        run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
    else:
        uid, gid = _ordinary_user()
        if uid != os.getuid():
            restore = _let_user_run_python(uid, gid)
            for path in [base, *base.rglob("*")]:
                os.chown(path, uid, gid)
        try:
            run = subprocess.run(command, env=env, user=uid, group=gid, extra_groups=[],
                                 capture_output=True, text=True, timeout=1200)
        finally:
            for folder, mode in reversed(restore):
                folder.chmod(mode)
    listener.close()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return root, catalogue, before, listener


@pytest.fixture(scope="module", params=["root", "user"])
def graded(request):
    if request.param == "root" and os.geteuid() != 0:
        pytest.skip("grading as root needs the suite to run as root")
    base = Path(tempfile.mkdtemp(prefix=f"kit-hostile-{request.param}-"))  # not under a 0700 folder
    try:
        yield (request.param, *_grade_batch(base, request.param))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _printed(root: Path, student: str) -> str:
    path = root / "autograded" / student / LAB / f"{LAB}.ipynb"
    if not path.exists():
        return ""
    nb = nbformat.read(path, as_version=4)
    return "".join(o.get("text", "") + json.dumps(o.get("data", {})) + o.get("evalue", "")
                   for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_only_the_honest_submission_scores(graded):
    _, root, catalogue, _, _ = graded
    assert scores(root / "gradebook.db", LAB) == {s: 4.0 if s == "honest" else 0.0
                                                   for s in catalogue}


def test_every_escape_ran_and_got_nowhere(graded):
    """Each attempt printed TRIED; none printed LEAK; no canary is in anything a kernel printed."""
    _, root, catalogue, _, _ = graded
    for student, (_, attempts) in catalogue.items():
        printed = _printed(root, student)
        for attempt in attempts:
            assert f"TRIED {attempt}" in printed, (student, attempt, printed[-2000:])
        assert "LEAK" not in printed, (student, printed[-2000:])
        assert not [c for c in CANARIES if c in printed], (student, printed[-2000:])


def test_nothing_outside_the_working_copy_changed(graded):
    """Submitted folders and the solutions are byte for byte what they were; results.json is
    the grader's; nothing connected to the host's loopback; no record was ever unpickled or run."""
    _, root, _, before, listener = graded
    assert {name: tree_hashes(root / name) for name in before} == before
    results = load_results(Course.open(root).grading, LAB)
    assert results["honest"].score == 4.0 and not results["honest"].flags
    assert listener.connections == []
    assert not Path("/tmp/kit-pwned-by-record").exists()


def test_the_grader_leaves_nothing_behind_in_its_temporary_folder(graded):
    """Not even the read-only folders a submission made in its kernel's working folder."""
    _, root, _, _, _ = graded
    assert sorted(p.name for p in (root.parent / "tmp").iterdir()) == []


def test_killing_everything_it_sees_kills_only_its_own_kernel(graded):
    user, root, catalogue, _, _ = graded
    if "kill_everything" not in catalogue:
        pytest.skip("in the root batch only")
    results = load_results(Course.open(root).grading, LAB)
    assert any(p.code == "kernel_died" for p in results["kill_everything"].problems)
    assert set(results) == set(catalogue)


def test_tricks_are_flagged_for_review(graded):
    user, root, catalogue, _, _ = graded
    if user != "root":
        pytest.skip("the tricks are graded in the root batch")
    results = load_results(Course.open(root).grading, LAB)
    for student in ["patch_allclose", "catch_every_exception", "remove_guard_then_patch",
                    "disable_the_recorder", "os_exit"]:
        assert results[student].flags, student
    assert {v.params["function"] for v in results["autograd_in_a_thread"].violations} == \
        {"tanh_backward"}


def test_plain_nbgrader_falls_for_the_monkeypatches(graded, tmp_path):
    """Without the kit, serial nbgrader gives these tricks points: the catalogue bites."""
    user, root, _, _, _ = graded
    if user != "root":
        pytest.skip("once is enough")
    source = root / "solutions" / LAB / f"{LAB}.ipynb"
    serial = build_course(tmp_path / "serial", LAB, source)
    nbgrader("generate_assignment", LAB, "--force", cwd=serial)
    for student in FOOLS_NBGRADER:
        submit(serial, LAB, student, nbformat.read(
            root / "submitted" / student / LAB / f"{LAB}.ipynb", as_version=4))
    nbgrader("autograde", LAB, "--force", cwd=serial, timeout=900)
    fooled = scores(serial / "gradebook.db", LAB)
    assert all(fooled[s] > 0 for s in FOOLS_NBGRADER), fooled
