"""The code runs on every Python the project declares: vermin (a tool that finds the minimum
Python version of source code) checks it against pyproject.toml's requires-python, and every
import of tomllib (new in 3.11) falls back to tomli."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

from labs import ROOT

try:
    import tomllib  # novermin (the fallback is the point of this file)
except ImportError:  # Python 3.10
    import tomli as tomllib

CHECKED = ["kit.py", "nbgrader_config.py", "nbgrader_student_config.py", "instructor",
           "lab_utils", "benchmarks", "tests"]
# vermin reads torch.long as Python 2's builtin long; tomllib is checked below instead.
VERMIN_EXCLUDES = ["long", "tomllib"]


def _target() -> str:
    """vermin's target ('3.10-') from pyproject.toml's requires-python ('>=3.10')."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    found = re.fullmatch(r">=\s*(\d+\.\d+)", declared.strip())
    assert found, f"requires-python: expected '>=X.Y', got {declared!r}"
    return f"{found.group(1)}-"


def test_vermin_finds_nothing_newer_than_requires_python():
    excludes = [arg for name in VERMIN_EXCLUDES for arg in ("--exclude", name)]
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from vermin.main import main; sys.exit(main())",
         "--target=" + _target(), "--violations", "--no-tips",
         "--eval-annotations", *excludes, *CHECKED],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "Target versions not met" not in result.stdout, \
        result.stdout[-4000:] + result.stderr[-2000:]


def _tomllib_imports_without_fallback(tree: ast.AST) -> list[int]:
    guarded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in {"ImportError",
                                                               "ModuleNotFoundError"}
                and any(isinstance(s, ast.Import) and s.names[0].name == "tomli"
                        for s in h.body) for h in node.handlers):
            guarded.update(id(s) for s in node.body)
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Import) and any(a.name == "tomllib" for a in node.names)
            and id(node) not in guarded]


def test_every_tomllib_import_falls_back_to_tomli():
    files = [p for name in CHECKED for p in
             ([ROOT / name] if name.endswith(".py") else sorted((ROOT / name).rglob("*.py")))]
    unguarded = {str(p.relative_to(ROOT)): lines for p in files
                 if (lines := _tomllib_imports_without_fallback(ast.parse(p.read_text())))}
    assert not unguarded, f"tomllib imported without a tomli fallback (Python 3.10): {unguarded}"


def test_the_tomllib_check_is_not_vacuous():
    bare = ast.parse("import tomllib\n")
    guarded = ast.parse("try:\n    import tomllib\nexcept ImportError:\n    import tomli as tomllib\n")
    assert _tomllib_imports_without_fallback(bare) == [1]
    assert _tomllib_imports_without_fallback(guarded) == []
