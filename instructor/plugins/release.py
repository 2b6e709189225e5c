"""What ``nbgrader generate_assignment`` adds to nbgrader's own steps for this course (see
``c.GenerateAssignment.preprocessors`` in ``nbgrader_config.py``; ``kit.py release`` and
Formgrader's "Generate" button both run it):

- :class:`StripTestMarkers`: the lines that speak only to the kit's test suite
  (``# NBVAL_CHECK_OUTPUT`` and nbval's other markers) leave the student version. It runs
  before nbgrader computes checksums and saves the cells to the gradebook, so the student
  version, the gradebook and Validate agree.
- :class:`AddInstallCell`: a first cell that, only where ``lab_utils`` is missing (a hosted
  notebook service such as Colab or Kaggle, where the notebook is the only file), installs it
  with pip from :attr:`AddInstallCell.source`. The source is set in ``nbgrader_config.py`` or
  for one release with ``kit.py release --lab-utils-source SOURCE``.
"""

from __future__ import annotations

import json
import re
import shlex

from nbformat.v4 import new_code_cell
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import List, Unicode

#: nbgrader's own generate_assignment steps (0.9), with the kit's two inserted.
PIPELINE = [
    "nbgrader.preprocessors.IncludeHeaderFooter", "nbgrader.preprocessors.InstantiateTests",
    "nbgrader.preprocessors.LockCells", "nbgrader.preprocessors.ClearSolutions",
    "nbgrader.preprocessors.ClearOutput", "instructor.plugins.release.StripTestMarkers",
    "nbgrader.preprocessors.CheckCellMetadata", "nbgrader.preprocessors.ComputeChecksums",
    "nbgrader.preprocessors.SaveCells", "nbgrader.preprocessors.ClearHiddenTests",
    "nbgrader.preprocessors.ClearMarkScheme", "nbgrader.preprocessors.ComputeChecksums",
    "nbgrader.preprocessors.CheckCellMetadata", "instructor.plugins.release.AddInstallCell",
]
INSTALL_CELL_ID = "install-lab-utils"
BUNDLE_ZIP = "backprop-lab-kit-student.zip"


class StripTestMarkers(NbGraderPreprocessor):
    """Remove comment lines that hold only a test-suite marker from code cells."""

    markers = List(["NBVAL_CHECK_OUTPUT", "NBVAL_IGNORE_OUTPUT", "NBVAL_SKIP",
                    "NBVAL_RAISES_EXCEPTION"], help="markers removed with their line"
                   ).tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and self.markers:
            names = "|".join(re.escape(m) for m in self.markers)
            cell.source = re.sub(rf"^[ \t]*#[ \t]*(?:{names})[ \t]*(?:\n|$)", "", cell.source,
                                 flags=re.M)
        return cell, resources


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


class AddInstallCell(NbGraderPreprocessor):
    """Insert the install cell first in every notebook that uses ``lab_utils``."""

    source = Unicode("", help="pip arguments that install lab_utils where it is missing: the "
                     "student bundle's URL, a package name with --index-url, or a git+ URL"
                     ).tag(config=True)

    def preprocess(self, nb, resources):
        if not any("lab_utils" in cell.source for cell in nb.cells):
            return nb, resources
        nb.cells = [c for c in nb.cells if c.get("id") != INSTALL_CELL_ID]
        cell = new_code_cell(install_cell_source(self.source.strip()))
        cell.id = INSTALL_CELL_ID  # fixed, so that regenerating gives the same file
        # folded in JupyterLab (a click shows it), a titled form on Colab
        cell.metadata = {"cellView": "form", "jupyter": {"source_hidden": True},
                         "kit": {"install_cell": True}}
        nb.cells.insert(0, cell)
        return nb, resources
