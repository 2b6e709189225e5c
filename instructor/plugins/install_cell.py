"""The install cell that student notebooks start with (for hosted notebooks such as Colab):
its code, and how the grader recognises it (a student cell like any other, but the kit's own
code when it is exactly this one). Standard library only: the rule checker imports it."""

from __future__ import annotations

import json
import shlex

INSTALL_CELL_ID = "install-lab-utils"
BUNDLE_ZIP = "backprop-lab-kit-student.zip"
SOURCE_LINE = "LAB_UTILS_SOURCE = "
SOURCE_COMMENT = "  # pip arguments, set by your instructor"


def install_cell_source(source: str) -> str:
    """The code of the install cell for pip arguments ``source`` ("" when none was set: then the
    cell looks for the student bundle's zip next to the notebook)."""
    shlex.split(source)  # raises ValueError for unbalanced quotes, at release time
    return f'''\
#@title Setup for hosted notebooks (Colab, Kaggle): installs lab_utils if it is missing
# Hosted notebooks have only this file: this cell installs the labs' helper package,
# lab_utils, when it is missing. Where lab_utils is installed it does nothing.
import importlib.util

LAB_UTILS_SOURCE = {json.dumps(source)}  # pip arguments, set by your instructor
if importlib.util.find_spec("lab_utils") is None:
    import pathlib, shlex, site, subprocess, sys
    bundles = sorted(pathlib.Path().glob("{BUNDLE_ZIP.removesuffix('.zip')}*.zip"))
    pip_args = shlex.split(LAB_UTILS_SOURCE) or [str(p) for p in bundles[:1]]
    if not pip_args:
        raise RuntimeError("lab_utils is missing and no source is set: upload "
                           "{BUNDLE_ZIP} (from your instructor) next to "
                           "this notebook, then run this cell again")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *pip_args], check=True)
    site.addsitedir(site.getusersitepackages())  # pip's --user fallback
    importlib.invalidate_caches()
    import lab_utils  # noqa: F401  (fails here, not in a later cell, if the install failed)'''


def is_install_cell(source: str) -> bool:
    """True for exactly the code :func:`install_cell_source` writes, whatever pip source it
    names (a JSON string literal, so nothing else can hide on that line)."""
    lines, template = source.split("\n"), install_cell_source("").split("\n")
    if len(lines) != len(template):
        return False
    for got, want in zip(lines, template):
        if not want.startswith(SOURCE_LINE):
            if got != want:
                return False
            continue
        if not (got.startswith(SOURCE_LINE) and got.endswith(SOURCE_COMMENT)):
            return False
        literal = got[len(SOURCE_LINE):-len(SOURCE_COMMENT)]
        try:
            value = json.loads(literal)
        except ValueError:
            return False
        if not isinstance(value, str) or json.dumps(value) != literal:
            return False
    return True
