"""pytest configuration shared by the whole suite."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("LAB_DEVICE", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")

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
