"""The kit's one way to run nbgrader (``instructor/nbgrader_runner.py``): nbgrader's own command
line in a process of its own (``run_nbgrader``) or in a child forked from a warm process
(``WarmNbgrader``). Either creates a gradebook as nbgrader does, stamped with the same database
migration that ``alembic heads`` names, without starting ``alembic``. ``run_nbgrader`` through a
shared warm process (as in this suite) answers as a process of its own does."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from instructor.commands.authoring import markdown, notebook
from instructor.course import build_course
from instructor.environment import tool_env
from instructor.nbgrader_runner import WarmNbgrader, run_nbgrader, share, shared_runner

pytestmark = pytest.mark.slow
LAB = "stamped"


@pytest.fixture(scope="module")
def alembic_heads() -> str:
    """What nbgrader itself stamps a new gradebook with: the first word ``alembic heads``
    prints, asked in a subprocess as nbgrader does."""
    asked = subprocess.run([sys.executable, "-c",
                            "import nbgrader.api; print(nbgrader.api.get_alembic_version())"],
                           env=tool_env(), capture_output=True, text=True, check=True)
    head = asked.stdout.strip()
    assert len(head) >= 8, asked
    return head


def _course_and_env(tmp_path: Path) -> tuple[Path, dict[str, str], Path]:
    """A course with a one-cell lab, an environment whose ``alembic`` only leaves a mark and
    fails, and that mark's path."""
    source = tmp_path / "source.ipynb"
    nbformat.write(notebook([markdown("# A lab with nothing to grade")]), source)
    root = build_course(tmp_path / "course", {LAB: source}).root
    fake = tmp_path / "bin"
    fake.mkdir()
    mark = tmp_path / "alembic-ran"
    (fake / "alembic").write_text(f"#!/bin/sh\ntouch '{mark}'\nexit 3\n")
    (fake / "alembic").chmod(0o755)
    env = tool_env()
    env["PATH"] = f"{fake}:{env['PATH']}"
    return root, env, mark


def _stamp(db: Path) -> list[tuple[str]]:
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT version_num FROM alembic_version").fetchall()


@pytest.fixture
def own_process():
    """``run_nbgrader`` as ``kit.py`` runs it: each command in a process of its own (this
    suite otherwise shares one warm process: conftest's ``warm_nbgrader``)."""
    share(False)
    yield
    share(True)


def test_run_nbgrader_stamps_a_new_gradebook_like_nbgrader_without_alembic(tmp_path,
                                                                             alembic_heads,
                                                                             own_process):
    root, env, mark = _course_and_env(tmp_path)
    db = tmp_path / "new.db"
    run_nbgrader("generate_assignment", LAB, "--db", f"sqlite:///{db}", cwd=root, env=env)
    assert _stamp(db) == [(alembic_heads,)]
    assert not mark.exists(), "alembic was started"


def test_a_warm_child_stamps_a_new_gradebook_like_nbgrader_without_alembic(tmp_path,
                                                                           alembic_heads):
    root, env, mark = _course_and_env(tmp_path)
    warm = WarmNbgrader()
    try:
        for number in (1, 2):  # the first child and a later one
            db = tmp_path / f"new-{number}.db"
            status, killed = warm.run(["generate_assignment", LAB, "--force", "--db",
                                       f"sqlite:///{db}"], cwd=root, env=env,
                                      log=tmp_path / f"log-{number}")
            assert (status, killed) == (0, False), (tmp_path / f"log-{number}").read_text()
            assert _stamp(db) == [(alembic_heads,)]
    finally:
        warm.close()
    assert not mark.exists(), "alembic was started"


@pytest.mark.parametrize("shared", [False, True], ids=["own process", "shared warm process"])
def test_run_nbgrader_answers_the_same_in_its_own_process_and_in_a_shared_one(tmp_path, shared):
    """Exit status and output as ``subprocess.run`` gives them; a failing command raises
    ``RuntimeError`` with nbgrader's own message, unless ``check=False``."""
    root, env, _ = _course_and_env(tmp_path)
    share(shared)
    assert (shared_runner() is not None) == shared
    try:
        done = run_nbgrader("generate_assignment", LAB, "--force", cwd=root, env=env)
        assert done.returncode == 0 and (root / "notebooks" / LAB).is_dir(), done
        missing = run_nbgrader("generate_assignment", "no_such_lab", cwd=root, env=env,
                               check=False)
        assert missing.returncode != 0
        assert "no_such_lab" in missing.stdout + missing.stderr, missing
        with pytest.raises(RuntimeError, match=r"nbgrader generate_assignment no_such_lab failed"):
            run_nbgrader("generate_assignment", "no_such_lab", cwd=root, env=env)
    finally:
        share(True)  # as conftest.py left it
