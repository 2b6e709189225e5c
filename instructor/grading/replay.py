"""The grader's own run of each test cell, where the student's code cannot interfere.

After a notebook has run in its sandboxed kernel, :func:`replay_notebook` runs its test cells
again in the grader's process: first every context cell of the SOURCE notebook (setup, data,
test helpers: instructor code), then each test cell's source, with every graded function, and
every helper marked ``runs_student_code``, replaced by a :class:`~.stubs.Stub` that answers each
call with what the same call gave in the kernel (:mod:`.stubs`). Inputs, references and
comparisons are the grader's own, so a student who replaced ``torch.allclose`` or the checkers,
or fed the tests other inputs, gains nothing here. A call whose inputs differ from the kernel's
(see :func:`~.kernel_side.encoding.first_difference`) or has no record fails the test.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..notebooks import grade_id, graded_names, is_context_cell, is_test_cell
from .stubs import Records, ReplayError, Stub

MARK = "__runs_student_code__"


class ReplayTimeout(Exception):
    """A test cell took longer than the per-cell limit in the grader's process."""


@dataclass
class Verdict:
    """The grader's verdict on one test cell; ``called`` names the student functions it used."""

    cell: str
    passed: bool
    message: str = ""
    called: set[str] = field(default_factory=set)


def _python(source: str) -> str:
    from IPython.core.inputtransformer2 import TransformerManager
    return TransformerManager().transform_cell(source)


class _NoIPython:
    """What ``get_ipython()`` returns during a replay: magics and display do nothing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


@contextlib.contextmanager
def _time_limit(seconds: int):
    def stop(signum, frame):
        raise ReplayTimeout(f"the test took more than {seconds} s in the grader's process")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def replay_notebook(source_nb, records: Path | None, *, cell_timeout: int) -> dict[str, Verdict]:
    """The grader's verdict on every test cell of ``source_nb`` (by grade id), from the calls
    recorded under ``records/<grade id>/`` (None: nothing was recorded)."""
    graded = graded_names(source_nb)
    namespace: dict = {"__name__": "__main__", "__builtins__": builtins,
                       "get_ipython": _NoIPython, "display": lambda *a, **k: None}
    verdicts: dict[str, Verdict] = {}
    context_error = None
    # one thread, as in the kernel: the same arithmetic, bit for bit (a torch that the lab's
    # cells import here starts with one: the nbgrader child has the kernel's thread settings)
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(1)
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            for cell in source_nb.cells:
                if is_context_cell(cell) and context_error is None:
                    try:
                        with _time_limit(cell_timeout):
                            exec(compile(_python(cell.source), f"<cell {grade_id(cell)}>", "exec"),
                                 namespace)
                    except Exception as error:
                        context_error = f"context cell {grade_id(cell)} failed: {_describe(error)}"
                elif is_test_cell(cell):
                    verdicts[grade_id(cell)] = _replay_test(cell, namespace, graded, records,
                                                            cell_timeout, context_error)
                sink.seek(0)
                sink.truncate()
    finally:
        if torch:
            torch.set_num_threads(threads)
    return verdicts


def _replay_test(cell, namespace: dict, graded: list[str], records: Path | None,
                 cell_timeout: int, context_error: str | None) -> Verdict:
    cell_id = grade_id(cell)
    if context_error:
        return Verdict(cell_id, False, f"the grader could not prepare this test ({context_error})")
    if records is None:
        return Verdict(cell_id, False, "nothing was recorded in the kernel")
    called: set[str] = set()
    calls = Records(records / cell_id)
    helpers = [n for n, v in namespace.items() if callable(v) and getattr(v, MARK, False) is True]
    saved = {n: namespace[n] for n in helpers}
    for name in [*graded, *helpers]:
        namespace[name] = Stub(name, calls, called)
    try:
        with _time_limit(cell_timeout):
            exec(compile(_python(cell.source), f"<test {cell_id}>", "exec"), namespace)
        return Verdict(cell_id, True, "", called)
    except (ReplayError, ReplayTimeout) as error:
        return Verdict(cell_id, False, str(error), called)
    except Exception as error:
        return Verdict(cell_id, False, _describe(error), called)
    finally:
        namespace.update(saved)
