"""Check a hand-written backward pass of Lab 3's MLP step by step against autograd.

The lecture's backward pass goes from the loss back to the parameters, per sample (row k of each
(B, n) matrix belongs to sample k):

=============  ==========================  ========  =====================
key            value                       shape     math
=============  ==========================  ========  =====================
``delta_y``    ŷ − y                       (B, ny)   δʸ = ∂ℓ/∂ỹ
``grad_h``     δʸ Wʸ                       (B, nh)   ∂ℓ/∂h
``delta_h``    ∂ℓ/∂h ⊙ (1 − h²)            (B, nh)   δʰ = ∂ℓ/∂h̃
=============  ==========================  ========  =====================

and then the four parameter gradients, averaged over the batch. Autograd has the same
intermediate values when the graph is told to keep them (``retain_grad``):
:func:`backward_reference` returns them. :func:`compare_backward_steps` compares a student's
values with autograd's in that order and names the FIRST step that goes wrong, with the likely
mistake made at that step (e.g. "∂ℓ/∂h is right but δʰ is wrong: the tanh derivative is
missing"); the parameter rows keep the diagnoses of :func:`lab_utils.mlp.compare_mlp_gradients`.
δ's that already include the 1/B of the mean are accepted too, provided all three do.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from ._validate import describe
from .checking import GradientReport, TensorCheck, compare_gradients, finish_report
from .diagnosis import _close, _near, scale_factor
from .mlp import PARAM_NAMES, check_mlp_inputs, compare_mlp_gradients

#: The intermediate values, in the order the backward pass computes them, with their names.
STEPS = {"delta_y": "δʸ", "grad_h": "∂ℓ/∂h", "delta_h": "δʰ"}
FORMULAS = {"delta_y": "δʸ = ŷ - y", "grad_h": "∂ℓ/∂h = δʸ Wʸ",
            "delta_h": "δʰ = ∂ℓ/∂h ⊙ (1 - h²)"}
BACKWARD_ORDER = ("Wy", "by", "Wh", "bh")


def backward_reference(params: Mapping[str, torch.Tensor], X: torch.Tensor,
                       Y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Autograd's values of every quantity of the backward pass, as a dict: ``delta_y`` (B, ny),
    ``grad_h`` (B, nh) and ``delta_h`` (B, nh) per sample, and ``Wh``, ``bh``, ``Wy``, ``by``
    (shaped like ``params``) averaged over the batch. Same dtype and device as ``X``.

    Per-sample values are the gradients of the *summed* loss with respect to the retained
    intermediates ỹ, h and h̃ (each sample only touches its own row).
    """
    check_mlp_inputs(params, X, Y)
    leaves = {k: params[k].detach().clone().requires_grad_(True) for k in PARAM_NAMES}
    with torch.enable_grad():
        htilde = F.linear(X.detach(), leaves["Wh"], leaves["bh"][:, 0])
        h = torch.tanh(htilde)
        ytilde = F.linear(h, leaves["Wy"], leaves["by"][:, 0])
        for value in (htilde, h, ytilde):
            value.retain_grad()
        F.cross_entropy(ytilde, Y.detach(), reduction="sum").backward()
    batch = X.shape[0]
    return {"delta_y": ytilde.grad, "grad_h": h.grad, "delta_h": htilde.grad,
            **{k: leaves[k].grad / batch for k in BACKWARD_ORDER}}


def _forward_values(params, X) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        htilde = F.linear(X, params["Wh"], params["bh"][:, 0])
        h = torch.tanh(htilde)
        ytilde = F.linear(h, params["Wy"], params["by"][:, 0])
        return {"htilde": htilde, "h": h, "ytilde": ytilde, "yhat": torch.softmax(ytilde, dim=1)}


def _suspects(key: str, before: torch.Tensor, values: Mapping[str, torch.Tensor], Y: torch.Tensor,
              Wy: torch.Tensor) -> dict[str, torch.Tensor]:
    """What well-known mistakes at step ``key`` give from ``before``, the step's input (the scale
    of the δ's for ``delta_y``, the student's previous value otherwise), keyed by their sentence."""
    h, htilde, yhat, ytilde = values["h"], values["htilde"], values["yhat"], values["ytilde"]
    if key == "delta_y":
        scale = before
        return {"the sign is reversed: δʸ = ŷ - y, not y - ŷ": scale * (Y - yhat),
                "it uses the scores ỹ instead of the probabilities: δʸ = ŷ - y with "
                "ŷ = softmax(ỹ)": scale * (ytilde - Y),
                "the '- y' is missing: δʸ = ŷ - y": scale * yhat,
                "this is ∂ℓ/∂ŷ = -y/ŷ, the gradient before the softmax; chain it through the "
                "softmax Jacobian (part 3a) to get ∂ℓ/∂ỹ = ŷ - y": -scale * Y / yhat}
    if key == "grad_h":
        found = {"it already includes the tanh derivative (1 - h²), which makes it δʰ; "
                 "∂ℓ/∂h is δʸ Wʸ alone": (before @ Wy) * (1 - h * h)}
        if Wy.shape[0] == Wy.shape[1]:
            found["it multiplies δʸ by Wʸᵀ (the shapes fit only because ny = nh): "
                  "∂ℓ/∂h = δʸ Wʸ, (B, ny) times (ny, nh)"] = before @ Wy.T
        return found
    return {"the tanh derivative is missing: δʰ = ∂ℓ/∂h ⊙ (1 - h²)": before,
            "(1 - h) is not the derivative of tanh; it is 1 - h², with h squared":
                before * (1 - h),
            "the derivative was taken at the pre-activation h̃ (1 - h̃²); use 1 - h² with "
            "h = tanh(h̃)": before * (1 - htilde * htilde),
            "h(1 - h) is the sigmoid's derivative; the derivative of tanh is 1 - h²":
                before * h * (1 - h),
            "the sign is flipped: h² - 1 instead of 1 - h²": before * (h * h - 1)}


def _diagnose_step(key: str, value, expected: torch.Tensor, suspects: Mapping[str, torch.Tensor],
                   batch: int) -> str | None:
    """The likely mistake behind a wrong step ``key`` (``expected`` is what it should have given
    from the student's previous step), or ``None`` when nothing known matches."""
    got, want = tuple(value.shape), tuple(expected.shape)
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        return ("NaN or infinity: an exp() overflowed or a log() got 0 earlier on (is the "
                "softmax stable?)")
    if got != want:
        if got == want[::-1]:
            return f"transposed: shape {got}; keep one row per sample, shape {want} (use .T)"
        return f"shape {got}, expected {want}: one row per sample and one column per unit"
    if not value.is_floating_point():
        return None
    if value.device != expected.device:
        return (f"on {value.device} instead of {expected.device}: build it from the inputs "
                "(no tensor created on a fixed device)")
    if value.dtype != expected.dtype:
        if _close(value.detach(), expected):
            return (f"the values are right but the dtype is {value.dtype}, not {expected.dtype}: "
                    "keep the inputs' dtype (no .float() or dtype=... inside backward)")
        return None
    value = value.detach()
    for description, suspect in suspects.items():
        if suspect.shape == value.shape and _close(value, suspect.to(value.dtype)):
            return description
    factor = scale_factor(value, expected)
    if factor is None:
        return None
    if _near(factor, -1.0):
        return "the sign is flipped: every entry has the opposite sign"
    if batch > 1 and _near(factor, 1 / batch):
        return (f"{batch}x too small: divided by the batch size here; keep the per-sample values "
                "(the 1/B belongs to the parameter gradients)")
    if batch > 1 and _near(factor, batch):
        return f"{batch}x too large, the batch size: a sum over the batch where none belongs"
    return f"off by a constant factor {factor:.4g}"


def _scale_of_deltas(delta_y, reference: torch.Tensor, batch: int) -> float:
    """1 for per-sample δ's; 1/B when the student's δʸ already holds the mean's 1/B."""
    if (batch > 1 and isinstance(delta_y, torch.Tensor) and delta_y.shape == reference.shape
            and delta_y.is_floating_point() and delta_y.device == reference.device
            and not _close(delta_y.detach().to(reference.dtype), reference)
            and _close(delta_y.detach().to(reference.dtype), reference / batch)):
        return 1 / batch
    return 1.0


def _compare_one(key: str, value, expected: torch.Tensor) -> TensorCheck:
    return compare_gradients({key: value}, {key: expected}).checks[0]


def compare_backward_steps(grads: Mapping[str, torch.Tensor], params: Mapping[str, torch.Tensor],
                           X: torch.Tensor, Y: torch.Tensor) -> GradientReport:
    """Compare what a hand-written ``backward`` returned with autograd, step by step; return the
    report (a row per step, then per parameter) without raising on wrong values.

    ``grads`` must hold the parameter gradients ``Wh``, ``bh``, ``Wy``, ``by`` (else ``KeyError``)
    and should hold the intermediates ``delta_y``, ``grad_h``, ``delta_h`` (missing ones are
    reported as wrong). The summary line names the first step that is wrong and why.
    """
    if not isinstance(grads, Mapping):
        raise TypeError(f"grads: expected the dict backward() returns, got {describe(grads)}")
    reference = backward_reference(params, X, Y)
    values = {**_forward_values(params, X), "Y": Y}
    batch = X.shape[0]
    scale = _scale_of_deltas(grads.get("delta_y"), reference["delta_y"], batch)
    steps: list[TensorCheck] = []
    first_wrong: str | None = None
    summary = None
    basis: torch.Tensor | float = scale   # each step's input, as the student computed it
    for key in STEPS:
        value, expected = grads.get(key), reference[key] * scale
        local = _next_step(key, basis, values, params["Wy"])
        if value is None:
            check = TensorCheck(key, False, problem="missing: backward() did not return it")
            check.diagnosis = f"add grads[{key!r}]: {FORMULAS[key]}, shape {tuple(expected.shape)}"
        else:
            check = _compare_one(key, value, expected)
            if not check.passed:
                check.diagnosis = None
                if isinstance(value, torch.Tensor):
                    if (first_wrong is not None and _usable(value, local)
                            and _close(value.detach(), local)):
                        check.diagnosis = (f"follows from the wrong {STEPS[first_wrong]} above; "
                                           "this step itself is right")
                    else:
                        check.diagnosis = _diagnose_step(
                            key, value, local, _suspects(key, basis, values, Y, params["Wy"]),
                            batch)
        if not check.passed and first_wrong is None:
            first_wrong = key
            summary = _first_wrong_sentence(key, check)
        steps.append(check)
        basis = value if _usable(value, expected) else expected
    parameters = compare_mlp_gradients(grads, params, X, Y)
    checks = steps + [parameters[k] for k in BACKWARD_ORDER]
    if first_wrong is None and not parameters.passed:
        summary = ("δʸ, ∂ℓ/∂h and δʰ are right: the mistake is in the parameter gradients "
                   "(see their rows)")
    extra = []
    if scale != 1.0:
        extra.append(f"  note: your δ's already include the 1/B of the mean (δʸ = (ŷ - y)/{batch}): "
                     "fine, as long as the parameter gradients do not divide by B again")
    return GradientReport(checks, title="backward() step by step against autograd", extra=extra,
                          summary=summary)


def _next_step(key: str, basis, values: Mapping[str, torch.Tensor],
               Wy: torch.Tensor) -> torch.Tensor:
    """What step ``key`` gives when computed right from ``basis``, its input as the student has
    it (for ``delta_y``, ``basis`` is the scale of the δ's)."""
    if key == "delta_y":
        return basis * (values["yhat"] - values["Y"])
    if key == "grad_h":
        return basis @ Wy
    return basis * (1 - values["h"] ** 2)


def _usable(before, like: torch.Tensor) -> bool:
    """Whether a student's value can be built on: a finite tensor shaped, typed and placed like
    ``like``."""
    return (isinstance(before, torch.Tensor) and before.shape == like.shape
            and before.dtype == like.dtype and before.device == like.device
            and bool(torch.isfinite(before).all()))


def _first_wrong_sentence(key: str, check: TensorCheck) -> str:
    name = STEPS[key]
    previous = list(STEPS)[list(STEPS).index(key) - 1] if key != "delta_y" else None
    opening = f"{STEPS[previous]} is right but {name} is wrong" if previous else f"{name} is wrong"
    if check.problem and check.problem.startswith("missing"):
        return f"first wrong step: {name} is missing ({check.diagnosis})"
    reason = check.diagnosis or f"in no recognisable way; recompute {FORMULAS[key]}"
    return f"first wrong step: {opening}: {reason}"


def check_backward_steps(grads: Mapping[str, torch.Tensor], params: Mapping[str, torch.Tensor],
                         X: torch.Tensor, Y: torch.Tensor, *, verbose: bool = True
                         ) -> GradientReport:
    """Check a hand-written ``backward`` step by step (see :func:`compare_backward_steps`).

    Returns the report, printed first (``verbose``), when every step and every parameter
    gradient is right; otherwise raises :class:`~lab_utils.checking.CheckFailed` (an
    ``AssertionError``) whose message is the table, led by the first wrong step.
    """
    __tracebackhide__ = True
    return finish_report(compare_backward_steps(grads, params, X, Y), verbose=verbose)

