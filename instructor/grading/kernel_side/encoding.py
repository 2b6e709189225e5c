"""Values as plain data, both ways: what crosses from the kernel to the grader.

:func:`encode` turns what a student's function returned into containers (``dict`` with string
or int keys, ``list``, ``tuple``), numbers, strings, ``None`` and plain CPU tensors, with small
tagged dicts (``{"__kit__": kind, ...}``) for dtypes, devices, sizes, sets, numpy arrays and a
tensor's ``requires_grad`` and ``.grad``. That is all ``torch.load(..., weights_only=True)``
accepts, so the grader never unpickles anything else. :func:`decode` is the inverse.
:func:`fingerprint` summarises arguments so that the grader can tell whether it called the
function with the same inputs as the kernel did.

Data without a tensor in it can also be written as text (:func:`to_text`): a Python literal
that :func:`from_text` reads back with ``ast.literal_eval``. A kernel whose lab never imports
torch records that way and so never pays torch's import (seconds per kernel).

Used on both sides: inside the kernel (the recorder) and in the grader (the replay). torch is
imported here only where a tensor or an array has to be handled: :func:`capture_torch` fixes
the module the kernel uses (taken before any student code runs); otherwise the torch this
process has imported is used, and where there is none there is no tensor either.
"""

from __future__ import annotations

import ast
import math
import sys

TAG = "__kit__"
MAX_ITEMS = 200_000          # containers, strings: beyond this a value is not recorded
MAX_ELEMENTS = 20_000_000    # tensor elements per value


_captured: dict = {"torch": None}


class Unrecordable(ValueError):
    """Raised by :func:`decode` for a value the kernel could not record."""


def capture_torch() -> None:
    """From now on use the torch imported now (the kernel calls this before student code)."""
    _captured["torch"] = sys.modules["torch"]


def _torch(load: bool = False):
    """The torch in use: the captured one, else the one imported in this process (None when
    there is none, unless ``load``)."""
    module = _captured["torch"] or sys.modules.get("torch")
    if module is None and load:
        import torch as module
    return module


def is_tensor(value) -> bool:
    torch = _torch()
    return torch is not None and isinstance(value, torch.Tensor)


def _plain_tensor(value):
    tensor = value.detach()
    if tensor.is_sparse:
        tensor = tensor.to_dense()
    return tensor.to("cpu").clone().as_subclass(_torch().Tensor)


def tensor_state(value) -> dict:
    """A tensor with what autograd hangs on it: its values, ``requires_grad`` and ``.grad``."""
    if value.numel() > MAX_ELEMENTS:
        return {TAG: "unrecordable", "type": f"tensor of {value.numel()} elements"}
    grad = value.grad if value.is_leaf else None
    return {TAG: "tensor", "data": _plain_tensor(value), "requires_grad": bool(value.requires_grad),
            "grad": None if grad is None else _plain_tensor(grad), "device": str(value.device)}


def encode(value, _depth: int = 0):
    """``value`` as plain data (see the module's docstring); parts that cannot be recorded become
    ``{"__kit__": "unrecordable", "type": ...}``."""
    if _depth > 50:
        return {TAG: "unrecordable", "type": "a structure nested more than 50 deep"}
    if isinstance(value, int) and not isinstance(value, bool) and not _fits_64_bits(value):
        return {TAG: "int", "digits": str(value)}  # weights_only loads 64-bit ints only
    if value is None or isinstance(value, (bool, int, str)):
        if isinstance(value, str) and len(value) > MAX_ITEMS:
            return {TAG: "unrecordable", "type": "a string too long to record"}
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, complex):
        return {TAG: "complex", "real": value.real, "imag": value.imag}
    torch = _torch()
    if torch is not None:
        if isinstance(value, torch.Tensor):
            return tensor_state(value)
        if isinstance(value, torch.dtype):
            return {TAG: "dtype", "name": str(value).replace("torch.", "")}
        if isinstance(value, torch.device):
            return {TAG: "device", "name": str(value)}
        if isinstance(value, torch.Size):
            return {TAG: "size", "items": list(value)}
    numpy_value = _from_numpy(value)
    if numpy_value is not None:
        return numpy_value
    if isinstance(value, (list, tuple, dict, set, frozenset)) and len(value) > MAX_ITEMS:
        return {TAG: "unrecordable", "type": f"a {type(value).__name__} too long to record"}
    if isinstance(value, tuple):
        return tuple(encode(v, _depth + 1) for v in value)
    if isinstance(value, list):
        return [encode(v, _depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        return {TAG: "set", "items": [encode(v, _depth + 1) for v in value]}
    if isinstance(value, dict):
        if all(isinstance(k, (str, int)) and not isinstance(k, bool) for k in value):
            return {TAG: "dict", "items": {k: encode(v, _depth + 1) for k, v in value.items()}}
        return {TAG: "pairs", "items": [(encode(k, _depth + 1), encode(v, _depth + 1))
                                        for k, v in value.items()]}
    if isinstance(value, range):
        return {TAG: "range", "args": [value.start, value.stop, value.step]}
    return {TAG: "unrecordable", "type": type(value).__qualname__}


def _fits_64_bits(value: int) -> bool:
    return -(2 ** 63) <= value < 2 ** 63


def _from_numpy(value):
    kind = type(value).__module__
    if not kind.startswith("numpy"):
        return None
    import numpy as np
    if isinstance(value, np.ndarray) and value.dtype.kind in "biufc":
        return {TAG: "ndarray", "data": _torch(load=True).from_numpy(value.copy())}
    if isinstance(value, np.generic):
        return value.item()
    return None


def decode(data):
    """The value :func:`encode` recorded (tensors keep ``requires_grad`` and ``.grad``)."""
    if isinstance(data, tuple):
        return tuple(decode(v) for v in data)
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    kind = data.get(TAG)
    if kind is None:  # a plain dict (never written by encode, but tolerated)
        return {k: decode(v) for k, v in data.items()}
    if kind in ("dtype", "device", "size"):
        torch = _torch(load=True)
    if kind == "tensor":
        tensor = data["data"].clone()
        if data.get("requires_grad") and (tensor.is_floating_point() or tensor.is_complex()):
            tensor.requires_grad_(True)
        if data.get("grad") is not None:
            tensor.grad = data["grad"].clone()
        return tensor
    if kind == "dict":
        return {k: decode(v) for k, v in data["items"].items()}
    if kind == "pairs":
        return {decode(k): decode(v) for k, v in data["items"]}
    if kind == "set":
        return {decode(v) for v in data["items"]}
    if kind == "dtype":
        return getattr(torch, data["name"])
    if kind == "device":
        return torch.device(data["name"])
    if kind == "size":
        return torch.Size(data["items"])
    if kind == "int":
        return int(data["digits"])
    if kind == "complex":
        return complex(data["real"], data["imag"])
    if kind == "range":
        return range(*data["args"])
    if kind == "ndarray":
        return data["data"].numpy()
    if kind == "unrecordable":
        raise Unrecordable(f"the kernel could not record a value of type {data.get('type')}")
    raise Unrecordable(f"unknown recorded kind {kind!r}")


# ----------------------------------------------------------------------------- fingerprints


def fingerprint(value, _depth: int = 0):
    """A small summary of ``value`` (arguments of a call) to compare two calls' inputs."""
    if _depth > 20:
        return "..."
    if isinstance(value, int) and not isinstance(value, bool) and not _fits_64_bits(value):
        return str(value)[:200]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value if not isinstance(value, str) else value[:200]
    torch = _torch()
    if torch is not None and isinstance(value, torch.Tensor):
        data = value.detach().to("cpu")
        if data.is_sparse:
            data = data.to_dense()
        flat = data.reshape(-1)
        stats = []
        if flat.numel() and (flat.is_floating_point() or not flat.is_complex()):
            as64 = flat.to(torch.float64)
            finite = torch.nan_to_num(as64, nan=0.0, posinf=0.0, neginf=0.0)
            stats = [float(finite.sum()), float((finite * finite).sum()), float(as64[0]),
                     float(as64[-1]), int(torch.isnan(as64).sum())]
        return {TAG: "tensor", "shape": list(data.shape), "dtype": str(data.dtype), "stats": stats}
    if isinstance(value, (list, tuple)):
        return [fingerprint(v, _depth + 1) for v in list(value)[:64]] + (
            [f"... {len(value)} items"] if len(value) > 64 else [])
    if isinstance(value, dict):
        items = list(value.items())[:64]
        return {TAG: "dict", "items": [[str(k), fingerprint(v, _depth + 1)] for k, v in items]}
    if torch is not None and isinstance(value, (torch.dtype, torch.device, torch.Size)):
        return str(value)
    if callable(value):
        return {TAG: "callable", "name": getattr(value, "__qualname__", type(value).__qualname__)}
    return {TAG: "object", "type": type(value).__qualname__}


def to_text(data) -> str:
    """``data`` (what :func:`encode` and :func:`fingerprint` make) as a Python literal; a float
    that is not finite is written as bytes (``b"nan"``, ``b"inf"``, ``b"-inf"``), which encoded
    data never holds otherwise. TypeError for a tensor or anything else that is not plain."""
    return repr(_literal(data))


def from_text(text: str):
    """What :func:`to_text` wrote (``ast.literal_eval``: nothing is run, nothing unpickled)."""
    return _unliteral(ast.literal_eval(text))


def _literal(data):
    if isinstance(data, float):
        return data if math.isfinite(data) else repr(data).encode()
    if data is None or isinstance(data, (bool, int, str)):
        return data
    if isinstance(data, (tuple, list)):
        return type(data)(_literal(v) for v in data)
    if isinstance(data, dict):
        return {_literal(k): _literal(v) for k, v in data.items()}
    raise TypeError(f"a {type(data).__qualname__} cannot be written as text")


def _unliteral(data):
    if isinstance(data, bytes):
        return float(data.decode("ascii", "replace")) if data in (b"nan", b"inf", b"-inf") else data
    if isinstance(data, (tuple, list)):
        return type(data)(_unliteral(v) for v in data)
    if isinstance(data, dict):
        return {_unliteral(k): _unliteral(v) for k, v in data.items()}
    return data


# ----------------------------------------------------------------------------- comparisons


def first_difference(a, b, where: str = "arguments") -> str | None:
    """Where two fingerprints differ (None when they agree, numbers within rounding)."""
    if isinstance(a, float) or isinstance(b, float):
        if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
            return f"{where}: {a!r} and {b!r}"
        return None if _close(float(a), float(b)) else f"{where}: {a!r} and {b!r}"
    if type(a) is not type(b):
        return f"{where}: {a!r} and {b!r}"
    if isinstance(a, dict):
        if a.get(TAG) == "tensor":
            if a["shape"] != b["shape"] or a["dtype"] != b["dtype"]:
                return f"{where}: tensor {a['dtype']} {a['shape']} and {b['dtype']} {b['shape']}"
            if len(a["stats"]) != len(b["stats"]) or not all(
                    _close(x, y) for x, y in zip(a["stats"], b["stats"])):
                return f"{where}: tensors of shape {a['shape']} with other values"
            return None
        if set(a) != set(b):
            return f"{where}: {a!r} and {b!r}"
        for key in a:
            found = first_difference(a[key], b[key], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{where}: {len(a)} and {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, f"{where}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{where}: {a!r} and {b!r}"


def _close(x: float, y: float) -> bool:
    if x == y:  # infinities too
        return True
    if math.isinf(x) or math.isinf(y):
        return False
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return abs(x - y) <= 1e-6 * max(abs(x), abs(y)) + 1e-9
