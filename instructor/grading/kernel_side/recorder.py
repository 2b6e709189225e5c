"""Inside the kernel: record what the student's functions give the tests, for the grader to replay.

While a test cell runs, each call it makes to a graded function (or to a test helper marked
``runs_student_code``) is recorded as one file ``.kit-record/<test>/<n>.pt``: a fingerprint of
the arguments, the value returned or the error raised, how the call changed its arguments in
place, and torch's random state afterwards. Calls the student's code makes inside such a call
are not recorded: while it runs, the notebook's names point at the student's own functions
again, so a recursive function costs no extra stack frames.

Everything is plain containers, numbers, strings and tensors. In a kernel whose lab uses torch
each record is written with ``torch.save`` (``<n>.pt``), for the grader to read with
``torch.load(..., weights_only=True)``; in one whose lab does not, as a Python literal
(``<n>.txt``, see ``encoding.to_text``), and torch is imported only if a value needs it. Nothing
here decides a verdict; what the student's code does to these records only costs the student
points.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys

from .encoding import capture_torch, encode, fingerprint, is_tensor, tensor_state, to_text

RECORD_DIR = ".kit-record"
MARK = "__runs_student_code__"

_state: dict = {"test": None, "count": 0, "depth": 0, "ns": None, "originals": {}, "wrappers": {}}
# torch's functions the recorder uses, taken by :func:`install` before any student code runs
# (None: the lab does not use torch)
_torch: dict = {"save": None, "rng": None, "equal": None, "bookkeeping": contextlib.nullcontext}


def install() -> None:
    """Take torch's functions now if the lab's imports brought torch in (kernel start)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    capture_torch()
    _torch.update(save=torch.save, rng=torch.get_rng_state, equal=torch.equal,
                  bookkeeping=torch._C.DisableTorchFunction)  # no torch function mode sees us


def _bookkeeping():
    return _torch["bookkeeping"]()


def _get_rng_state():
    return None if _torch["rng"] is None else _torch["rng"]()


def _save(entry: dict, path: str) -> None:
    """``path.pt`` with torch.save where the lab uses torch; else ``path.txt`` as a literal, or
    ``path.pt`` after all for a value only torch can store (an array, a tensor)."""
    save = _torch["save"]
    if save is None:
        try:
            text = to_text(entry)
        except TypeError:
            import torch
            save = torch.save
        else:
            with open(path + ".txt", "w", encoding="utf-8") as file:
                file.write(text)
            return
    save(entry, path + ".pt")


def begin_test(namespace: dict, test_id: str, names: list[str]) -> None:
    """Start recording the test cell ``test_id``: wrap the graded functions ``names`` and every
    marked helper found in ``namespace`` (the notebook's)."""
    end_test()
    folder = os.path.join(RECORD_DIR, test_id)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)
    targets = {n: namespace[n] for n in names if callable(namespace.get(n))}
    targets.update({n: v for n, v in list(namespace.items())
                    if callable(v) and getattr(v, MARK, False) is True})
    wrappers = {name: _wrap(name, fn) for name, fn in targets.items()}
    namespace.update(wrappers)
    _state.update(test=test_id, count=0, depth=0, ns=namespace, originals=targets,
                  wrappers=wrappers)


def end_test() -> None:
    """Stop recording and give the notebook its own functions back."""
    _swap(to_originals=True)
    _state.update(test=None, originals={}, wrappers={})


def _swap(*, to_originals: bool) -> None:
    namespace = _state["ns"]
    if namespace is None:
        return
    for name, wrapper in _state["wrappers"].items():
        original = _state["originals"][name]
        current, wanted = (wrapper, original) if to_originals else (original, wrapper)
        if namespace.get(name) is current:
            namespace[name] = wanted


class _Recorded:
    """Stands for a graded function during a test cell: records each outermost call; every
    other use (attributes such as ``cache_info``) goes to the function itself."""

    def __init__(self, name: str, function):
        self.__dict__.update(_name=name, _function=function, __name__=name, __qualname__=name,
                             __doc__=getattr(function, "__doc__", None))

    def __getattr__(self, attribute):
        return getattr(self._function, attribute)

    def __call__(self, *args, **kwargs):
        function, name = self._function, self._name
        if _state["test"] is None or _state["depth"]:
            return function(*args, **kwargs)
        with _bookkeeping():  # a test's own torch function modes must not see the recorder
            entry = {"name": name, "args": fingerprint((args, kwargs))}
            before = _identities(args, kwargs)
            rng_before = _get_rng_state()
        _swap(to_originals=True)
        _state["depth"] += 1
        try:
            result = function(*args, **kwargs)
        except BaseException as error:
            with _bookkeeping():
                entry["raised"] = _describe_error(error)
                _finish(entry, args, kwargs, before, rng_before)
            raise
        finally:
            _state["depth"] -= 1
            if _state["test"] is not None:
                _swap(to_originals=False)
        with _bookkeeping():
            entry["result"] = encode(result)
            _finish(entry, args, kwargs, before, rng_before)
        return result


def _wrap(name: str, function) -> _Recorded:
    return _Recorded(name, function)


def _identities(args, kwargs) -> list:
    """For each argument: the ids and version counters of the tensors it holds (top level, or
    values of a dict / items of a list)."""
    out = []
    for value in [*args, *kwargs.values()]:
        if is_tensor(value):
            out.append(_tensor_mark(value))
        elif isinstance(value, dict):
            out.append({k: (id(v), _tensor_mark(v)) for k, v in value.items()})
        elif isinstance(value, list):
            out.append([(id(v), _tensor_mark(v)) for v in value])
        else:
            out.append(None)
    return out


def _tensor_mark(value):
    if not is_tensor(value):
        return None
    grad = value.grad
    return (value._version, value.requires_grad, None if grad is None else (id(grad), grad._version))


def _changes(args, kwargs, before: list) -> list:
    """How the call changed its arguments in place (see ``stubs.apply_changes`` in the grader)."""
    changes = []
    for position, (value, marks) in enumerate(zip([*args, *kwargs.values()], before)):
        if is_tensor(value):
            if _tensor_mark(value) != marks:
                changes.append({"arg": position, "tensor": tensor_state(value)})
        elif isinstance(value, dict) and isinstance(marks, dict):
            entries = {}
            for key, item in value.items():
                old = marks.get(key)
                if old is None or old[0] != id(item):
                    entries[key] = {"new": encode(item)}
                elif is_tensor(item) and _tensor_mark(item) != old[1]:
                    entries[key] = {"tensor": tensor_state(item)}
            removed = [k for k in marks if k not in value]
            if entries or removed:
                changes.append({"arg": position, "dict": entries, "removed": removed})
        elif isinstance(value, list) and isinstance(marks, list):
            if len(value) != len(marks) or any(id(v) != m[0] or _tensor_mark(v) != m[1]
                                               for v, m in zip(value, marks)):
                changes.append({"arg": position, "list": encode(value)})
    return changes


def _describe_error(error: BaseException) -> dict:
    kinds = [t.__name__ for t in type(error).__mro__ if t.__module__ == "builtins"]
    return {"type": type(error).__name__, "builtin": kinds[0] if kinds else "Exception",
            "message": str(error)[:20_000]}


def _finish(entry: dict, args, kwargs, before: list, rng_before) -> None:
    if _state["test"] is None:
        return
    try:
        entry["changes"] = _changes(args, kwargs, before)
        rng = _get_rng_state()
        entry["rng"] = rng if rng is not None and not _torch["equal"](rng, rng_before) else None
    except Exception as error:  # a record that cannot be made is recorded as such
        entry["changes"], entry["rng"] = [], None
        entry["unrecordable"] = f"{type(error).__name__}: {error}"[:500]
    path = os.path.join(RECORD_DIR, _state["test"], str(_state["count"]))
    _state["count"] += 1
    try:
        _save(entry, path)
    except Exception as error:
        _save({"name": entry["name"], "args": entry["args"],
               "unrecordable": f"{type(error).__name__}: {error}"[:500]}, path)
