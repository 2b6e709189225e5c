"""``python3 kit.py release``: regenerate ``notebooks/`` from ``solutions/`` and build the student
bundle (``dist/backprop-lab-kit-student/`` and its ``.zip``).

The bundle holds the student notebooks, ``lab_utils``, the environment files (a student
``pyproject.toml`` that installs only ``lab_utils``, ``constraints.txt``, ``requirements.txt``),
``kit.py``, the students' ``nbgrader_config.py`` (what Validate shows) and a student README. It
never holds ``solutions/``, the instructor tools or tests, and :func:`check_bundle` refuses a
bundle in which any solution or hidden-test text appears.

The student notebooks start with a cell that installs ``lab_utils`` on hosted notebook services
(Colab, Kaggle) where it is missing (:mod:`instructor.plugins.release`). Where from is set by
``c.AddInstallCell.source`` in ``nbgrader_config.py``, or for one release by
``lab_utils_source`` (``kit.py release --lab-utils-source SOURCE``). The bundle's
``pyproject.toml`` therefore keeps the Jupyter tools (JupyterLab, Notebook, nbgrader) out of its
dependencies, in an extra ``lab`` that ``kit.py`` installs: a hosted service keeps its own.
"""

from __future__ import annotations

import re
import shlex
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

from ..course import Course
from ..environment import KIT_ROOT
from ..nbgrader_runner import run_nbgrader
from ..notebooks import HIDDEN_REGION, MARKERS, SOLUTION_REGION

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

BUNDLE_NAME = "backprop-lab-kit-student"
#: What students run JupyterLab and Validate with: in the bundle's extra ``lab``, not in what a
#: hosted notebook installs next to its own Jupyter.
JUPYTER_TOOLS = ("jupyterlab", "notebook", "nbgrader")
#: What only the instructor's side uses (math in feedback and Formgrader): not in the bundle.
INSTRUCTOR_ONLY = ("latex2mathml",)

STUDENT_README = """\
# Backprop Lab Kit: student bundle

Labs on backpropagation as Jupyter notebooks, in `notebooks/`:

{labs}

## Start
With Python 3.10 or newer:

    python3 kit.py lab

The first run creates a virtual environment in `.venv/` and installs what the labs need
(`pip install -e .[lab] -c constraints.txt`); then JupyterLab opens on `notebooks/`. On a
remote machine keep JupyterLab on the machine itself and reach it through an SSH tunnel:

    python3 kit.py lab --no-browser --ip 127.0.0.1 --port 8888   # on the remote machine
    ssh -N -L 8888:127.0.0.1:8888 you@remote-machine             # on your laptop

then open the `http://127.0.0.1:8888/lab?token=...` address it printed in your laptop's
browser. Without `kit.py`:

    python3 -m venv .venv && .venv/bin/pip install -r requirements.txt -c constraints.txt -e .
    .venv/bin/jupyter lab notebooks/

## Hosted notebooks (Google Colab, Kaggle)
Upload a notebook from `notebooks/` and run it there, on the service's GPU when you pick one
(Colab: Runtime > Change runtime type). Its first cell installs `lab_utils`, which the labs
import, when the service does not have it: {hosted}
Run the cells from the top; everything else works as on your own machine. Download the notebook
(File > Download .ipynb) and hand in that file, under its original name.

## Working on a lab
Write your code where a cell says `# YOUR CODE HERE` (replace the `raise NotImplementedError()`),
and run the test cells below it: each names the check that failed. Don't delete, copy or edit
the test cells: they are restored from the instructor's copy for grading, together with hidden
tests on inputs you have not seen. Before handing in, use Kernel > Restart Kernel and Run All
Cells, then the **Validate** button in the notebook's toolbar: it runs every test as the grader
will and shows, for each failing test, what the check found. Hand in the notebook under its
original file name.

`lab_utils` (imported by the notebooks) checks gradients against autograd, makes the toy data
sets and draws the plots.
"""


def release(course: Course, labs: list[str] | None = None, *, bundle: bool = True,
            lab_utils_source: str | None = None) -> Path | None:
    """Regenerate ``notebooks/<lab>/`` for ``labs`` (default: all) and, with ``bundle``, write the
    student bundle; returns the bundle folder. ``lab_utils_source`` (pip arguments) replaces
    ``c.AddInstallCell.source`` of ``nbgrader_config.py`` for this release."""
    labs = course.labs() if labs is None else [course.check_lab(lab) for lab in labs]
    if not labs:
        raise ValueError(f"labs: no lab found under {course.solutions}")
    options = []
    if lab_utils_source is not None:
        try:
            shlex.split(lab_utils_source)
        except ValueError as error:
            raise ValueError(f"--lab-utils-source: expected pip arguments (a URL, a path, "
                             f"a requirement), got {lab_utils_source!r} ({error})") from None
        options.append(f"--AddInstallCell.source={lab_utils_source}")
    with tempfile.TemporaryDirectory(prefix="kit-release-") as scratch, \
            ThreadPoolExecutor(max_workers=2) as pool:
        # a throw-away gradebook per lab, so that two labs are generated at a time
        runs = [pool.submit(run_nbgrader, "generate_assignment", lab, "--force", "--db",
                            f"sqlite:///{Path(scratch) / f'{lab}.db'}", *options, cwd=course.root)
                for lab in labs]
        for run in runs:
            run.result()
    return build_bundle(course, course.root / "dist" / BUNDLE_NAME) if bundle else None


def build_bundle(course: Course, target: Path) -> Path:
    """Write the student bundle to ``target`` (replaced) and ``target.zip``; check it."""
    if target.exists():
        shutil.rmtree(target)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
    shutil.copytree(course.notebooks, target / "notebooks", ignore=ignore)
    shutil.copytree(KIT_ROOT / "lab_utils", target / "lab_utils", ignore=ignore)
    for name in ("kit.py", "constraints.txt"):
        shutil.copy(KIT_ROOT / name, target / name)
    shutil.copy(KIT_ROOT / "nbgrader_student_config.py", target / "nbgrader_config.py")
    project = tomllib.loads((KIT_ROOT / "pyproject.toml").read_text())["project"]
    (target / "pyproject.toml").write_text(student_pyproject(project))
    student_deps = [d for d in project["dependencies"] if _name(d) not in INSTRUCTOR_ONLY]
    (target / "requirements.txt").write_text("\n".join(student_deps) + "\n")
    labs = sorted(p.name for p in (target / "notebooks").iterdir() if p.is_dir())
    (target / "README.md").write_text(STUDENT_README.format(
        labs="\n".join(f"- `notebooks/{lab}/{lab}.ipynb`" for lab in labs),
        hosted=hosted_words(target / "notebooks")))
    check_bundle(target, [course.solutions / lab / f"{lab}.ipynb" for lab in course.labs()])
    shutil.make_archive(str(target), "zip", target.parent, target.name)
    return target


def hosted_words(notebooks: Path) -> str:
    """What the student README says about the install cell of the notebooks in ``notebooks``."""
    sources = set()
    for path in notebooks.glob("*/*.ipynb"):
        cells = nbformat.read(path, as_version=4).cells
        first = cells[0].source if cells else ""
        found = re.search(r"^LAB_UTILS_SOURCE = (\".*?\")", first, re.M)
        if found:
            sources.add(found.group(1))
    if sources and sources != {'""'}:
        return "your instructor has set where from."
    return (f"upload `{BUNDLE_NAME}.zip` (this bundle, as you received it) next to the "
            "notebook first (Colab: the Files panel; Kaggle: Add Data > Upload).")


def student_pyproject(project: dict) -> str:
    """The bundle's pyproject.toml: lab_utils with what it needs to run; the Jupyter tools in the
    extra ``lab`` (``kit.py lab`` installs it; a hosted notebook keeps its own Jupyter)."""
    def listed(requirements):
        return ",\n".join(f'    "{d}"' for d in requirements)
    student_deps = [d for d in project["dependencies"] if _name(d) not in INSTRUCTOR_ONLY]
    tools = [d for d in student_deps if _name(d) in JUPYTER_TOOLS]
    runtime = [d for d in student_deps if _name(d) not in JUPYTER_TOOLS]
    return f"""[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{project['name']}-student"
version = "{project['version']}"
description = "{project['description']}"
requires-python = "{project['requires-python']}"
dependencies = [
{listed(runtime)},
]

[project.optional-dependencies]
lab = [
{listed(tools)},
]
test = []

[tool.setuptools]
packages = ["lab_utils"]
"""


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def secret_lines(source: Path) -> set[str]:
    """Lines of the solution and hidden-test regions of a source notebook that its released
    version does not contain (stripped, at least 12 characters: distinctive text only)."""
    nb = nbformat.read(source, as_version=4)
    found = set()
    for cell in nb.cells:
        for region in SOLUTION_REGION.findall(cell.source) + HIDDEN_REGION.findall(cell.source):
            found.update(line.strip() for line in region.splitlines() if len(line.strip()) >= 12)
    return found


def check_bundle(folder: Path, sources: list[Path]) -> None:
    """Raise ValueError if the bundle has a solutions folder, a marker or a secret line (a line
    of a solution or hidden test that no released notebook shows)."""
    if any(p.name == "solutions" for p in folder.rglob("*")):
        raise ValueError(f"bundle {folder}: contains a solutions folder")
    files = {p: _text(p) for p in folder.rglob("*") if p.is_file()}
    public = "\n".join(text for p, text in files.items() if p.suffix == ".ipynb")
    secrets = set().union(*(secret_lines(s) for s in sources)) if sources else set()
    secrets = {s for s in secrets if s not in public} | set(MARKERS)
    for path, text in files.items():
        leaked = sorted(s for s in secrets if s in text)
        if leaked:
            raise ValueError(f"bundle {folder}: {path.relative_to(folder)} contains {leaked[:3]}")


def _text(path: Path) -> str:
    """A file's text; for a notebook, its cells' sources as a reader sees them (and the raw
    JSON, so that markers in metadata are seen too)."""
    raw = path.read_text(errors="ignore")
    if path.suffix != ".ipynb":
        return raw
    try:
        nb = nbformat.reads(raw, as_version=4)
    except Exception:
        return raw
    return "\n".join(cell.source for cell in nb.cells) + "\n" + raw
