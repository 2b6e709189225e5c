"""pytest configuration shared by the whole suite."""

import os
from pathlib import Path

import pytest

from instructor.environment import LAB_SETTINGS, THREAD_SETTINGS  # noqa: E402

# Every process the suite starts (kernels, servers, nbgrader) computes as a grading kernel does:
# on the CPU, with one torch/BLAS thread. Several test files run at once on a machine with few
# cores, and OpenMP threads that spin waiting for each other on busy cores made some notebooks
# three times slower.
for name, value in {**LAB_SETTINGS, **THREAD_SETTINGS}.items():
    os.environ.setdefault(name, value)

collect_ignore_glob = ["fixtures/*"]


@pytest.fixture(scope="session")
def released_labs(tmp_path_factory) -> Path:
    """A throw-away course holding every lab's source and its release (``kit.py release``
    without the bundle), made once per run. Tests that need such a course copy it; none
    changes it."""
    from instructor.commands.release import release
    from instructor.course import Course
    from labs import SOLUTIONS, discover_labs, make_course

    root = make_course(tmp_path_factory.mktemp("released"),
                       {lab: SOLUTIONS / lab for lab in discover_labs()})
    release(Course.open(root), bundle=False)
    return root
