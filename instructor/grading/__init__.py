"""The grading engine: where a submission goes and who writes the gradebook.

- :mod:`.run`: the run (workers, progress, per-submission errors, resuming); its main thread is
  the only writer of the course's gradebook (through :mod:`.gradebook`).
- :mod:`.distributed`: the same run with its submissions graded on a Dask cluster
  (``--scheduler``); the instructor's process still records.
- :mod:`.workspace`: the run's folders, scratch courses, grading configuration and kernelspec.
- :mod:`.sandbox`, :mod:`.launch`, :mod:`.kernels`, :mod:`.provisioner`: the sandboxed kernels,
  started ahead and adopted by nbgrader; :mod:`.limits`: what each submission may use.
- ``kernel_side/``: what runs inside the sandbox (the guard and the recorder).
- :mod:`.preprocessors`: what the kit adds to ``nbgrader autograde``; :mod:`.replay` and
  :mod:`.rules` (a package): the verdicts and rule checks recomputed in the grader's own
  process.
- :mod:`.diagnosis` and :mod:`.outcome`: what happened, as codes (words: :mod:`instructor.words`).

Importing this package imports nothing else (the sandbox's launcher starts from here).
"""
