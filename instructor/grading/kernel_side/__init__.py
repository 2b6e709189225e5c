"""What the grader runs inside each sandboxed grading kernel, before and around the student's code.

This folder is bound read-only into the sandbox at ``/opt/kit/kernel_side`` and imported there
as the top-level package ``kernel_side``; it needs only the standard library and IPython, and
torch where the lab uses it.

- :func:`start` (the kernel's ``exec_lines``): imports what the labs use (so that it is paid
  while the kernel waits in the pool, not while a submission runs), installs the guard
  (:mod:`.guard`) and the recorder (:mod:`.recorder`), then puts all it made out of the garbage
  collector's reach (the submission's full collections walk only what the submission made). A
  lab that imports no torch gets a kernel without it.
- :func:`locked_cell` (the first line the grader puts into every locked cell): restores what the
  guard recorded and, for a test cell, starts recording the calls it makes to student code.
"""

from __future__ import annotations


def start(preload: tuple[str, ...] = ()) -> None:
    """Plain tracebacks (IPython's context ones cost 20-100 ms per error), the guard, then
    ``preload`` (what the lab's notebook imports), so that the guard records those modules as
    they are first imported."""
    import gc
    import importlib

    from IPython import get_ipython

    from . import guard, recorder

    ip = get_ipython()
    ip.InteractiveTB.set_mode(mode="Plain")
    guard.install(ip)  # first: the import hook records the modules as they are first imported
    for name in preload:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    recorder.install()  # torch's functions, if the lab uses torch, before any student code
    guard.before_post_run.append(recorder.end_test)
    ip.user_ns.pop("kernel_side", None)
    gc.freeze()  # what the imports made is never garbage: full collections skip it from now on


def locked_cell(test_id: str | None = None, names: tuple[str, ...] = ()) -> None:
    from IPython import get_ipython

    from . import guard, recorder

    guard.locked_cell()
    if test_id is not None:
        recorder.begin_test(get_ipython().user_ns, test_id, list(names))
