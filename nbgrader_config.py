"""nbgrader configuration for the Backprop Lab Kit (the course root is this folder).

Layout: solutions/<lab>/<lab>.ipynb is nbgrader's *source*, notebooks/<lab>/<lab>.ipynb its
*release* (the student version, generated, never edited by hand). submitted/, autograded/,
feedback/ and gradebook.db are instructor data and stay out of git.
"""

import os

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
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
