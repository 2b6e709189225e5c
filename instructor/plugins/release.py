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

import re

from nbformat.v4 import new_code_cell
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import List, Unicode

from .install_cell import INSTALL_CELL_ID, install_cell_source

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
