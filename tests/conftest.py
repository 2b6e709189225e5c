"""pytest configuration shared by the whole suite."""

import gc
import os
import shutil
from pathlib import Path

import pytest

from instructor.environment import LAB_SETTINGS, THREAD_SETTINGS

# Every process the suite starts (kernels, servers, nbgrader) computes as a grading kernel does:
# on the CPU, with one torch/BLAS thread. Several test files run at once on a machine with few
# cores, and OpenMP threads that spin waiting for each other on busy cores made some notebooks
# three times slower.
for name, value in {**LAB_SETTINGS, **THREAD_SETTINGS}.items():
    os.environ.setdefault(name, value)

collect_ignore_glob = ["fixtures/*"]

# The files that take the most CPU time, most first (measured one at a time: browser and
# grading_labs about 100 cpu-s, grading_hostile about 75, down to benchmarks about 15). With
# `kit.py test`, pytest-xdist hands out whole files in collection order: the longest start
# first, and the files that end the run are short ones, not a long one left to a single worker.
LONGEST_FIRST = ("test_browser.py", "test_grading_labs.py", "test_grading_hostile.py",
                 "test_postgres.py", "test_grading_faults.py", "test_labs.py",
                 "test_engine_check.py", "test_devices.py", "test_distributed.py",
                 "test_exchange.py", "test_release.py", "test_benchmarks.py")


def pytest_collection_modifyitems(items):
    """Items of :data:`LONGEST_FIRST`'s files first, in its order; the rest as collected."""
    rank = {name: number for number, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_collection_finish(session):
    """What collecting imported (torch, nbgrader, the catalogues) lives as long as the worker:
    out of the garbage collector's reach, it is not walked again by each full collection the
    tests cause (they took a third of some workers' CPU time)."""
    gc.freeze()


@pytest.fixture(scope="session", autouse=True)
def warm_nbgrader():
    """Warm nbgrader processes shared by the whole test process, each started by its first
    command: every nbgrader command run in this process (the tests' own, the kit's commands,
    the graders') is a child of one instead of a new interpreter importing nbgrader (and torch,
    to replay a lab's tests) again. ``kit.py`` itself runs them as it always does."""
    from instructor.nbgrader_runner import share

    share(True)
    yield
    share(False)


@pytest.fixture(scope="session")
def released_labs(tmp_path_factory) -> Path:
    """A throw-away course holding every lab's source and its release (``kit.py release``
    without the bundle), made once per run: by the first pytest-xdist worker that asks, the
    others waiting for it (a file lock). Tests that need such a course copy it; none changes
    it."""
    from filelock import FileLock

    if "PYTEST_XDIST_WORKER" not in os.environ:  # one process (no xdist): nothing to share
        return _release(tmp_path_factory.mktemp("released"))
    shared = tmp_path_factory.getbasetemp().parent / "released"  # the run's, not a worker's
    with FileLock(f"{shared}.lock"):
        if not (shared / "done").exists():
            shutil.rmtree(shared, ignore_errors=True)  # what a failed attempt left
            _release(shared)
            (shared / "done").touch()
    return shared


def _release(root: Path) -> Path:
    from instructor.commands.release import release
    from instructor.course import Course
    from labs import SOLUTIONS, discover_labs, make_course

    root = make_course(root, {lab: SOLUTIONS / lab for lab in discover_labs()})
    release(Course.open(root), bundle=False)
    return root
