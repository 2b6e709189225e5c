"""The project's own wiring: one environment description, two README commands, CI runs the
test command and runs it on three workers, instructor data stays out of git."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml  # installed with jupyter

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

import kit
from labs import ROOT


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def _environment_pip_list() -> list[str]:
    spec = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    return [p for p in pip if not p.startswith("-e")]


def test_environment_yml_lists_the_same_packages_as_pyproject():
    """Conda users get exactly the pip packages (and versions) of pyproject.toml + constraints.txt."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r): r for r in project["dependencies"] + project["optional-dependencies"]["test"]}
    pins = [line.split("#")[0].strip() for line in (ROOT / "constraints.txt").read_text().splitlines()]
    for pin in filter(None, pins):
        assert _name(pin) in wanted, f"constraints.txt pins {pin!r}, which pyproject.toml does not use"
        wanted[_name(pin)] = pin
    listed = {_name(r): r for r in _environment_pip_list()}
    assert listed == wanted


def test_readme_gives_the_two_commands_and_ci_runs_the_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "python3 kit.py lab" in readme and "python3 kit.py test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 kit.py test" in ci


def test_kit_rejects_an_unknown_command_without_installing_anything():
    result = subprocess.run([sys.executable, str(ROOT / "kit.py"), "fly"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "unknown command 'fly'" in result.stderr and "usage:" in result.stderr


def test_kit_test_runs_three_workers_unless_the_user_chooses_them():
    assert kit.pytest_arguments(["-k", "grading"])[-7:] == [
        "-n", "3", "--dist", "loadfile", "--no-loadscope-reorder", "-k", "grading"]
    for chosen in (["-n", "4"], ["-n4"], ["--numprocesses=auto"], ["--dist", "load"],
                   ["--dist=each"], ["-p", "no:xdist"]):
        arguments = kit.pytest_arguments(chosen)
        assert "loadfile" not in arguments and arguments[-len(chosen):] == chosen, chosen


def test_the_longest_files_named_to_start_first_exist():
    """conftest.LONGEST_FIRST names test files that exist (a renamed file would silently lose
    its place at the front of the run)."""
    from conftest import LONGEST_FIRST

    missing = [name for name in LONGEST_FIRST if not (ROOT / "tests" / name).is_file()]
    assert not missing and len(set(LONGEST_FIRST)) == len(LONGEST_FIRST), missing


def test_instructor_data_is_git_ignored():
    probes = ["gradebook.db", "submitted/alice/lab/x.ipynb", "autograded/a/b.ipynb",
              "feedback/a/b.html", ".venv/bin/python", "artifacts/browser/lab.png"]
    result = subprocess.run(["git", "check-ignore", *probes], cwd=ROOT, capture_output=True, text=True)
    assert sorted(result.stdout.split()) == sorted(probes)


def test_reading_a_notebook_does_not_build_jsonschemas_iri_parser():
    """jsonschema 4.25+ imports rfc3987-syntax, which builds a parser for over a second in every
    process that imports nbformat (each nbgrader command, each grader); pyproject.toml keeps
    jsonschema below it."""
    probe = "import sys, nbformat; print('rfc3987_syntax' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.strip() == "False"
