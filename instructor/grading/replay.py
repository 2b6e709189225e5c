"""The grader's own run of each test cell, where the student's code cannot interfere.

After a notebook has run in its sandboxed kernel, :func:`replay_notebook` runs its test cells
again in the grader's process: first every context cell of the SOURCE notebook (setup, data,
test helpers: instructor code), then each test cell's source, with every graded function, and
every helper marked ``runs_student_code``, replaced by a :class:`Stub` that answers each call
with what the same call gave in the kernel (the recorder's files, read with
``torch.load(weights_only=True)``). Inputs, references and comparisons are the grader's own, so
a student who replaced ``torch.allclose`` or the checkers, or fed the tests other inputs, gains
nothing here. A call whose inputs differ from the kernel's (see
:func:`~.kernel_side.encoding.first_difference`) or has no record fails the test.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import signal
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..notebooks import defined_names, grade_id, is_answer_cell, is_context_cell, is_test_cell
from .kernel_side.encoding import Unrecordable, decode, fingerprint, first_difference

MARK = "__runs_student_code__"
MAX_RECORD_BYTES = 256 * 1024 * 1024


class ReplayError(Exception):
    """The recorded calls do not fit the test: missing, out of order, other inputs."""


class ReplayTimeout(Exception):
    """A test cell took longer than the per-cell limit in the grader's process."""


class ReplayedInterrupt(Exception):
    """The call was interrupted in the kernel (a time limit, or an exit)."""


@dataclass
class Verdict:
    """The grader's verdict on one test cell; ``called`` names the student functions it used."""

    cell: str
    passed: bool
    message: str = ""
    called: set[str] = field(default_factory=set)


class Records:
    """The recorded calls of one test cell, in order."""

    def __init__(self, folder: Path):
        files = sorted(folder.glob("*.pt"), key=lambda p: int(p.stem)) if folder.is_dir() else []
        self.files = [p for p in files if p.stem.isdigit()]
        self.used = 0

    def next(self, name: str) -> dict:
        if self.used >= len(self.files):
            raise ReplayError(f"no record of the call to {name} (the kernel made "
                              f"{len(self.files)} recorded calls in this test)")
        path = self.files[self.used]
        self.used += 1
        if path.stat().st_size > MAX_RECORD_BYTES:
            raise ReplayError(f"the record of the call to {name} is too large")
        try:
            entry = torch.load(path, weights_only=True)
        except Exception as error:  # hostile or broken file: never trusted further
            raise ReplayError(f"the record of the call to {name} cannot be read "
                              f"({type(error).__name__})") from None
        if not isinstance(entry, dict) or entry.get("name") != name:
            got = entry.get("name") if isinstance(entry, dict) else type(entry).__name__
            raise ReplayError(f"the test called {name} where the kernel recorded a call to {got}")
        return entry


class Stub:
    """Stands for a student's function in the grader: answers from the record."""

    def __init__(self, name: str, records: Records, called: set[str]):
        self.name, self.records, self.called = name, records, called
        self.__name__ = self.__qualname__ = name  # as the kernel's recorded wrapper is named

    def __call__(self, *args, **kwargs):
        with torch._C.DisableTorchFunction():  # the test's own torch function modes see nothing
            return self._answer(args, kwargs)

    def _answer(self, args: tuple, kwargs: dict):
        entry = self.records.next(self.name)
        self.called.add(self.name)
        different = first_difference(entry.get("args"), fingerprint((args, kwargs)))
        if different:
            raise ReplayError(f"{self.name} was called with other inputs in the kernel than the "
                              f"test gives it ({different})")
        if "unrecordable" in entry:
            raise ReplayError(f"what {self.name} did could not be recorded "
                              f"({entry['unrecordable']})")
        apply_changes(entry.get("changes") or [], args, kwargs)
        if entry.get("rng") is not None:
            torch.set_rng_state(entry["rng"])
        if "raised" in entry:
            raise rebuild_error(entry["raised"])
        try:
            return decode(entry["result"])
        except Unrecordable as error:
            raise ReplayError(f"{self.name} returned {error}") from None


def rebuild_error(raised: dict) -> Exception:
    """The error a call raised in the kernel, as an exception of the same builtin kind."""
    kind = getattr(builtins, str(raised.get("builtin", "Exception")), Exception)
    message = str(raised.get("message", ""))
    if not isinstance(kind, type) or not issubclass(kind, Exception):
        return ReplayedInterrupt(f"{raised.get('type')} in the kernel: {message}")
    name = str(raised.get("type", kind.__name__))
    if name != kind.__name__:
        kind = type(name, (kind,), {"__module__": "student"})
    try:
        return kind(message)
    except TypeError:
        return Exception(f"{name}: {message}")


def _restore_tensor(tensor: torch.Tensor, state: dict) -> None:
    data = state["data"]
    with torch.no_grad():
        if tensor.shape == data.shape and tensor.dtype == data.dtype:
            tensor.copy_(data)
        else:
            tensor.data = data.clone()
    if tensor.is_leaf and tensor.is_floating_point():
        tensor.requires_grad_(bool(state.get("requires_grad")))
    grad = state.get("grad")
    tensor.grad = None if grad is None else grad.clone()


def apply_changes(changes: list, args: tuple, kwargs: dict) -> None:
    """Do to the grader's arguments what the call did to the kernel's, in place."""
    values = [*args, *kwargs.values()]
    for change in changes:
        position = change.get("arg")
        if not isinstance(position, int) or not 0 <= position < len(values):
            raise ReplayError("a recorded change names an argument the call does not have")
        target = values[position]
        if "tensor" in change and isinstance(target, torch.Tensor):
            _restore_tensor(target, change["tensor"])
        elif "dict" in change and isinstance(target, dict):
            for key, item in change["dict"].items():
                if "new" in item:
                    target[key] = decode(item["new"])
                elif isinstance(target.get(key), torch.Tensor):
                    _restore_tensor(target[key], item["tensor"])
            for key in change.get("removed", []):
                target.pop(key, None)
        elif "list" in change and isinstance(target, list):
            target[:] = decode(change["list"])
        else:
            raise ReplayError("a recorded change does not fit the argument it names")


def graded_names(source_nb) -> list[str]:
    """The functions and classes the source notebook's answer cells define."""
    names: list[str] = []
    for cell in source_nb.cells:
        if is_answer_cell(cell):
            names += [n for n in defined_names(cell.source) if n not in names]
    return names


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
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the kernel: the same arithmetic, bit for bit
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
