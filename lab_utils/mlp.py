"""The autograd reference for Lab 3's network, in the lecture's conventions.

``params`` holds ``Wh`` (nh, nx), ``bh`` (nh, 1), ``Wy`` (ny, nh), ``by`` (ny, 1); ``X`` is
(B, nx) and ``Y`` one-hot (B, ny). The reference loss is built from torch's own layers
(``F.linear``, ``torch.tanh``, ``F.cross_entropy``) so that autograd can differentiate it; it
is the yardstick for hand-written gradients, not a model of how to write them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F

from ._validate import require_keys, require_tensor
from .checking import GradientReport, autograd_gradients, compare_gradients, finish_report
from .diagnosis import scale_factor

PARAM_NAMES = ("Wh", "bh", "Wy", "by")


def check_mlp_inputs(params: Mapping[str, torch.Tensor], X: torch.Tensor, Y: torch.Tensor) -> None:
    """Validate shapes, dtypes and devices of the lecture's MLP parameters and data."""
    require_keys("params", params, PARAM_NAMES)
    Wh = require_tensor("params['Wh']", params["Wh"], ndim=2, floating=True)
    nh, nx = Wh.shape
    Wy = require_tensor("params['Wy']", params["Wy"], shape=(None, nh), floating=True)
    ny = Wy.shape[0]
    require_tensor("params['bh']", params["bh"], shape=(nh, 1), floating=True)
    require_tensor("params['by']", params["by"], shape=(ny, 1), floating=True)
    require_tensor("X", X, shape=(None, nx), floating=True)
    require_tensor("Y", Y, shape=(X.shape[0], ny), floating=True)
    named = {f"params[{k!r}]": params[k] for k in PARAM_NAMES} | {"X": X, "Y": Y}
    for name, tensor in named.items():
        if tensor.device != Wh.device:
            raise ValueError(f"{name}: expected a tensor on {Wh.device} like params['Wh'], "
                             f"got one on {tensor.device}")


def _scores(params: Mapping[str, torch.Tensor], X: torch.Tensor,
            activation: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """The output scores ỹ, (B, ny), of the tanh MLP (differentiable)."""
    hidden = activation(F.linear(X, params["Wh"], params["bh"][:, 0]))
    return F.linear(hidden, params["Wy"], params["by"][:, 0])


def mlp_loss(params: Mapping[str, torch.Tensor], X: torch.Tensor, Y: torch.Tensor, *,
             activation: Callable[[torch.Tensor], torch.Tensor] = torch.tanh) -> torch.Tensor:
    """Mean cross-entropy of the tanh MLP over the batch, as a scalar tensor (differentiable)."""
    return F.cross_entropy(_scores(params, X, activation), Y)


def mlp_reference_gradients(params: Mapping[str, torch.Tensor], X: torch.Tensor,
                            Y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Autograd's gradients of :func:`mlp_loss` (averaged over the batch), shaped like ``params``."""
    check_mlp_inputs(params, X, Y)
    subset = {k: params[k] for k in PARAM_NAMES}
    return autograd_gradients(lambda p: mlp_loss(p, X, Y), subset)


class _TanhWithWrongSlope(torch.autograd.Function):
    """tanh forward; backward multiplies by ``slope(h̃, h)``, a deliberately wrong derivative."""

    @staticmethod
    def forward(ctx, pre_activation, slope):
        hidden = torch.tanh(pre_activation)
        ctx.save_for_backward(pre_activation, hidden)
        ctx.slope = slope
        return hidden

    @staticmethod
    def backward(ctx, grad_hidden):
        pre_activation, hidden = ctx.saved_tensors
        return grad_hidden * ctx.slope(pre_activation, hidden), None


#: Wrong local derivatives of tanh, as functions of (h̃, h), and the sentence naming each.
_WRONG_SLOPES = {
    "the tanh derivative is missing: multiply the error coming back through Wy elementwise "
    "by (1 - h²) to get δʰ":
        lambda pre, h: torch.ones_like(h),
    "the tanh derivative was written as (1 - h); it is 1 - h², with h squared":
        lambda pre, h: 1 - h,
    "the tanh derivative was computed from the pre-activation h̃ (1 - h̃²); use the "
    "activation h = tanh(h̃) instead: 1 - h²":
        lambda pre, h: 1 - pre * pre,
    "the sigmoid's derivative h(1 - h) was used; the derivative of tanh is 1 - h²":
        lambda pre, h: h * (1 - h),
}
#: Wrong output errors δʸ, each as a loss whose gradient with respect to ỹ is that error / B.
_WRONG_OUTPUT_ERRORS = {
    "the output error used the scores ỹ instead of the probabilities: apply the softmax "
    "first, δʸ = ŷ - y with ŷ = softmax(ỹ)":
        lambda scores, Y: ((scores - Y) ** 2).sum() / (2 * len(Y)),
    "the output error lacks the '- y': δʸ = ŷ - y, with y the one-hot targets":
        lambda scores, Y: torch.logsumexp(scores, dim=1).mean(),
}
#: The sentences for gradients with the opposite sign (see :func:`check_mlp_gradients`).
SIGN_OF_OUTPUT_ERROR = ("sign flipped in all four gradients: the output error was taken as "
                        "y - ŷ; use δʸ = ŷ - y (a flipped δʸ flips every gradient)")
SIGN_IN_HIDDEN_LAYER = ("sign flipped in the hidden layer only (Wy and by are right): a "
                        "subtraction in δʰ is reversed, e.g. h² - 1 instead of 1 - h²")


def mlp_mistake_gradients(params: Mapping[str, torch.Tensor], X: torch.Tensor,
                          Y: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    """Per parameter, the gradients that well-known hand-written mistakes produce, keyed by a
    sentence naming the mistake (see :func:`lab_utils.diagnosis.diagnose`).

    Each is autograd's gradient of a deliberately altered network: tanh with a wrong local
    derivative (affects ``Wh`` and ``bh`` only), or a loss whose output error is wrong (affects
    all four). Returns ``{name: {description: gradient shaped like params[name]}}``.
    """
    check_mlp_inputs(params, X, Y)
    subset = {k: params[k] for k in PARAM_NAMES}
    mistakes: dict[str, dict[str, torch.Tensor]] = {k: {} for k in PARAM_NAMES}
    for description, slope in _WRONG_SLOPES.items():
        def wrong_tanh(pre, slope=slope):
            return _TanhWithWrongSlope.apply(pre, slope)
        grads = autograd_gradients(lambda p, f=wrong_tanh: mlp_loss(p, X, Y, activation=f), subset)
        for k in ("Wh", "bh"):
            mistakes[k][description] = grads[k]
    for description, loss_of_scores in _WRONG_OUTPUT_ERRORS.items():
        grads = autograd_gradients(
            lambda p, f=loss_of_scores: f(_scores(p, X, torch.tanh), Y), subset)
        for k in PARAM_NAMES:
            mistakes[k][description] = grads[k]
    return mistakes


def _explain_sign_flips(report: GradientReport, grads: Mapping[str, torch.Tensor],
                        reference: Mapping[str, torch.Tensor]) -> None:
    """Name a sign flip by where it shows: all four gradients (δʸ) or the hidden layer only."""
    flipped = set()
    for k in PARAM_NAMES:
        check = report[k]
        if not check.passed and check.max_abs_error is not None:  # same shape, dtype and device
            c = scale_factor(grads[k].detach(), reference[k])
            if c is not None and abs(c + 1) <= 1e-3:
                flipped.add(k)
    if {"Wy", "by"} <= flipped:
        text = SIGN_OF_OUTPUT_ERROR
    elif flipped and report["Wy"].passed and report["by"].passed:
        text = SIGN_IN_HIDDEN_LAYER
    else:
        return
    for k in flipped:
        report[k].diagnosis = text


def compare_mlp_gradients(grads: Mapping[str, torch.Tensor], params: Mapping[str, torch.Tensor],
                          X: torch.Tensor, Y: torch.Tensor) -> GradientReport:
    """Compare hand-written gradients ``grads`` of the lecture's MLP with autograd's and return
    the report (never raises on a wrong gradient; see :func:`check_mlp_gradients`).

    ``grads`` holds at least ``Wh`` (nh, nx), ``bh`` (nh, 1), ``Wy`` (ny, nh), ``by`` (ny, 1),
    averaged over the batch; other keys are ignored. A wrong tensor is named, with the likely
    mistake where it is recognisable.
    """
    require_keys("grads", grads, PARAM_NAMES)
    reference = mlp_reference_gradients(params, X, Y)

    def compare(suspects=None):
        return compare_gradients({k: grads[k] for k in PARAM_NAMES}, reference, suspects=suspects,
                                 batch_size=X.shape[0], title="backward() against autograd")

    report = compare()
    if not report.passed:  # only then is it worth computing what each known mistake gives
        report = compare(mlp_mistake_gradients(params, X, Y))
        _explain_sign_flips(report, grads, reference)
    return report


def check_mlp_gradients(grads: Mapping[str, torch.Tensor], params: Mapping[str, torch.Tensor],
                        X: torch.Tensor, Y: torch.Tensor, *, verbose: bool = True) -> GradientReport:
    """Check hand-written gradients ``grads`` of the lecture's MLP against autograd.

    ``grads`` holds ``Wh`` (nh, nx), ``bh`` (nh, 1), ``Wy`` (ny, nh), ``by`` (ny, 1), averaged
    over the batch. Returns the per-parameter report, printed first (``verbose``), when every
    tensor is right; otherwise raises :class:`~lab_utils.checking.CheckFailed` (an
    ``AssertionError``) whose message is the table, naming the likely mistake of each wrong tensor.
    """
    __tracebackhide__ = True
    return finish_report(compare_mlp_gradients(grads, params, X, Y), verbose=verbose)
