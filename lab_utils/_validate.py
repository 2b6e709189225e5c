"""Argument checks shared by every public function: each error names the argument,
what was expected and what came."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch


def describe(value: Any) -> str:
    """A short description of ``value`` for error messages."""
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)}, dtype {value.dtype}, on {value.device}"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def require_tensor(
    name: str,
    value: Any,
    *,
    ndim: int | None = None,
    shape: Sequence[int | None] | None = None,
    floating: bool = False,
    integer: bool = False,
    finite: bool = False,
) -> torch.Tensor:
    """Check that ``value`` is a tensor of the given rank/shape/kind; ``None`` in ``shape`` means any size."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {describe(value)}")
    if shape is not None:
        ndim = len(shape)
    if ndim is not None and value.ndim != ndim:
        want = f"shape {format_shape(shape)}" if shape is not None else f"a {ndim}-D tensor"
        raise ValueError(f"{name}: expected {want}, got shape {tuple(value.shape)}")
    if shape is not None and any(w is not None and w != s for w, s in zip(shape, value.shape)):
        raise ValueError(f"{name}: expected shape {format_shape(shape)}, got shape {tuple(value.shape)}")
    if floating and not value.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {value.dtype}")
    if integer and (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool):
        raise TypeError(f"{name}: expected an integer tensor of labels, got dtype {value.dtype}")
    if finite and value.is_floating_point() and not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value)).sum())
        raise ValueError(f"{name}: expected finite values, got {bad} NaN or infinite entries")
    return value


def format_shape(shape: Sequence[int | None] | None) -> str:
    if shape is None:
        return "any"
    return "(" + ", ".join("*" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def require_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {describe(value)}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return value


def require_number(name: str, value: Any, *, minimum: float | None = None,
                   maximum: float | None = None, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a number, got {describe(value)}")
    if value != value:  # NaN
        raise ValueError(f"{name}: expected a number, got NaN")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected a number >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}: expected a number <= {maximum}, got {value}")
    return float(value)


def require_seed(name: str, value: Any) -> int | None:
    if value is None:
        return None
    return require_int(name, value, minimum=0)


def require_keys(name: str, mapping: Any, keys: Iterable[str]) -> Mapping[str, Any]:
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{name}: expected a dict, got {describe(mapping)}")
    missing = [k for k in keys if k not in mapping]
    if missing:
        raise KeyError(f"{name}: expected keys {sorted(keys)}, missing {missing} (got {sorted(mapping)})")
    return mapping


def require_same_length(names: tuple[str, str], a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{names[1]}: expected {a.shape[0]} rows to match {names[0]}, got {b.shape[0]}"
        )
