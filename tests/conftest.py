"""pytest configuration shared by the whole suite."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("LAB_DEVICE", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")

collect_ignore_glob = ["fixtures/*"]


@pytest.fixture(scope="session")
def released_labs(tmp_path_factory) -> Path:
    """A throw-away course holding every lab's source and its release (``nbgrader
    generate_assignment`` of each lab, two at a time, each into a gradebook of its own), made
    once per run. Tests that need such a course copy it; none changes it."""
    from labs import SOLUTIONS, discover_labs, make_course, nbgrader, outcome, two_at_a_time

    labs = discover_labs()
    root = make_course(tmp_path_factory.mktemp("released"), {lab: SOLUTIONS / lab for lab in labs})
    runs = two_at_a_time(lambda lab: nbgrader("generate_assignment", lab, "--force", "--db",
                                              f"sqlite:///{root / f'{lab}.db'}", cwd=root), labs)
    for lab in labs:
        outcome(runs, lab)
    return root
