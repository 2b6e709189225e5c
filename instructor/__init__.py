"""The instructor's side of the Backprop Lab Kit.

- ``commands/``: what an instructor runs (``python3 kit.py release|collect|grade|feedback|export``)
  and the helpers for writing a lab (``authoring``).
- ``plugins/``: what ``nbgrader_config.py`` plugs into nbgrader (generate_assignment and
  generate_feedback steps, the feedback page, the CSV export, math as MathML), so that Formgrader
  and nbgrader by hand do what the commands do.
- ``grading/``: the grading engine (a submission's way from ``submitted/`` through a sandboxed
  kernel to the gradebook; its main process is the gradebook's only writer).
- ``course.py`` (the course's folders and labs, throw-away courses), ``notebooks.py`` (what a
  cell is; nbgrader's markers), ``nbgrader_runner.py`` (the one way to run nbgrader),
  ``environment.py`` (the environments processes start in), ``words.py`` (codes into sentences).
"""
