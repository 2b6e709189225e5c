"""release regenerates notebooks/ and builds a student bundle with no solution, no hidden test and
no solutions/ folder; check_bundle catches a leak when one is planted."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from instructor.__main__ import main as kit
from instructor.commands.release import BUNDLE_NAME, check_bundle, secret_lines
from instructor.course import Course
from labs import discover_labs, make_course, solution_path

pytestmark = pytest.mark.slow
FIXTURE = Path(__file__).parent / "fixtures" / "fixture_lab.ipynb"


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    labs = {lab: solution_path(lab) for lab in discover_labs()} | {"fixture": FIXTURE}
    root = make_course(tmp_path_factory.mktemp("release"), labs)
    assert kit(["release", "--course-dir", str(root)]) == 0
    return root, labs


def test_release_regenerates_every_student_notebook(released):
    root, labs = released
    for lab in labs:
        text = (root / "notebooks" / lab / f"{lab}.ipynb").read_text()
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text, lab


def test_bundle_has_the_student_files_and_nothing_secret(released):
    root, labs = released
    bundle = root / "dist" / BUNDLE_NAME
    names = {str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file()}
    for lab in labs:
        assert f"notebooks/{lab}/{lab}.ipynb" in names
    for required in ("lab_utils/__init__.py", "pyproject.toml", "constraints.txt",
                     "requirements.txt", "README.md", "kit.py"):
        assert required in names, required
    assert not any(n.startswith(("solutions/", "instructor/", "tests/")) for n in names), names
    secrets = set().union(*(secret_lines(src) for src in labs.values()))
    assert "return a + b" in secrets and "assert add(2.5, 0.5) == 3.0" in secrets
    for path in (p for p in bundle.rglob("*") if p.is_file()):
        text = path.read_text(errors="ignore")
        for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "assert add(2.5, 0.5) == 3.0"):
            assert marker not in text, (path, marker)
    with zipfile.ZipFile(root / "dist" / f"{BUNDLE_NAME}.zip") as archive:
        zipped = {n.split("/", 1)[1] for n in archive.namelist() if "/" in n and not n.endswith("/")}
    assert zipped == names
    assert 'packages = ["lab_utils"]' in (bundle / "pyproject.toml").read_text()


def test_check_bundle_catches_a_planted_solution(released, tmp_path):
    """The bundle check is not vacuous: a copied solution notebook or solutions/ folder fails it."""
    root, labs = released
    bundle = root / "dist" / BUNDLE_NAME
    leaky = tmp_path / "leaky"
    leaky.mkdir()
    (leaky / "notes.py").write_text("def add(a, b):\n    return a + b\n")
    sources = [Course.open(root).solutions / "fixture" / "fixture.ipynb"]
    with pytest.raises(ValueError, match="return a \\+ b"):
        check_bundle(leaky, sources)
    (leaky / "notes.py").unlink()
    (leaky / "solutions").mkdir()
    with pytest.raises(ValueError, match="solutions folder"):
        check_bundle(leaky, sources)
    check_bundle(bundle, [Path(p) for p in labs.values()])  # the real one passes


def test_release_rejects_an_unknown_lab(released, capsys):
    root, _ = released
    assert kit(["release", "no_such_lab", "--course-dir", str(root)]) == 2
    assert "lab: expected one of" in capsys.readouterr().err
