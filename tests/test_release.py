"""release regenerates notebooks/ and builds a student bundle with no solution, no hidden test and
no solutions/ folder; check_bundle catches a leak when one is planted. Student notebooks carry no
test-suite markers and start with a cell that installs lab_utils on hosted notebooks (Colab,
Kaggle): run here in a fresh environment without lab_utils, it installs it from the bundle."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import nbformat
import pytest

from instructor.__main__ import main as kit
from instructor.commands.release import BUNDLE_NAME, check_bundle, secret_lines
from instructor.course import Course
from instructor.plugins.release import INSTALL_CELL_ID, install_cell_source
from labs import ROOT, discover_labs, make_course, solution_path

pytestmark = pytest.mark.slow
FIXTURE = Path(__file__).parent / "fixtures" / "fixture_lab.ipynb"


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    labs = {lab: solution_path(lab) for lab in discover_labs()} | {"fixture": FIXTURE}
    root = make_course(tmp_path_factory.mktemp("release"), labs)
    source = (root / "dist" / f"{BUNDLE_NAME}.zip").as_uri()  # what an instructor would publish
    assert kit(["release", "--course-dir", str(root), "--lab-utils-source", source]) == 0
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


def test_release_rejects_a_source_pip_cannot_read(released, capsys):
    root, _ = released
    assert kit(["release", "--no-bundle", "--course-dir", str(root),
                "--lab-utils-source", '"unbalanced']) == 2
    assert "--lab-utils-source: expected pip arguments" in capsys.readouterr().err


def test_student_notebooks_have_no_test_suite_markers(released):
    """The marker lines leave; the cells they marked stay, otherwise unchanged."""
    root, labs = released
    for lab in labs:
        source = nbformat.read(root / "solutions" / lab / f"{lab}.ipynb", as_version=4)
        student = nbformat.read(root / "notebooks" / lab / f"{lab}.ipynb", as_version=4)
        code = "\n".join(c.source for c in student.cells if c.cell_type == "code")
        assert "NBVAL_" not in code, lab
        by_id = {c.get("id"): c for c in student.cells}
        for cell in source.cells:
            if cell.cell_type == "code" and cell.source.startswith("# NBVAL_CHECK_OUTPUT\n"):
                assert by_id[cell.get("id")].source == cell.source.split("\n", 1)[1], lab


def test_notebooks_using_lab_utils_start_with_the_install_cell(released):
    root, labs = released
    for lab in labs:
        cells = nbformat.read(root / "notebooks" / lab / f"{lab}.ipynb", as_version=4).cells
        uses = any("lab_utils" in c.source for c in cells[1:])
        assert (cells[0].get("id") == INSTALL_CELL_ID) == uses, lab
        if uses:
            source = (root / "dist" / f"{BUNDLE_NAME}.zip").as_uri()
            assert f"LAB_UTILS_SOURCE = {json.dumps(source)}" in cells[0].source


def test_bundle_has_the_students_nbgrader_config_and_a_lab_extra(released):
    root, _ = released
    bundle = root / "dist" / BUNDLE_NAME
    assert (bundle / "nbgrader_config.py").read_text() == \
        (ROOT / "nbgrader_student_config.py").read_text()
    pyproject = (bundle / "pyproject.toml").read_text()
    assert "lab = [" in pyproject and '"nbgrader' in pyproject.split("lab = [")[1]
    assert "latex2mathml" not in pyproject + (bundle / "requirements.txt").read_text()
    readme = (bundle / "README.md").read_text()
    assert "--ip 127.0.0.1" in readme and "0.0.0.0" not in readme and "ssh -N -L" in readme
    assert "Colab" in readme and "your instructor has set where from" in readme


def _fresh_environment(folder: Path) -> Path:
    """A new virtual environment without lab_utils. The kit's own packages (torch, numpy, pip,
    setuptools) are made importable through a .pth file naming the kit's site-packages: a plain
    path line, so the kit's editable install of lab_utils (a .pth hook there) stays inactive."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True,
                   timeout=300)
    python = folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "kit-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def _offline_env() -> dict[str, str]:
    """No network here: pip builds the bundle with the setuptools it finds and installs only
    lab_utils (torch and the rest come from the kit's site-packages, see above)."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    env.update(PYTHONNOUSERSITE="1", PIP_NO_INDEX="1", PIP_NO_DEPS="1",
               PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def _run(python: Path, code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-c", code], cwd=cwd, env=_offline_env(),
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("how", ["source set at release", "bundle uploaded next to it"])
def test_install_cell_makes_lab_utils_importable_in_a_bare_environment(released, tmp_path, how):
    """Like a hosted notebook: an environment where `import lab_utils` fails runs the first
    cell of a released notebook, then imports lab_utils from where the cell installed it."""
    root, labs = released
    lab = next(lab for lab in labs if lab != "fixture")
    python = _fresh_environment(tmp_path / "venv")
    session = tmp_path / "session"  # the notebook's folder on the service
    session.mkdir()
    assert _run(python, "import lab_utils", session).returncode != 0, "lab_utils already there"
    if how == "source set at release":
        cell = nbformat.read(root / "notebooks" / lab / f"{lab}.ipynb", as_version=4).cells[0]
        code = cell.source
    else:
        shutil.copy(root / "dist" / f"{BUNDLE_NAME}.zip", session)
        code = install_cell_source("")
    ran = _run(python, code, session)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    found = _run(python, "import lab_utils, torch; print(lab_utils.__file__); "
                         "print(lab_utils.get_device())", session)
    assert found.returncode == 0, found.stderr[-3000:]
    where = Path(found.stdout.splitlines()[0]).resolve()
    assert (tmp_path / "venv").resolve() in where.parents, where
    ran_again = _run(python, code, session)  # where lab_utils is installed the cell does nothing
    assert ran_again.returncode == 0 and ran_again.stdout == ""
