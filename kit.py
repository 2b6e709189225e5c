#!/usr/bin/env python3
"""One entry point for the Backprop Lab Kit.

Students::

    python3 kit.py lab            # set up .venv (first time) and open JupyterLab on notebooks/
    python3 kit.py lab --no-browser --port 8888 --ip 127.0.0.1  # e.g. on a remote machine

Everyone (and CI)::

    python3 kit.py test           # set up .venv (first time) and run the whole test suite

Instructors::

    python3 kit.py lab --instructor   # JupyterLab on the whole course, Formgrader included
    python3 kit.py release | collect | grade | feedback | export   (see README.md)
    python3 kit.py bench [--quick]

This file uses the standard library only: it creates the virtual environment, installs the
project into it (``pip install -e .[test] -c constraints.txt``) once, and re-runs itself there.
Set ``KIT_VENV`` to put the environment elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("KIT_VENV", ROOT / ".venv"))
STAMP = VENV / ".kit-installed"
INSTALL_INPUTS = ("pyproject.toml", "constraints.txt")

USAGE = """usage: python3 kit.py COMMAND [ARGS...]

student commands:
  lab [jupyter lab options]   open JupyterLab on notebooks/ (add --no-browser on a remote machine;
                              --instructor opens the whole course, for Formgrader)
  test [pytest options]       ruff, then the whole test suite

instructor commands (python3 kit.py COMMAND --help for options):
  release    regenerate notebooks/ from solutions/ and build the student bundle
  collect    import submissions (nbgrader folders or an LMS zip)
  grade      autograde submissions in parallel into the gradebook
  feedback   write per-student HTML feedback
  export     write grades.csv and the grading summary
  bench      run the benchmarks and write docs/benchmarks.md
"""


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def install_fingerprint() -> str:
    digest = hashlib.sha256()
    for name in INSTALL_INPUTS:
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def ensure_environment() -> Path:
    """Create the virtual environment and install the kit into it, unless already done."""
    if sys.version_info < (3, 10):
        sys.exit(f"kit.py: Python >= 3.10 is required, this is {sys.version.split()[0]}")
    python = venv_python()
    wanted = install_fingerprint()
    if python.exists() and STAMP.exists() and STAMP.read_text().strip() == wanted:
        return python
    if not python.exists():
        print(f"kit.py: creating the virtual environment in {VENV}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    print("kit.py: installing the kit and its dependencies (first run only)", flush=True)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    subprocess.run([*pip, "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run(
        [*pip, "--quiet", "-c", str(ROOT / "constraints.txt"), "-e", f"{ROOT}[test]"],
        check=True,
    )
    STAMP.write_text(wanted + "\n")
    return python


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    known = {"lab", "test", "release", "collect", "grade", "feedback", "export", "bench"}
    if command not in known:
        print(f"kit.py: unknown command {command!r}; expected one of {sorted(known)}\n", file=sys.stderr)
        print(USAGE, file=sys.stderr)
        return 2
    python = str(ensure_environment())
    os.chdir(ROOT)
    if command == "lab":
        instructor = "--instructor" in rest  # the whole course (Formgrader can open solutions/)
        rest = [a for a in rest if a != "--instructor"]
        root_dir = ROOT if instructor else ROOT / "notebooks"
        args = [python, "-m", "jupyter", "lab", f"--ServerApp.root_dir={root_dir}", *rest]
        if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in rest:
            args.append("--allow-root")  # containers and CI machines often run as root
    elif command == "test":
        args = [python, "-m", "instructor.run_tests", *rest]
    elif command == "bench":
        args = [python, "-m", "benchmarks.run", *rest]
    else:
        args = [python, "-m", "instructor", command, *rest]
    if os.name == "nt":  # os.execv does not replace the process on Windows
        return subprocess.call(args)
    os.execv(python, args)
    return 0  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
