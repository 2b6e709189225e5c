"""A simulated accelerator: run code as if ``lab_utils.get_device()`` had picked Apple's MPS (or
a CUDA GPU), on a machine that has neither, and fail the way such a machine fails.

:class:`SimulatedDevice` is a ``torch.overrides.TorchFunctionMode``. Tensors stay on the CPU, but
the mode treats "the device" as a separate place:

- it **tags** every tensor created with ``device=<the device>`` or moved there with
  ``.to(device)`` (``.cuda()`` too, for a simulated CUDA device), and every tensor an operation
  computes from tagged tensors (``.grad`` and ``torch.autograd.grad`` results included); a tagged
  tensor reports ``.device`` as ``mps:0`` (or ``cuda:0``), ``.cpu()``/``.to("cpu")`` return an
  untagged copy;
- like MPS, it raises ``TypeError`` (MPS's own message) for a float64 tensor on the device:
  created there, moved there, or computed there (``.double()``);
- it raises "Expected all tensors to be on the same device" when an operation mixes tagged and
  untagged tensors, except untagged 0-dim tensors (scalars), which real devices accept too, and
  index tensors in ``x[index]``, which CUDA and MPS accept from the CPU;
- it raises ``RuntimeError`` when random numbers are drawn on the device's generator
  (``torch.randn(..., device=device)``, ``randn_like``/``normal_``... of a tagged tensor): a real
  device would not fail but would draw other numbers than the CPU for the same seed;
- ``.numpy()`` of a tagged tensor raises, as it does on a real device.

:func:`install` pushes the mode for good (in a notebook's first cell) and makes
``lab_utils.get_device()`` choose it.

What it cannot see (so a notebook that passes here may still fail on a real machine):

- numerics: every value is computed by the CPU, so MPS's and CUDA's own rounding (fast math,
  TF32, other reduction orders), their nondeterminism, speed and memory limits do not exist here;
  only "draws on the device" and float64 are caught, not results that merely differ a little;
- operations that never reach torch's Python API: the autograd engine's own kernels (their results
  are tagged when read through ``.grad``), ``torch.ops.aten`` called directly, TorchScript,
  ``torch.compile``d graphs, C++/CUDA extensions, NumPy code;
- device objects torch creates without a tensor: ``torch.Generator(device=...)``, the
  ``torch.cuda``/``torch.mps`` modules (synchronize, memory, streams) are not simulated;
- operators MPS has not implemented, dtypes it lacks other than float64 (e.g. complex128), and
  CUDA-only behaviour (asynchronous errors, peer devices);
- random draws other than the factories and samplers listed in ``RANDOM``: dropout, for one,
  draws on the device unnoticed;
- a tag lives on the Python tensor object: storage shared with an untagged tensor through views
  made outside torch's API (``.data_ptr`` tricks, NumPy views) is not followed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

TAG = "_simulated_device"
RANDOM = frozenset({
    "rand", "randn", "randint", "randperm", "rand_like", "randn_like", "randint_like", "normal",
    "bernoulli", "multinomial", "poisson", "binomial", "normal_", "uniform_", "random_",
    "exponential_", "geometric_", "cauchy_", "log_normal_", "bernoulli_", "_standard_gamma",
    "_sample_dirichlet"})
MPS_FLOAT64 = ("Cannot convert a MPS Tensor to float64 dtype as the MPS framework doesn't "
               "support float64. Please use float32 instead.")


class DeviceDrawError(RuntimeError):
    """Random numbers drawn on the simulated device's own generator."""


def is_tagged(tensor: Any) -> bool:
    """Whether ``tensor`` lives on the simulated device."""
    return isinstance(tensor, torch.Tensor) and getattr(tensor, TAG, False) is True


def _name(func) -> str:
    """``"add"``, ``"get:device"``/``"set:data"`` for property access, ``""`` if unknown."""
    name = getattr(func, "__name__", "")
    if name in ("__get__", "__set__"):
        owner = getattr(getattr(func, "__self__", None), "__name__", "")
        return f"{name[2:5]}:{owner}"
    return name


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    """The tensors in an argument: the value itself, or inside a list, tuple or dict."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


class SimulatedDevice(TorchFunctionMode):
    """Treat ``torch.device(kind)`` as a separate device whose tensors live on the CPU (see the
    module's docstring for what it checks and what it cannot see). ``counts`` counts the tensors
    put on the device and the operations run there."""

    def __init__(self, kind: str = "mps"):
        super().__init__()
        if kind not in ("mps", "cuda"):
            raise ValueError(f"kind: expected 'mps' or 'cuda', got {kind!r}")
        self.kind = kind
        self.device = torch.device(kind, 0)
        self.counts: Counter[str] = Counter()

    # -- where a device argument points ----------------------------------------------------
    def _target(self, where: Any) -> str | None:
        """``"device"``, ``"cpu"`` or ``None`` (no device given) for a device argument."""
        if where is None:
            return None
        if isinstance(where, torch.Tensor):
            return "device" if is_tagged(where) else "cpu"
        kind = torch.device(where).type
        if kind == self.kind:
            return "device"
        if kind == "cpu":
            return "cpu"
        raise RuntimeError(f"simulated {self.kind} machine: there is no {where} device here")

    def _tag(self, result: Any) -> Any:
        for tensor in _tensors(result):
            if self.kind == "mps" and tensor.dtype == torch.float64:
                raise TypeError(MPS_FLOAT64)
            setattr(tensor, TAG, True)
        return result

    def _draw_error(self, name: str) -> DeviceDrawError:
        return DeviceDrawError(
            f"{name}() drew random numbers on the {self.kind} device's own generator: the same "
            "seed gives other numbers there than on the CPU (simulated device). Draw on the CPU "
            "and move the result: torch.randn(...).to(device)")

    # -- the dispatcher ------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        name = _name(func)
        if name == "get:device":
            return self.device if is_tagged(args[0]) else func(*args, **kwargs)
        if name in ("get:is_mps", "get:is_cuda", "get:is_cpu"):
            return (name[7:] == (self.kind if is_tagged(args[0]) else "cpu"))
        if name in ("numpy", "__array__") and is_tagged(args[0]):
            raise TypeError(f"can't convert {self.device} device type tensor to numpy. Use "
                            "Tensor.cpu() to copy the tensor to host memory first.")
        if name == "set:data":
            func(*args, **kwargs)
            if is_tagged(args[1]):
                setattr(args[0], TAG, True)
            elif is_tagged(args[0]):
                delattr(args[0], TAG)
            return None
        if name in ("to", "cuda", "cpu"):
            return self._move(func, name, args, kwargs)
        if "device" in kwargs:
            target = self._target(kwargs["device"])
            if target == "device":
                if name in RANDOM:
                    raise self._draw_error(name)
                if self.kind == "mps" and kwargs.get("dtype") == torch.float64:
                    raise TypeError(MPS_FLOAT64)
                kwargs["device"] = "cpu"
                self.counts["created on the device"] += 1
                return self._tag(func(*args, **kwargs))
            if target == "cpu":
                return func(*args, **kwargs)
        return self._operation(func, name, args, kwargs)

    def _operation(self, func, name, args, kwargs):
        checked = list(args[:1]) if name in ("__getitem__", "__setitem__", "copy_") else [
            *args, *kwargs.values()]
        tensors = [t for value in checked for t in _tensors(value)]
        on_device = any(is_tagged(t) for t in tensors)
        if on_device:
            strangers = [t for t in tensors if not is_tagged(t) and t.dim() > 0]
            if strangers:
                raise RuntimeError(
                    "Expected all tensors to be on the same device, but found at least two "
                    f"devices, {self.device} and cpu! (simulated {self.kind}: a tensor of shape "
                    f"{tuple(strangers[0].shape)} is on the CPU)")
            if name in RANDOM:
                raise self._draw_error(name)
            self.counts["operations on the device"] += 1
        result = func(*args, **kwargs)
        return self._tag(result) if on_device else result

    def _move(self, func, name, args, kwargs):
        tensor, rest = args[0], list(args[1:])
        if name == "cuda":
            if self.kind != "cuda":
                raise AssertionError("Torch not compiled with CUDA enabled")
            target, rest, kwargs = "device", [], {k: v for k, v in kwargs.items()
                                                 if k != "device"}
            func = torch.Tensor.to
        elif name == "cpu":
            target = "cpu"
        else:
            target = self._target(kwargs.get("device"))
            for i, value in enumerate(rest):
                if isinstance(value, (str, torch.device)):
                    target = self._target(value)
                    rest[i] = "cpu"
                elif isinstance(value, torch.Tensor):
                    target = self._target(value)
                    rest[i] = value.dtype
            if "device" in kwargs:
                kwargs["device"] = "cpu"
        if target is None:  # a dtype change only: the tensor stays where it is
            return self._operation(func, name, args, kwargs)
        result = func(tensor, *rest, **kwargs)
        if target == "cpu":
            if result is tensor and is_tagged(tensor):
                result = tensor.view_as(tensor)  # a new, untagged tensor object
            return result
        if result is tensor and not is_tagged(tensor):
            result = tensor.clone()  # a move copies (and keeps the autograd graph)
        if not is_tagged(result):
            self.counts["moved to the device"] += 1
        return self._tag(result)


_installed: list[SimulatedDevice] = []


def install(kind: str = "mps") -> SimulatedDevice:
    """Push a :class:`SimulatedDevice` for the rest of this thread's life and make
    ``lab_utils.get_device()`` pick it (``LAB_DEVICE`` must be unset, ``"auto"`` or ``kind``).
    Only ``"mps"`` is supported here: a simulated CUDA machine would also need ``torch.cuda``."""
    if kind != "mps":
        raise ValueError(f"kind: install() simulates 'mps' only, got {kind!r}")
    import lab_utils.device

    lab_utils.device._mps_available = lambda: True
    mode = SimulatedDevice(kind)
    mode.__enter__()
    _installed.append(mode)
    return mode


def installed() -> SimulatedDevice | None:
    """The mode :func:`install` pushed, if any."""
    return _installed[-1] if _installed else None
