"""Name the likely mistake behind a wrong gradient, as a teaching assistant would.

:func:`diagnose` compares a wrong gradient with the correct one and returns one sentence
(the mistake and its fix) or ``None`` when the error matches no known pattern: a wrong
gradient that matches nothing gets no guess. It recognises, per tensor:

- NaN or infinity (an overflowing softmax, a log of 0);
- shape mistakes: a transposed matrix, a bias gradient shaped ``(n,)``, ``(1, n)`` or
  ``(B, n)`` instead of ``(n, 1)``, or summed over the wrong axis;
- a transpose hidden by a square shape;
- a mistake described by the caller (``suspects``: description -> the gradient it produces),
  also combined with a batch-size factor or a sign flip;
- a constant factor: the batch size (not averaged), its inverse (averaged twice), its square,
  a sign flip, or any other constant (2, 1/2, ...); with ``from_autograd=True`` a whole
  multiple k means ``.grad`` accumulated over k ``backward()`` calls.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch


def _exact(tensor: torch.Tensor) -> torch.Tensor:
    """A float64 copy on the CPU (every device's numbers fit; Apple's MPS has no float64)."""
    return tensor.detach().to("cpu", torch.float64)


def _tolerance(dtype: torch.dtype) -> float:
    """Relative tolerance for "the same numbers": loose enough for float32/float16 rounding."""
    return max(1e-3, 8 * torch.finfo(dtype).eps) if dtype.is_floating_point else 1e-3


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to rounding, relative to the size of ``b``."""
    if a.shape != b.shape:
        return False
    tol = max(_tolerance(a.dtype), _tolerance(b.dtype))
    a, b = _exact(a), _exact(b)
    scale = float(b.abs().max()) if b.numel() else 0.0
    if scale == 0.0:
        return bool((a == 0).all())
    return float((a - b).abs().max()) <= tol * scale


def scale_factor(value: torch.Tensor, reference: torch.Tensor) -> float | None:
    """The constant c with ``value ≈ c · reference`` (same shape), or ``None`` if there is none.

    c = 1 (the tensors agree) and c = 0 count as "none".
    """
    if value.shape != reference.shape or reference.numel() == 0:
        return None
    v, r = _exact(value).flatten(), _exact(reference).flatten()
    norm = float(r @ r)
    if norm == 0.0:
        return None
    c = float(v @ r) / norm
    if abs(c) < 1e-12 or abs(c - 1) < 1e-2 or not _close(value, c * reference):
        return None
    return c


def _near(c: float, target: float) -> bool:
    return abs(c - target) <= 1e-3 * abs(target)


def _whole_multiple(c: float) -> int | None:
    k = round(c)
    return k if k >= 2 and _near(c, k) else None


def _describe_factor(c: float, batch_size: int | None, from_autograd: bool,
                     numel: int) -> str | None:
    """The sentence for ``value = c · reference``, or ``None`` for a constant that means nothing."""
    B = batch_size if batch_size and batch_size > 1 else None
    k = _whole_multiple(c) if from_autograd else None
    if B and _near(c, B):
        if from_autograd:
            return (f"{B}x too large, the batch size: either the loss sums over the batch "
                    f"(average it: .mean() or reduction='mean') or .grad accumulated over {B} "
                    "backward() calls (call .grad.zero_() after each step)")
        return (f"{B}x too large, exactly the batch size: the gradient was summed over the "
                f"batch but not averaged; divide it by the batch size ({B})")
    if B and _near(c, 1 / B):
        return (f"{B}x too small, exactly the batch size: the batch average was taken twice "
                f"(e.g. in δʸ and again at the end); divide by the batch size ({B}) only once")
    if B and _near(c, B * B):
        return (f"{B * B}x too large, the batch size squared: multiplied by the batch size "
                f"where it should divide (*= instead of /=); divide the batch sum by {B} once")
    if B and _near(c, 1 / (B * B)):
        return (f"{B * B}x too small, the batch size squared: divided by the batch size three "
                "times; divide by it exactly once")
    if B and _near(c, -B):
        return (f"sign flipped and {B}x too large (the batch size): use ŷ - y, not y - ŷ, "
                f"and divide the batch sum by {B}")
    if B and _near(c, -1 / B):
        return (f"sign flipped and {B}x too small (the batch size): use ŷ - y, not y - ŷ, "
                "and divide by the batch size only once")
    if k is not None:
        text = (f"{k}x the gradient of a single step: .grad adds up across backward() calls; "
                "call .grad.zero_() (or set .grad = None) after each step")
        if B is None:
            text += f" (or, if the batch has {k} samples, average the loss instead of summing it)"
        return text
    if _near(c, -1.0):
        if from_autograd:
            return ("sign flipped: the loss has the wrong sign; cross-entropy is -Σ y log ŷ "
                    "(minimise it, don't maximise the log-likelihood)")
        return ("sign flipped: every entry has the opposite sign; look for a reversed "
                "subtraction (e.g. y - ŷ for ŷ - y) or a stray minus")
    if _near(c, 2.0):
        return ("2x too large: a stray factor 2, e.g. a term added twice or the 2 of d(x²)/dx "
                "where the loss already has ½; remove it")
    if _near(c, 0.5):
        return ("2x too small: a stray factor 1/2, e.g. a ½ that does not belong or a term "
                "that should be counted twice; remove it")
    if numel >= 3:  # on one or two numbers any ratio looks like a "factor": no guess there
        return (f"off by a constant factor {c:.4g}: every entry is scaled the same way, so look "
                "for a stray or missing constant multiplying the whole gradient")
    return None


def _values_note(value: torch.Tensor, reference: torch.Tensor) -> str:
    """After a shape fix: are the numbers themselves right?"""
    if value.is_floating_point() and _close(value.reshape(reference.shape), reference):
        return "; the values themselves are right"
    return "; the values are wrong too"


def _bias_shape_diagnosis(value: torch.Tensor, reference: torch.Tensor,
                          batch_size: int | None) -> str | None:
    """``reference`` is a bias gradient, shaped ``(n, 1)`` (a column) or ``(1, n)`` (a row)."""
    got, want = tuple(value.shape), tuple(reference.shape)
    n = reference.numel()
    column = want[1] == 1
    keep = "sum(dim=0, keepdim=True).T" if column else "sum(dim=0, keepdim=True)"
    if got == (n,):
        return (f"shape ({n},) instead of {want}: a bias gradient keeps the parameter's shape; "
                f"use {keep} or .reshape{want}" + _values_note(value, reference))
    if got == want[::-1]:
        return (f"shape {got} instead of {want}: the summed bias gradient has the wrong "
                "orientation; transpose it (.T)" + _values_note(value, reference))
    if value.ndim == 2 and n in got and 1 not in got and got != (n, n):
        axis = 0 if got[1] == n else 1
        samples = got[axis]
        if batch_size is None or samples == batch_size:
            return (f"shape {got}: one gradient per sample is still there; sum over the batch "
                    f"dimension (dim={axis}), divide by the batch size and keep the shape {want}")
    if batch_size and batch_size != n and value.numel() == batch_size and value.ndim <= 2:
        return (f"shape {got}: summed over the wrong axis, over the {n} units instead of over "
                f"the {batch_size} samples; sum over the batch dimension to get {want}")
    return None


def _shape_diagnosis(value: torch.Tensor, reference: torch.Tensor,
                     batch_size: int | None) -> str | None:
    got, want = tuple(value.shape), tuple(reference.shape)
    if reference.ndim == 2 and 1 in want and reference.numel() > 1:
        found = _bias_shape_diagnosis(value, reference, batch_size)
        if found:
            return found
    if value.ndim == 2 and reference.ndim == 2 and got == want[::-1]:
        if _close(value.T, reference):
            return f"transposed: you have a {got} matrix, the parameter is {want}; use .T"
        return (f"shape {got} is the transpose of {want}: the product is taken the wrong way "
                "round; check which factor is transposed")
    if reference.ndim == 1 and value.numel() == reference.numel():
        return (f"shape {got} instead of {want}: same number of entries, extra dimension; "
                f"return it with the parameter's shape (.reshape({want[0]}))")
    return None


def _suspect_diagnosis(value: torch.Tensor, reference: torch.Tensor,
                       suspects: Mapping[str, torch.Tensor], batch_size: int | None) -> str | None:
    """The first suspect that ``value`` equals, possibly times -1 or a batch-size factor."""
    B = batch_size if batch_size and batch_size > 1 else None
    extras = [(-1.0, "the sign is flipped too: δʸ was taken as y - ŷ, use ŷ - y")]
    if B:
        extras += [(B, f"also not averaged (divide by the batch size {B})"),
                   (1 / B, f"also averaged twice (divide by the batch size {B} only once)"),
                   (-B, f"also sign flipped and not averaged (ŷ - y, and divide by {B})")]
    candidates = []
    for description, suspect in suspects.items():
        if not isinstance(suspect, torch.Tensor) or suspect.shape != value.shape:
            continue
        suspect = suspect.detach().to(value.dtype)
        if _close(suspect, reference) or scale_factor(suspect, reference) is not None:
            continue  # indistinguishable from a right (or merely scaled) gradient: no evidence
        candidates.append((description, suspect))
    for description, suspect in candidates:
        if _close(value, suspect):
            return description
    for description, suspect in candidates:
        c = scale_factor(value, suspect)
        for factor, text in extras if c is not None else ():
            if _near(c, factor):
                return f"{description}; {text}"
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
    ``from_autograd`` says ``value`` was read from ``.grad`` after ``loss.backward()``, so a
    whole multiple k of ``reference`` is named as gradients accumulated over k steps.
    """
    if not isinstance(value, torch.Tensor) or not isinstance(reference, torch.Tensor):
        return None
    value, reference = value.detach(), reference.detach()
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        return ("NaN or infinity: exp() of large scores overflows or log() got 0; subtract each "
                "row's maximum before exp in the softmax (or use log_softmax)")
    if value.shape != reference.shape:
        return _shape_diagnosis(value, reference, batch_size)
    if not value.is_floating_point() or not reference.is_floating_point():
        return None
    if value.device != reference.device:
        return None
    reference = reference.to(value.dtype)
    found = _suspect_diagnosis(value, reference, suspects or {}, batch_size)
    if found:
        return found
    if value.ndim == 2 and value.shape[0] == value.shape[1] > 1 and not _close(reference, reference.T):
        if _close(value, reference.T):
            return (f"transposed (the matrix is square, so the shape did not show it): "
                    f"use .T on {name}")
    c = scale_factor(value, reference)
    return None if c is None else _describe_factor(c, batch_size, from_autograd, reference.numel())
