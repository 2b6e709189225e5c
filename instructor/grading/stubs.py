"""A test's calls to the student's functions, answered in the grader from the kernel's records.

In the kernel, the recorder (:mod:`.kernel_side.recorder`) writes one file per call a test cell
made to a graded function: a fingerprint of the arguments, what the call returned or raised, how
it changed its arguments in place and the random state after it. In the grader, :class:`Records`
reads them back in order (``torch.load(weights_only=True)`` for ``.pt``, ``ast.literal_eval``
for ``.txt``, never anything else) and a :class:`Stub` stands for each student function: it
checks that the test calls it with the same inputs as in the kernel, redoes the call's changes to
the grader's own arguments (:func:`apply_changes`) and returns the recorded value, or raises the
recorded error as the same builtin kind (:func:`rebuild_error`). Anything that does not fit is a
:class:`ReplayError`.
"""

from __future__ import annotations

import builtins
import contextlib
import sys
from pathlib import Path

from .kernel_side.encoding import (
    Unrecordable,
    decode,
    fingerprint,
    first_difference,
    from_text,
    is_tensor,
)

MAX_RECORD_BYTES = {".pt": 256 * 1024 * 1024, ".txt": 32 * 1024 * 1024}  # a literal's AST is big


class ReplayError(Exception):
    """The recorded calls do not fit the test: missing, out of order, other inputs."""


class ReplayedInterrupt(Exception):
    """The call was interrupted in the kernel (a time limit, or an exit)."""


class Records:
    """The recorded calls of one test cell, in order."""

    def __init__(self, folder: Path):
        files = [p for p in folder.iterdir() if p.suffix in MAX_RECORD_BYTES
                 and p.stem.isdigit()] if folder.is_dir() else []
        self.files = sorted(files, key=lambda p: (int(p.stem), p.suffix))
        self.used = 0

    def next(self, name: str) -> dict:
        if self.used >= len(self.files):
            raise ReplayError(f"no record of the call to {name} (the kernel made "
                              f"{len(self.files)} recorded calls in this test)")
        path = self.files[self.used]
        self.used += 1
        if path.stat().st_size > MAX_RECORD_BYTES[path.suffix]:
            raise ReplayError(f"the record of the call to {name} is too large")
        try:
            if path.suffix == ".pt":
                import torch
                entry = torch.load(path, weights_only=True)
            else:
                entry = from_text(path.read_text(encoding="utf-8"))
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
        torch = sys.modules.get("torch")  # the test's own torch function modes see nothing
        with torch._C.DisableTorchFunction() if torch else contextlib.nullcontext():
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
        if entry.get("rng") is not None:  # a .pt record: torch is in
            sys.modules["torch"].set_rng_state(entry["rng"])
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


def _restore_tensor(tensor, state: dict) -> None:
    import torch
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
        if "tensor" in change and is_tensor(target):
            _restore_tensor(target, change["tensor"])
        elif "dict" in change and isinstance(target, dict):
            for key, item in change["dict"].items():
                if "new" in item:
                    target[key] = decode(item["new"])
                elif is_tensor(target.get(key)):
                    _restore_tensor(target[key], item["tensor"])
            for key in change.get("removed", []):
                target.pop(key, None)
        elif "list" in change and isinstance(target, list):
            target[:] = decode(change["list"])
        else:
            raise ReplayError("a recorded change does not fit the argument it names")
