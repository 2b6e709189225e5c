"""Name the likely mistake behind a wrong gradient, as a teaching assistant would.

:func:`diagnose` compares a wrong gradient with the correct one and returns one sentence
(the mistake and its fix) or ``None`` when the error matches no known pattern: a wrong
gradient that matches nothing gets no guess.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to rounding, relative to the size of ``b``."""
    if a.shape != b.shape:
        return False
    a, b = a.to(torch.float64), b.to(torch.float64)
    scale = float(b.abs().max()) if b.numel() else 0.0
    if scale == 0.0:
        return bool((a == 0).all())
    return float((a - b).abs().max()) <= 1e-3 * scale


def _factor(value: torch.Tensor, reference: torch.Tensor) -> float | None:
    """The constant c with value ≈ c · reference, if there is one (c ≠ 1)."""
    v, r = value.to(torch.float64).flatten(), reference.to(torch.float64).flatten()
    norm = float(r @ r)
    if norm == 0.0:
        return None
    c = float(v @ r) / norm
    if abs(c) < 1e-12 or abs(c - 1) < 1e-6 or not _close(v, c * r):
        return None
    return c


def _near(c: float, target: float) -> bool:
    return abs(c - target) <= 1e-3 * abs(target)


def _describe_factor(c: float, batch_size: int | None) -> str:
    if batch_size and batch_size > 1:
        if _near(c, batch_size):
            return (f"{batch_size}x too large, the batch size: sum over the batch, then divide "
                    "by the batch size (average, don't just sum)")
        if _near(c, 1 / batch_size):
            return (f"{batch_size}x too small, the batch size: the batch average was taken twice "
                    "(divide by the batch size once)")
        if _near(c, -batch_size) or _near(c, -1 / batch_size):
            return ("sign flipped and off by the batch size: use ŷ - y (not y - ŷ) and divide by "
                    "the batch size exactly once")
    if _near(c, -1.0):
        return ("sign flipped: the output error is δʸ = ŷ - y (not y - ŷ), and gradient descent "
                "subtracts the gradient")
    return f"off by a constant factor {c:.4g}: look for a stray or missing constant (2, 1/2, ...)"


def _shape_diagnosis(value: torch.Tensor, reference: torch.Tensor,
                     batch_size: int | None) -> str | None:
    got, want = tuple(value.shape), tuple(reference.shape)
    if value.ndim == 2 and reference.ndim == 2 and got == want[::-1]:
        if _close(value.T, reference):
            return f"transposed: you have a {got} matrix, the parameter is {want}; use .T"
        return f"shape {got} is the transpose of {want}: check which side of the product is transposed"
    if reference.ndim == 2 and want[1] == 1:  # a column bias gradient (n, 1)
        n = want[0]
        if got == (n,):
            if _close(value.reshape(n, 1), reference):
                return (f"shape ({n},) instead of ({n}, 1): a bias gradient keeps the parameter's "
                        "shape; sum with keepdim=True and transpose, or reshape(-1, 1)")
            return f"shape ({n},) instead of ({n}, 1) (and the values differ too)"
        if got == (1, n):
            return f"shape (1, {n}) instead of ({n}, 1): transpose the summed row (.T)"
        if value.ndim == 2 and got[1] == n and got[0] != n:
            mean = value.to(torch.float64).mean(0).reshape(n, 1)
            total = value.to(torch.float64).sum(0).reshape(n, 1)
            if _close(mean, reference) or _close(total, reference) or got[0] == batch_size:
                return (f"shape {got}: one row per sample; the bias gradient must be summed over "
                        f"the batch dimension (dim=0) and averaged, giving ({n}, 1)")
        if value.ndim == 2 and got[0] == n and got[1] != 1:
            return (f"shape {got}: the batch dimension is still there; sum over it "
                    f"(dim=1 here) and average, giving ({n}, 1)")
        if value.ndim == 2 and got[1] == 1 and got[0] != n:
            return (f"shape {got}: summed over the wrong axis; the bias gradient sums over the "
                    f"batch (samples), not over the {n} units")
    return None


def diagnose(name: str, value: torch.Tensor, reference: torch.Tensor, *,
             batch_size: int | None = None,
             suspects: Mapping[str, torch.Tensor] | None = None,
             from_autograd: bool = False) -> str | None:
    """One sentence naming the likely mistake that turns ``reference`` into ``value``, or ``None``.

    ``value`` is a student's gradient for parameter ``name``, ``reference`` the correct one.
    ``batch_size`` lets batch-size factors be named; ``suspects`` maps a description of a
    known mistake to the gradient that mistake would produce (computed by the caller, e.g.
    by autograd through a deliberately altered network); the first that matches is returned.
    ``from_autograd`` says ``value`` was read from ``.grad`` after ``loss.backward()``.
    """
    if not isinstance(value, torch.Tensor) or not isinstance(reference, torch.Tensor):
        return None
    value, reference = value.detach(), reference.detach()
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        return ("NaN or infinity: softmax of large scores overflows exp(); subtract each row's "
                "maximum before exp, and never take log of 0")
    if value.shape != reference.shape:
        return _shape_diagnosis(value, reference, batch_size)
    if not value.is_floating_point() or value.device != reference.device:
        return None
    reference = reference.to(value.dtype)
    for description, suspect in (suspects or {}).items():
        if isinstance(suspect, torch.Tensor) and _close(value, suspect.detach().to(value.dtype)):
            return description
    if value.ndim == 2 and value.shape[0] == value.shape[1] > 1 and not _close(reference, reference.T):
        if _close(value, reference.T):
            return f"transposed (the matrix is square, so the shape did not show it): use .T on {name}"
    c = _factor(value, reference)
    return None if c is None else _describe_factor(c, batch_size)
