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
from .checking import GradientReport, autograd_gradients, check_gradients

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
    for name, tensor in [*params.items(), ("X", X), ("Y", Y)]:
        if name in PARAM_NAMES or name in ("X", "Y"):
            if tensor.device != Wh.device:
                raise ValueError(f"{name if name in ('X', 'Y') else f'params[{name!r}]'}: expected "
                                 f"a tensor on {Wh.device} like params['Wh'], got one on {tensor.device}")


def mlp_loss(params: Mapping[str, torch.Tensor], X: torch.Tensor, Y: torch.Tensor, *,
             activation: Callable[[torch.Tensor], torch.Tensor] = torch.tanh) -> torch.Tensor:
    """Mean cross-entropy of the tanh MLP over the batch, as a scalar tensor (differentiable)."""
    hidden = activation(F.linear(X, params["Wh"], params["bh"][:, 0]))
    scores = F.linear(hidden, params["Wy"], params["by"][:, 0])
    return F.cross_entropy(scores, Y)


def mlp_reference_gradients(params: Mapping[str, torch.Tensor], X: torch.Tensor,
                            Y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Autograd's gradients of :func:`mlp_loss` (averaged over the batch), shaped like ``params``."""
    check_mlp_inputs(params, X, Y)
    subset = {k: params[k] for k in PARAM_NAMES}
    return autograd_gradients(lambda p: mlp_loss(p, X, Y), subset)


def mlp_mistake_gradients(params: Mapping[str, torch.Tensor], X: torch.Tensor,
                          Y: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    """Per parameter, the gradients that well-known hand-written mistakes produce, keyed by a
    sentence naming the mistake (see :func:`lab_utils.diagnosis.diagnose`)."""
    return {}


def check_mlp_gradients(grads: Mapping[str, torch.Tensor], params: Mapping[str, torch.Tensor],
                        X: torch.Tensor, Y: torch.Tensor, *, verbose: bool = True) -> GradientReport:
    """Check hand-written gradients ``grads`` of the lecture's MLP against autograd.

    Prints a per-parameter table (``verbose``) naming the likely mistake of any wrong tensor and
    raises ``AssertionError`` with the same table if one is wrong.
    """
    reference = mlp_reference_gradients(params, X, Y)
    return check_gradients(grads, reference, batch_size=X.shape[0], verbose=verbose,
                           suspects=mlp_mistake_gradients(params, X, Y),
                           title="backward() against autograd")
