"""nbgrader configuration for the Backprop Lab Kit (the course root is this folder).

Layout: solutions/<lab>/<lab>.ipynb is nbgrader's *source*, notebooks/<lab>/<lab>.ipynb its
*release* (the student version, generated, never edited by hand). submitted/, autograded/,
feedback/, exchange/ and gradebook.db are instructor data and stay out of git.

Everything the kit adds to nbgrader is configured here, so that the kit's commands, Formgrader's
buttons and nbgrader typed by hand all do the same (the classes are in instructor/plugins/).
"""

import os

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.course_id = "backprop-lab-kit"  # on a JupyterHub: your course's id
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(c.CourseDirectory.root, "gradebook.db")
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "*.png", "*.csv"]

# Grade under the same kernel the labs are written for, with finite limits.
c.Execute.kernel_name = "python3"
c.ExecutePreprocessor.kernel_name = "python3"
c.Execute.timeout = 120                  # seconds per cell
c.ExecutePreprocessor.timeout = 120
c.Execute.interrupt_on_timeout = True
c.Execute.raise_on_iopub_timeout = False
c.Execute.execute_retries = 0

# A student who deleted a graded cell gets it back (and no points for it).
c.OverwriteCells.add_missing_cells = True
c.ClearSolutions.code_stub = {
    "python": "# YOUR CODE HERE\nraise NotImplementedError()",
}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Keep floods of output from bloating the gradebook and the feedback.
c.LimitOutput.max_lines = 300
c.LimitOutput.max_traceback = 60

# Student versions: nbgrader's steps plus two (instructor/plugins/release.py): the test suite's
# NBVAL markers leave, and a first cell installs lab_utils on hosted notebooks (Colab, Kaggle)
# from this source (pip arguments; `kit.py release --lab-utils-source ...` sets it for one run).
c.GenerateAssignment.preprocessors = [
    "nbgrader.preprocessors.IncludeHeaderFooter", "nbgrader.preprocessors.InstantiateTests",
    "nbgrader.preprocessors.LockCells", "nbgrader.preprocessors.ClearSolutions",
    "nbgrader.preprocessors.ClearOutput", "instructor.plugins.release.StripTestMarkers",
    "nbgrader.preprocessors.CheckCellMetadata", "nbgrader.preprocessors.ComputeChecksums",
    "nbgrader.preprocessors.SaveCells", "nbgrader.preprocessors.ClearHiddenTests",
    "nbgrader.preprocessors.ClearMarkScheme", "nbgrader.preprocessors.ComputeChecksums",
    "nbgrader.preprocessors.CheckCellMetadata", "instructor.plugins.release.AddInstallCell",
]
c.AddInstallCell.source = ""  # e.g. "https://example.edu/backprop-lab-kit-student.zip"

# Feedback (kit.py feedback, Formgrader's "Generate Feedback", nbgrader generate_feedback):
# hidden tests never shown, errors in words, answers not graded yet said so.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades", "instructor.plugins.feedback.CleanFeedback",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
c.GenerateFeedback.exporter_class = "instructor.plugins.feedback.FeedbackExporter"

# Math in Formgrader and in feedback pages as MathML: readable offline, no CDN.
c.HTMLExporter.filters = {"markdown2html": "instructor.plugins.mathml.markdown2html"}

# grades.csv (kit.py export, nbgrader export): sorted, with the answers left to grade by hand.
c.ExportApp.plugin_class = "instructor.plugins.export.GradesCsv"

# Formgrader: no panel dumping this configuration (it holds a function, see below).
c.FormgradeExtension.debug = False

# What students' Validate shows (shared with the student bundle, whose nbgrader_config.py it is).
load_subconfig("nbgrader_student_config.py")  # noqa: F821  (provided by nbgrader, like get_config)
