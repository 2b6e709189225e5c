"""Tools for the labs' own test cells (students may read them; nothing here solves a lab).

When a lab is graded, each test cell runs twice: once in the student's kernel, and once more in
the grader's own process, where the student's functions are not run again: each call a test cell
made to one of them is answered with the value it returned in the kernel (recorded there). A
test helper that itself calls student code and returns plain data (numbers, strings, tensors,
and lists, tuples or dicts of them) is marked with :func:`runs_student_code`, so that the grader
replays the helper's result as a whole instead of re-running it (see docs/authoring.md).

The other tools:

- :func:`replaced` swaps names in the notebook's namespace for the length of a ``with`` block,
  so that a student's function that calls other graded functions (a training loop calling
  ``forward`` and ``backward``) can be tested with reference versions of those: each graded
  function is then judged on its own;
- :func:`without_autograd` and :func:`without_library_softmax` make a call raise when the code
  under test uses autograd, or a library softmax, where a lab asks for them to be written by hand;
- :func:`describe_mismatch` writes "expected X, got Y" with enough digits for X and Y to differ;
  :func:`tensor_mismatch` says where two tensors differ beyond a tolerance (without importing
  ``torch.testing``, whose first use costs seconds).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, TypeVar

Function = TypeVar("Function", bound=Callable)

MARK = "__runs_student_code__"
_MISSING = object()


def runs_student_code(function: Function) -> Function:
    """Mark ``function``, a test helper that calls the student's code, as one unit for grading:
    its return value (plain data only) is recorded in the kernel and replayed by the grader.

    Use it for helpers whose calls into student code return objects the grader cannot record
    (instances of a class the student wrote, generators, functions), and for helpers that run
    student code in a changed namespace (:func:`replaced`); the helper turns what it saw into
    plain data. Returns ``function`` itself, unchanged apart from the mark.
    """
    if not callable(function):
        raise TypeError(f"function: expected a function to mark, got {type(function).__name__}")
    setattr(function, MARK, True)
    return function


def is_student_code_helper(function: object) -> bool:
    """True for a function marked with :func:`runs_student_code`."""
    return callable(function) and getattr(function, MARK, False) is True


@contextlib.contextmanager
def replaced(namespace: MutableMapping[str, Any], **values: Any) -> Iterator[None]:
    """Bind ``namespace[name] = value`` for each keyword while the block runs, then put back what
    was there (or remove a name that was not), also when the block raises.

    In a notebook, ``namespace`` is ``globals()`` of a test helper: the notebook's namespace,
    where a student's function looks up the other functions it calls.
    """
    if not isinstance(namespace, MutableMapping):
        raise TypeError(f"namespace: expected a dict such as globals(), got {type(namespace).__name__}")
    saved = {name: namespace.get(name, _MISSING) for name in values}
    namespace.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is _MISSING:
                namespace.pop(name, None)
            else:
                namespace[name] = value


#: What computes gradients with autograd, or prepares for it: refused by :func:`without_autograd`.
AUTOGRAD = ("backward", "grad", "requires_grad_", "retain_grad", "set:requires_grad")


def _function_name(func) -> str:
    """``"exp"`` for torch.exp, ``"grad"`` for reading ``.grad``, ``"set:requires_grad"`` for
    assigning ``.requires_grad``."""
    name = getattr(func, "__name__", "")
    if name in ("__get__", "__set__"):
        owner = getattr(getattr(func, "__self__", None), "__name__", "")
        return owner if name == "__get__" else f"set:{owner}"
    return name


@contextlib.contextmanager
def without_autograd(what: str) -> Iterator[None]:
    """Make any use of autograd raise ``RuntimeError`` while the block runs: ``.backward()``,
    ``torch.autograd.grad`` (and what is built on it, such as ``torch.autograd.functional``),
    reading ``.grad``, ``requires_grad`` (as a method, an attribute or a factory argument), and
    any operation that records a graph (a ``torch.func`` transform raises too).

    ``what`` names the code under test in the message, e.g. ``"backward()"``. Calls that skip
    torch's Python API (``torch.ops.aten``) are not seen.
    """
    import torch
    from torch.overrides import TorchFunctionMode

    message = (f"{what} used autograd (requires_grad, .backward(), .grad, torch.autograd or a "
               "helper built on them): compute the gradients by hand")

    def refuse(_tensor):
        raise RuntimeError(message)

    class RefuseAutograd(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if _function_name(func) in AUTOGRAD or kwargs.get("requires_grad"):
                raise RuntimeError(message)
            return func(*args, **kwargs)

    with torch.autograd.graph.saved_tensors_hooks(refuse, refuse), RefuseAutograd():
        yield


#: Functions that compute a softmax (or build on one) for you.
LIBRARY_SOFTMAX = ("softmax", "log_softmax", "softmin", "special_softmax", "special_log_softmax",
                   "cross_entropy", "nll_loss", "gumbel_softmax")


@contextlib.contextmanager
def without_library_softmax(what: str) -> Iterator[None]:
    """Make torch's softmax family (``torch.softmax``, ``F.softmax``, ``Tensor.softmax``, their
    log versions, ``F.cross_entropy``, ``F.nll_loss``...) raise ``RuntimeError`` while the block
    runs. ``what`` names the code under test in the message, e.g. ``"forward()"``.

    It sees calls that go through torch's Python API (functions, tensor methods, modules such as
    ``nn.Softmax``); it cannot see ``torch.ops.aten`` called directly.
    """
    from torch.overrides import TorchFunctionMode

    class RefuseSoftmax(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            name = _function_name(func).lstrip("_")
            if name in LIBRARY_SOFTMAX:
                raise RuntimeError(f"{what} called torch's {name}: write the softmax yourself "
                                   "(exp of the scores minus each row's maximum, divided by the "
                                   "row's sum)")
            return func(*args, **(kwargs or {}))

    with RefuseSoftmax():
        yield


def describe_mismatch(got: Any, expected: Any) -> str:
    """``"expected X, got Y"`` for two numbers (floats, ints or one-element tensors), with just
    enough significant digits (at least 4) for X and Y to read differently when they differ."""
    got_value, expected_value = _as_float("got", got), _as_float("expected", expected)
    for digits in range(4, 18):
        got_text, expected_text = f"{got_value:.{digits}g}", f"{expected_value:.{digits}g}"
        if got_text != expected_text or got_value == expected_value or math.isnan(got_value):
            break
    return f"expected {expected_text}, got {got_text}"


def _as_float(name: str, value: Any) -> float:
    if hasattr(value, "numel") and hasattr(value, "item"):
        if value.numel() != 1:
            raise ValueError(f"{name}: expected a number or a one-element tensor, got a tensor "
                             f"of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    return float(value)


def tensor_mismatch(got: Any, expected: Any, *, rtol: float, atol: float) -> str | None:
    """``None`` when ``|got - expected| <= atol + rtol * |expected|`` holds everywhere (tensors of
    the same shape, compared on ``expected``'s dtype); otherwise where and by how much they
    differ most, e.g. ``"largest difference 0.25 at index (0, 1): expected 0.5, got 0.75
    (allowed: 1e-06 + 1e-05 * |expected|)"``. Shapes must match (else ``ValueError``)."""
    import torch

    if not isinstance(got, torch.Tensor) or not isinstance(expected, torch.Tensor):
        raise TypeError(f"got, expected: expected two tensors, got {type(got).__name__} and "
                        f"{type(expected).__name__}")
    if got.shape != expected.shape:
        raise ValueError(f"got: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}")
    got = got.detach().to(expected.dtype)
    expected = expected.detach()
    difference = (got - expected).abs()
    allowed = atol + rtol * expected.abs()
    bad = ~(difference <= allowed)  # NaN differences count as bad
    if not bool(bad.any()):
        return None
    excess = torch.where(bad, torch.nan_to_num(difference - allowed, nan=float("inf")),
                         torch.zeros_like(difference))
    flat = int(excess.reshape(-1).argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), expected.shape))
    count = int(bad.sum())
    where = f" at index {index}" if index else ""
    return (f"{count} of {expected.numel()} entries differ; the largest difference is "
            f"{float(difference.reshape(-1)[flat]):.3g}{where}: "
            f"{describe_mismatch(got.reshape(-1)[flat], expected.reshape(-1)[flat])} "
            f"(allowed: {atol:g} + {rtol:g} * |expected|)")
