"""One SGD training step of the lecture's tanh MLP, written five ways for the benchmark.

Shapes follow the lecture: ``params`` holds ``Wh`` (nh, nx), ``bh`` (nh, 1), ``Wy`` (ny, nh)
and ``by`` (ny, 1); a batch is ``X`` (B, nx) with one-hot targets ``Y`` (B, ny). The forward
pass is h~ = X Whᵀ + bhᵀ, h = tanh(h~), y~ = h Wyᵀ + byᵀ, ŷ = softmax(y~); the loss is the
mean cross-entropy over the batch. A step is forward + backward + the SGD update
``p ← p − η ∇p`` of all four parameters, in place.

- :func:`literal_step`: the lecture's forward and ``backward`` as written, then the update.
- :class:`TunedStep`: the same mathematics with fused kernels and buffers reused across steps.
- :func:`autograd_step` / :func:`compiled_autograd_step`: the loss through autograd (eager or
  ``torch.compile``\\ d), then the same update.
- :class:`MatmulFloor`: only the step's five matrix products, a lower bound for any step.

The tuned step lives here and not in ``lab_utils``: students write their own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F

from lab_utils._validate import require_int, require_keys, require_tensor
from lab_utils.mlp import check_mlp_inputs, mlp_loss

PARAM_NAMES = ("Wh", "bh", "Wy", "by")
Params = dict[str, torch.Tensor]


def init_params(nx: int, nh: int, ny: int, *, seed: int = 0, dtype: torch.dtype = torch.float32,
                device: torch.device | str = "cpu") -> Params:
    """The lecture's initialisation: weights ~ 0.3·N(0, 1), biases zero; shapes as above."""
    for name, value in (("nx", nx), ("nh", nh), ("ny", ny)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    gen = torch.Generator().manual_seed(seed)
    params = {"Wh": torch.randn(nh, nx, generator=gen, dtype=dtype) * 0.3,
              "bh": torch.zeros(nh, 1, dtype=dtype),
              "Wy": torch.randn(ny, nh, generator=gen, dtype=dtype) * 0.3,
              "by": torch.zeros(ny, 1, dtype=dtype)}
    return {k: v.to(device) for k, v in params.items()}


def make_batch(batch_size: int, nx: int, ny: int, *, seed: int = 1,
               dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """A random batch: ``X`` (B, nx) standard normal and one-hot ``Y`` (B, ny)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(batch_size, nx, generator=gen, dtype=dtype)
    labels = torch.randint(ny, (batch_size,), generator=gen)
    Y = F.one_hot(labels, ny).to(dtype)
    return X.to(device), Y.to(device)


def clone_params(params: Mapping[str, torch.Tensor], *, requires_grad: bool = False) -> Params:
    """Independent copies of the four parameters (leaf tensors when ``requires_grad``)."""
    return {k: params[k].detach().clone().requires_grad_(requires_grad) for k in PARAM_NAMES}


def _empty_batch(params: Mapping[str, torch.Tensor], batch_size: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Uninitialised ``X`` (B, nx) and ``Y`` (B, ny) matching ``params``, to validate shapes."""
    require_int("batch_size", batch_size, minimum=1)
    require_keys("params", params, PARAM_NAMES)
    Wh = require_tensor("params['Wh']", params["Wh"], ndim=2, floating=True)
    Wy = require_tensor("params['Wy']", params["Wy"], ndim=2, floating=True)
    return (Wh.new_empty(batch_size, Wh.shape[1]), Wh.new_empty(batch_size, Wy.shape[0]))


def _check_eta(eta: float) -> float:
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not eta > 0:
        raise ValueError(f"eta: expected a positive learning rate, got {eta!r}")
    return float(eta)


# (a) the lecture's code, translated literally ------------------------------------------------

def literal_forward(params: Mapping[str, torch.Tensor], X: torch.Tensor) -> dict[str, torch.Tensor]:
    """The forward pass keeping what backward needs: ``X``, ``h`` (B, nh), ``yhat`` (B, ny)."""
    h_tilde = torch.mm(X, params["Wh"].T) + params["bh"].T
    h = torch.tanh(h_tilde)
    y_tilde = torch.mm(h, params["Wy"].T) + params["by"].T
    yhat = torch.softmax(y_tilde, dim=1)
    return {"X": X, "h": h, "yhat": yhat}


def literal_backward(params: Mapping[str, torch.Tensor], outputs: Mapping[str, torch.Tensor],
                     Y: torch.Tensor) -> Params:
    """The lecture's ``backward``: the gradients of the mean loss, shaped like ``params``."""
    batch_size = Y.shape[0]
    delta_y = outputs["yhat"] - Y                                         # (B, ny)
    delta_h = torch.mm(delta_y, params["Wy"]) * (1 - torch.pow(outputs["h"], 2))  # (B, nh)
    grads = {"Wy": torch.mm(delta_y.T, outputs["h"]),
             "Wh": torch.mm(delta_h.T, outputs["X"]),
             "by": delta_y.sum(dim=0, keepdim=True).T,
             "bh": delta_h.sum(dim=0, keepdim=True).T}
    for name in ("Wy", "by", "Wh", "bh"):
        grads[name] /= batch_size
    return grads


def literal_step(params: Params, X: torch.Tensor, Y: torch.Tensor, eta: float) -> None:
    """(a) Forward, the lecture's backward, then ``p -= eta * grad`` for each parameter."""
    grads = literal_backward(params, literal_forward(params, X), Y)
    for name in PARAM_NAMES:
        params[name] -= eta * grads[name]


# (b) the tuned hand-written step --------------------------------------------------------------

class TunedStep:
    """(b) A hand-written step for fixed shapes that allocates nothing after construction.

    ``TunedStep(params, batch_size, eta)(X, Y)`` updates the tensors of ``params`` in place (it
    keeps views of them: replace a tensor in ``params`` and build a new step). The tricks:
    biases enter through ``addmm``; the activation and the softmax run in place in reused
    buffers; 1/B is folded into δʸ once (ŷ/B − Y/B) instead of dividing four gradients; δʰ = δʸWʸ
    is taken before Wʸ moves, so that Wʸ and Wʰ are updated by ``addmm_(…, alpha=−η)`` straight
    from the products without a gradient buffer; (1 − h²)⊙ is one ``addcmul_`` on h² in place.

    ``tanh``: ``"torch"`` calls ``torch.tanh``; ``"sigmoid"`` uses tanh(x) = 2σ(2x) − 1, with the
    factor 2 folded into the ``addmm`` (torch's CPU tanh kernel is several times slower than its
    sigmoid; the identity costs an absolute error of about one float epsilon, and two more
    kernel calls); ``"auto"`` (the default) picks ``"sigmoid"`` on the CPU for B·nh ≥ 2¹⁴ and
    ``"torch"`` otherwise.
    """

    def __init__(self, params: Params, batch_size: int, eta: float, *, tanh: str = "auto"):
        if tanh not in ("auto", "sigmoid", "torch"):
            raise ValueError(f"tanh: expected 'auto', 'sigmoid' or 'torch', got {tanh!r}")
        X, Y = _empty_batch(params, batch_size)
        check_mlp_inputs(params, X, Y)
        if any(params[k].requires_grad for k in PARAM_NAMES):
            raise ValueError("params: expected plain tensors (requires_grad=False), got tensors "
                             "that track gradients; pass clone_params(params)")
        self.params, self.eta = params, _check_eta(eta)
        self.x_shape, self.y_shape = tuple(X.shape), tuple(Y.shape)
        self.via_sigmoid = tanh == "sigmoid" or (tanh == "auto" and X.device.type == "cpu"
                                                 and batch_size * params["Wh"].shape[0] >= 2**14)
        like = {"dtype": X.dtype, "device": X.device}
        nh, ny = params["Wh"].shape[0], Y.shape[1]
        self.h = torch.empty(batch_size, nh, **like)        # h, then h²
        self.dh = torch.empty(batch_size, nh, **like)       # δʰ
        self.s = torch.empty(batch_size, ny, **like)        # y~, then ŷ, then δʸ
        self.s_max = torch.empty(batch_size, 1, **like)
        self.s_sum = torch.empty(batch_size, 1, **like)
        self.bh_grad = torch.empty(1, nh, **like)
        self.by_grad = torch.empty(1, ny, **like)
        self.Wh, self.Wy = params["Wh"], params["Wy"]
        self.bh_row, self.by_row = params["bh"].T, params["by"].T     # (1, nh), (1, ny) views

    def __call__(self, X: torch.Tensor, Y: torch.Tensor) -> None:
        if X.shape != self.x_shape or Y.shape != self.y_shape:
            raise ValueError(f"X, Y: expected shapes {self.x_shape} and {self.y_shape} (fixed when "
                             f"the step was built), got {tuple(X.shape)} and {tuple(Y.shape)}")
        Wh, Wy, h, dh, s, eta = self.Wh, self.Wy, self.h, self.dh, self.s, self.eta
        batch_size = self.x_shape[0]
        if self.via_sigmoid:
            torch.addmm(self.bh_row, X, Wh.T, beta=2, alpha=2, out=h)  # 2h~
            h.sigmoid_().mul_(2).sub_(1)                          # h = 2σ(2h~) − 1 = tanh(h~)
        else:
            torch.addmm(self.bh_row, X, Wh.T, out=h)              # h~ = X Whᵀ + bhᵀ
            torch.tanh(h, out=h)                                  # h
        torch.addmm(self.by_row, h, Wy.T, out=s)                  # y~ = h Wyᵀ + byᵀ
        torch.amax(s, dim=1, keepdim=True, out=self.s_max)
        s.sub_(self.s_max).exp_()                                 # e^(y~ − max)
        torch.sum(s, dim=1, keepdim=True, out=self.s_sum).mul_(batch_size)
        s.div_(self.s_sum).sub_(Y, alpha=1.0 / batch_size)        # δʸ = (ŷ − Y) / B
        torch.mm(s, Wy, out=dh)                                   # δʸ Wʸ, before Wʸ moves
        Wy.addmm_(s.T, h, alpha=-eta)                             # Wʸ −= η δʸᵀ h
        self.by_row.sub_(torch.sum(s, dim=0, keepdim=True, out=self.by_grad), alpha=eta)
        dh.addcmul_(dh, h.mul_(h), value=-1.0)                    # δʰ = δʸWʸ ⊙ (1 − h²)
        Wh.addmm_(dh.T, X, alpha=-eta)                            # Wʰ −= η δʰᵀ X
        self.bh_row.sub_(torch.sum(dh, dim=0, keepdim=True, out=self.bh_grad), alpha=eta)


# (c), (d) autograd ----------------------------------------------------------------------------

def sgd_update_(params: Params, eta: float) -> None:
    """``p −= η p.grad`` for every parameter, then drop the gradients (``grad = None``)."""
    with torch.no_grad():
        for name in PARAM_NAMES:
            param = params[name]
            param.sub_(param.grad, alpha=eta)
            param.grad = None


def autograd_step(params: Params, X: torch.Tensor, Y: torch.Tensor, eta: float,
                  loss_fn: Callable[..., torch.Tensor] = mlp_loss) -> None:
    """(c) ``loss_fn(params, X, Y).backward()`` (the kit's reference loss), then the update."""
    loss_fn(params, X, Y).backward()
    sgd_update_(params, eta)


def compiled_autograd_step(**compile_options) -> Callable[[Params, torch.Tensor, torch.Tensor, float], None]:
    """(d) :func:`autograd_step` with the loss compiled by ``torch.compile`` (which compiles its
    backward too). Compilation happens on the first call."""
    compiled_loss = torch.compile(mlp_loss, **compile_options)

    def step(params: Params, X: torch.Tensor, Y: torch.Tensor, eta: float) -> None:
        autograd_step(params, X, Y, eta, loss_fn=compiled_loss)
    return step


# (e) the floor --------------------------------------------------------------------------------

class MatmulFloor:
    """(e) The step's matrix products alone, into preallocated buffers: forward X Whᵀ (B, nh)
    and h Wyᵀ (B, ny); backward δʸᵀ h (ny, nh), δʸ Wʸ (B, nh) and δʰᵀ X (nh, nx). No step can
    be faster than these five products at the same sizes."""

    def __init__(self, params: Mapping[str, torch.Tensor], batch_size: int):
        check_mlp_inputs(params, *_empty_batch(params, batch_size))
        Wh, Wy = params["Wh"], params["Wy"]
        (nh, nx), ny = Wh.shape, Wy.shape[0]
        like = {"dtype": Wh.dtype, "device": Wh.device}
        self.Wh, self.Wy = Wh.detach(), Wy.detach()
        self.h = torch.empty(batch_size, nh, **like)
        self.s = torch.empty(batch_size, ny, **like)
        self.Wy_grad = torch.empty(ny, nh, **like)
        self.dh = torch.empty(batch_size, nh, **like)
        self.Wh_grad = torch.empty(nh, nx, **like)
        self.x_shape = (batch_size, nx)

    def __call__(self, X: torch.Tensor, Y: torch.Tensor | None = None) -> None:
        if X.shape != self.x_shape:
            raise ValueError(f"X: expected shape {self.x_shape}, got {tuple(X.shape)}")
        torch.mm(X, self.Wh.T, out=self.h)
        torch.mm(self.h, self.Wy.T, out=self.s)
        torch.mm(self.s.T, self.h, out=self.Wy_grad)
        torch.mm(self.s, self.Wy, out=self.dh)
        torch.mm(self.dh.T, X, out=self.Wh_grad)
