"""Toy data sets in 2-D, with scikit-learn's signatures, as torch tensors.

Every generator returns ``(X, y)`` with ``X`` of shape ``(n_samples, 2)`` (floating point)
and ``y`` of shape ``(n_samples,)`` (int64 class labels). Random numbers are always drawn on
the CPU from a ``torch.Generator`` seeded with ``random_state`` and then moved to ``device``,
so a seed gives the same data on every device.
"""

from __future__ import annotations

import math

import torch

from ._validate import (
    require_int,
    require_number,
    require_same_length,
    require_seed,
    require_tensor,
)

Dataset = tuple[torch.Tensor, torch.Tensor]


def _generator(random_state: int | None) -> torch.Generator:
    generator = torch.Generator()
    if random_state is None:
        generator.seed()
    else:
        generator.manual_seed(random_state)
    return generator


def _finish(X: torch.Tensor, y: torch.Tensor, noise: float | None, generator: torch.Generator,
            dtype: torch.dtype, device: torch.device | str | None, shuffle: bool = True) -> Dataset:
    """Shuffle, add Gaussian noise of standard deviation ``noise``, cast and move."""
    if shuffle:
        order = torch.randperm(len(y), generator=generator)
        X, y = X[order], y[order]
    if noise:
        X = X + noise * torch.randn(X.shape, generator=generator, dtype=torch.float64)
    return X.to(device=device, dtype=dtype), y.to(device=device)


def _check_common(n_samples: int, noise: float | None, random_state: int | None,
                  dtype: torch.dtype, minimum: int = 2) -> None:
    require_int("n_samples", n_samples, minimum=minimum)
    require_number("noise", noise, minimum=0.0, allow_none=True)
    require_seed("random_state", random_state)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype: expected a floating-point torch.dtype, got {dtype!r}")


def _split(n_samples: int, n_classes: int) -> list[int]:
    """Class sizes that differ by at most one and add up to ``n_samples``."""
    return [n_samples // n_classes + (k < n_samples % n_classes) for k in range(n_classes)]


def make_moons(n_samples: int = 100, *, noise: float | None = None, random_state: int | None = None,
               dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Dataset:
    """Two interleaving half circles (class 0 on top, class 1 below)."""
    _check_common(n_samples, noise, random_state, dtype)
    n_upper, n_lower = _split(n_samples, 2)
    t_upper = torch.linspace(0, math.pi, n_upper, dtype=torch.float64)
    t_lower = torch.linspace(0, math.pi, n_lower, dtype=torch.float64)
    X = torch.cat([torch.stack([t_upper.cos(), t_upper.sin()], 1),
                   torch.stack([1 - t_lower.cos(), 0.5 - t_lower.sin()], 1)])
    y = torch.cat([torch.zeros(n_upper, dtype=torch.int64), torch.ones(n_lower, dtype=torch.int64)])
    return _finish(X, y, noise, _generator(random_state), dtype, device)


def make_circles(n_samples: int = 100, *, noise: float | None = None, factor: float = 0.8,
                 random_state: int | None = None, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None) -> Dataset:
    """A large circle (class 0) around a smaller one (class 1) of radius ``factor``."""
    _check_common(n_samples, noise, random_state, dtype)
    require_number("factor", factor, minimum=0.0, maximum=1.0)
    if factor >= 1.0:
        raise ValueError(f"factor: expected a number in [0, 1), got {factor}")
    n_outer, n_inner = _split(n_samples, 2)
    t_outer = torch.linspace(0, 2 * math.pi, n_outer + 1, dtype=torch.float64)[:-1]
    t_inner = torch.linspace(0, 2 * math.pi, n_inner + 1, dtype=torch.float64)[:-1]
    X = torch.cat([torch.stack([t_outer.cos(), t_outer.sin()], 1),
                   factor * torch.stack([t_inner.cos(), t_inner.sin()], 1)])
    y = torch.cat([torch.zeros(n_outer, dtype=torch.int64), torch.ones(n_inner, dtype=torch.int64)])
    return _finish(X, y, noise, _generator(random_state), dtype, device)


def make_xor(n_samples: int = 100, *, noise: float | None = None, random_state: int | None = None,
             dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Dataset:
    """Points uniform in the square [-1, 1]²; class 1 where the two coordinates differ in sign."""
    _check_common(n_samples, noise, random_state, dtype)
    generator = _generator(random_state)
    X = 2 * torch.rand((n_samples, 2), generator=generator, dtype=torch.float64) - 1
    y = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).to(torch.int64)
    return _finish(X, y, noise, generator, dtype, device, shuffle=False)


def make_spirals(n_samples: int = 100, *, n_classes: int = 3, noise: float | None = None,
                 random_state: int | None = None, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None) -> Dataset:
    """``n_classes`` interleaved spiral arms, one per class, of radius growing from 0 to 1."""
    _check_common(n_samples, noise, random_state, dtype)
    require_int("n_classes", n_classes, minimum=2)
    if n_samples < n_classes:
        raise ValueError(f"n_samples: expected at least n_classes={n_classes}, got {n_samples}")
    arms, labels = [], []
    for k, size in enumerate(_split(n_samples, n_classes)):
        radius = torch.linspace(0.05, 1.0, size, dtype=torch.float64)
        angle = 2 * math.pi * k / n_classes + 1.5 * math.pi * radius
        arms.append(torch.stack([radius * angle.cos(), radius * angle.sin()], 1))
        labels.append(torch.full((size,), k, dtype=torch.int64))
    return _finish(torch.cat(arms), torch.cat(labels), noise, _generator(random_state), dtype, device)


def one_hot(y: torch.Tensor, num_classes: int | None = None, *,
            dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Labels ``(n,)`` → one-hot matrix ``(n, num_classes)`` of ``dtype`` on ``y``'s device.

    ``num_classes`` defaults to ``y.max() + 1``.
    """
    require_tensor("y", y, ndim=1, integer=True)
    if y.numel() and int(y.min()) < 0:
        raise ValueError(f"y: expected labels >= 0, got a minimum of {int(y.min())}")
    largest = int(y.max()) + 1 if y.numel() else 0
    if num_classes is None:
        num_classes = max(largest, 1)
    require_int("num_classes", num_classes, minimum=1)
    if largest > num_classes:
        raise ValueError(f"num_classes: expected more than the largest label {largest - 1}, got {num_classes}")
    return torch.nn.functional.one_hot(y, num_classes).to(dtype)


def train_test_split(X: torch.Tensor, y: torch.Tensor, *, test_size: float = 0.25,
                     random_state: int | None = None, shuffle: bool = True
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split rows into ``(X_train, X_test, y_train, y_test)``, as scikit-learn orders them.

    ``test_size`` is a fraction in (0, 1) or a number of rows; the shuffle is seeded by
    ``random_state`` and computed on the CPU, so it is the same on every device.
    """
    require_tensor("X", X)
    require_tensor("y", y)
    if X.ndim == 0 or y.ndim == 0:
        raise ValueError("X, y: expected tensors with a first (sample) dimension, got scalars")
    require_same_length(("X", "y"), X, y)
    n = X.shape[0]
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float)):
        raise TypeError(f"test_size: expected a fraction or a count, got {type(test_size).__name__}")
    n_test = test_size if isinstance(test_size, int) else math.ceil(test_size * n)
    if isinstance(test_size, float) and not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size: expected a fraction in (0, 1), got {test_size}")
    if not 0 < n_test < n:
        raise ValueError(f"test_size: expected between 1 and {n - 1} test rows, got {n_test}")
    require_seed("random_state", random_state)
    order = torch.randperm(n, generator=_generator(random_state)) if shuffle else torch.arange(n)
    order = order.to(X.device)
    test, train = order[:n_test], order[n_test:]
    return X[train], X[test], y[train.to(y.device)], y[test.to(y.device)]
