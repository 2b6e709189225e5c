"""Which device the labs compute on."""

from __future__ import annotations

import os

import torch

ENV_VAR = "LAB_DEVICE"
_CHOICES = ("auto", "cpu", "cuda", "mps")


def get_device(prefer: str | None = None) -> torch.device:
    """The device to compute on: CUDA if present, else Apple MPS, else CPU.

    ``prefer`` (or the environment variable ``LAB_DEVICE``) forces a choice among
    ``"auto"``, ``"cpu"``, ``"cuda"`` (``"cuda:1"`` too) and ``"mps"``; graders set
    ``LAB_DEVICE=cpu`` so that every submission is graded the same way. Asking for a
    device that is not there raises ``RuntimeError`` rather than silently falling back.
    """
    source = "prefer" if prefer is not None else ENV_VAR
    choice = prefer if prefer is not None else os.environ.get(ENV_VAR, "auto")
    if not isinstance(choice, str):
        raise TypeError(f"{source}: expected one of {_CHOICES}, got {type(choice).__name__} {choice!r}")
    choice = choice.strip().lower() or "auto"
    kind = choice.split(":")[0]
    if kind not in _CHOICES:
        raise ValueError(f"{source}: expected one of {_CHOICES}, got {choice!r}")
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{source}: asked for {choice!r}, but torch sees no CUDA device")
    if kind == "mps" and not _mps_available():
        raise RuntimeError(f"{source}: asked for 'mps', but this torch build has no usable MPS")
    return torch.device(choice)


def describe_device(device: torch.device | str | None = None) -> str:
    """The device in a few words, for a sentence such as "This notebook computes on ...":
    ``'the CPU (1 thread)'``, ``'the GPU cuda:0 (NVIDIA H100 80GB HBM3)'`` or
    ``'the Apple-silicon GPU (mps)'``. Without an argument, the device :func:`get_device` picks.
    """
    device = torch.device(device) if device is not None else get_device()
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"the GPU cuda:{index} ({torch.cuda.get_device_name(index)})"
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"the CPU ({threads} thread{'s' if threads != 1 else ''})"
    if device.type == "mps":
        return "the Apple-silicon GPU (mps)"
    return f"the device {device}"


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
