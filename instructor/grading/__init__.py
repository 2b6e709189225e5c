"""The grading engine: where a submission goes and who writes the gradebook.

- :mod:`.run`: the run (workers, progress, resuming); its main thread is the only writer of the
  course's gradebook (through :mod:`.gradebook`; :mod:`.gradebook_lock` keeps graders sharing
  it from recording while one seeds it). :mod:`.grader`: one submission's way through
  the workspace, a kernel and nbgrader, whatever it does.
- :mod:`.distributed`: the same run with its submissions graded on a Dask cluster
  (``--scheduler``); the instructor's process still records. :mod:`.distributed_worker` is the
  workers' side, :mod:`.distributed_tasks` what travels between the two.
- :mod:`.workspace`: the run's folders, scratch courses, grading configuration and kernelspec;
  :mod:`.font_cache`: matplotlib's font cache for the kernels, built once per machine.
- :mod:`.sandbox`, :mod:`.launch`, :mod:`.kernels`, :mod:`.provisioner`: the sandboxed kernels,
  started ahead and adopted by nbgrader; :mod:`.limits`: what each submission may use, and
  :mod:`.confinement`: how a kernel is held to it.
- ``kernel_side/``: what runs inside the sandbox (the guard and the recorder).
- :mod:`.preprocessors`: what the kit adds to ``nbgrader autograde``; :mod:`.replay` (with
  :mod:`.stubs`, the kernel's records answering the tests' calls) and :mod:`.rules` (a
  package): the verdicts and rule checks recomputed in the grader's own process.
- :mod:`.diagnosis` and :mod:`.outcome`: what happened, as codes (words: :mod:`instructor.words`).

Importing this package imports nothing else (the sandbox's launcher starts from here).
"""
