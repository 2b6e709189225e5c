"""What each prohibitive rule forbids of its own, as tables of qualified names.

Each rule has a ``*_family`` function that maps a qualified name to the family that breaks the
rule (``autograd``, ``library_softmax``...) or to None; :func:`rule_family` adds what every
prohibitive rule forbids (:mod:`.escapes`). To forbid one more construct, add its qualified
name (or a prefix) to the rule's table; for a new rule, add a table and a ``*_family``
function, list the rule in :data:`~.vocabulary.RULES` (and :data:`~.vocabulary.PROHIBITIVE`),
register it in ``_OWN_FAMILIES`` and give it words in :mod:`.sentences`.
"""

from __future__ import annotations

from .escapes import escape_family, unchecked_family
from .vocabulary import (
    AUTOGRAD,
    GRADIENT_HELPERS,
    LIBRARY,
    LIBRARY_SOFTMAX,
    TORCH_INTERNALS,
    UNCHECKED_MODULE,
    UNRESOLVED,
    meanings,
    table,
    within,
)

# ----------------------------------------------------------------------------------- by_hand

TENSOR_AUTOGRAD_ATTRIBUTES = table(
    "grad", "_grad", "backward", "requires_grad", "requires_grad_", "grad_fn", "_grad_fn",
    "retain_grad", "retains_grad", "register_hook", "register_post_accumulate_grad_hook",
    "_backward_hooks", "_execution_engine", "run_backward", "_run_backward")
AUTOGRAD_MODULES = table(
    "torch.autograd", "torch.func", "functorch", "torch._functorch", "torch.nn.grad",
    "torch.enable_grad", "torch.set_grad_enabled", "torch.nn.Parameter", "torch.nn.parameter",
    "torch._C._ImperativeEngine", "torch._C._EngineBase", "torch._C._autograd",
    "torch._C._functions", "torch._C._functorch", "jax", "autograd")
AUTOGRAD_ALLOWED = table(
    "torch.autograd.no_grad", "torch.autograd.grad_mode.no_grad",
    "torch.autograd.inference_mode", "torch.autograd.grad_mode.inference_mode")
# what uses_autograd accepts as "computes its gradients with autograd"
GRADIENT_COMPUTATIONS = table(
    "torch.autograd.grad", "torch.autograd.backward", "torch.Tensor.backward",
    "torch.autograd.functional", "torch.func", "functorch", "torch.autograd.forward_ad")

# lab_utils' public helpers that compute or compare gradients (the rest loads data, picks a
# device, plots and times); tests/test_rules.py checks that this list follows lab_utils.
GRADIENT_HELPER_NAMES = table(
    "GradientReport", "autograd_gradients", "check_gradients", "check_gradients_numerically",
    "compare_gradients", "numerical_gradients", "diagnose", "check_mlp_gradients", "mlp_loss",
    "mlp_reference_gradients", "backward_reference", "check_backward_steps",
    "compare_backward_steps", "check_local_rules", "check_topological_order", "check_backward")
GRADIENT_HELPER_MODULES = table(
    "lab_utils.checking", "lab_utils.mlp", "lab_utils.diagnosis", "lab_utils.backward_steps",
    "lab_utils.engine_graphs", "lab_utils.engine_check")


def autograd_family(name: str) -> str | None:
    if within(name, AUTOGRAD_ALLOWED):
        return None
    if within(name, AUTOGRAD_MODULES):
        return AUTOGRAD
    parts = name.split(".")
    if parts[0] == "torch" and len(parts) > 1:
        if parts[1] == "Tensor" and len(parts) > 2:
            return AUTOGRAD if parts[2] in TENSOR_AUTOGRAD_ATTRIBUTES else None
        if any(p == "backward" or p.endswith("_backward") for p in parts[1:]):
            return AUTOGRAD  # e.g. torch.ops.aten.tanh_backward: a library's derivative
        if parts[1].startswith("_"):
            return TORCH_INTERNALS
    if parts[0] == "lab_utils" and len(parts) > 1 and (
            within(name, GRADIENT_HELPER_MODULES) or parts[1] in GRADIENT_HELPER_NAMES):
        return GRADIENT_HELPERS
    return None


def is_gradient_computation(name: str) -> bool:
    return within(name, GRADIENT_COMPUTATIONS)


# ------------------------------------------------------------------------------- own_softmax

SOFTMAX_NAMES = table(
    "softmax", "log_softmax", "softmin", "_softmax", "_log_softmax", "cross_entropy",
    "nll_loss", "gumbel_softmax", "Softmax", "LogSoftmax", "Softmin", "Softmax2d",
    "CrossEntropyLoss", "NLLLoss", "AdaptiveLogSoftmaxWithLoss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "BCELoss", "BCEWithLogitsLoss")
SOFTMAX_ATTRIBUTES = table("softmax", "log_softmax", "softmin")
SOFTMAX_LIBRARIES = table("torch", "scipy", "jax", "numpy", "sklearn")
MLP_HELPERS = table("lab_utils.mlp", "lab_utils.mlp_loss", "lab_utils.mlp_reference_gradients",
                    "lab_utils.check_mlp_gradients")


def softmax_family(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] in SOFTMAX_LIBRARIES and any(p in SOFTMAX_NAMES for p in parts[1:]):
        return LIBRARY_SOFTMAX
    return LIBRARY_SOFTMAX if within(name, MLP_HELPERS) else None


# ---------------------------------------------------------------------------------- no_torch

ARRAY_LIBRARIES = table("torch", "numpy", "lab_utils", "functorch", "jax", "jaxlib",
                        "tensorflow", "autograd", "scipy", "sympy", "mpmath")


def library_family(name: str) -> str | None:
    return LIBRARY if within(name, ARRAY_LIBRARIES) else None


# ------------------------------------------------------------------------------- every rule

_OWN_FAMILIES = {"by_hand": autograd_family, "own_softmax": softmax_family,
                 "no_torch": library_family}


def rule_family(rule: str, name: str) -> str | None:
    """The family of ``name`` that breaks ``rule``, or None when ``rule`` allows it."""
    own = _OWN_FAMILIES.get(rule)
    if own is None:
        return None
    if name == UNRESOLVED:
        return UNCHECKED_MODULE
    for meaning in meanings(name):
        family = own(meaning) or escape_family(meaning)
        if family:
            return family
    return unchecked_family(name)
