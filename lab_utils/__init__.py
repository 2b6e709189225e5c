"""lab_utils: the helpers the Backprop Lab Kit's notebooks import.

- ``device``: :func:`get_device` picks CUDA, then Apple MPS, then the CPU (``LAB_DEVICE`` overrides).
- ``data``: toy 2-D data sets (:func:`make_moons`, :func:`make_circles`, :func:`make_xor`,
  :func:`make_spirals`), :func:`one_hot`, :func:`train_test_split`.
- ``checking``: compare hand-written gradients with autograd (:func:`check_gradients`,
  :func:`autograd_gradients`) or with finite differences (:func:`check_gradients_numerically`).
- ``diagnosis``: names the likely mistake behind a wrong gradient.
- ``mlp``: the autograd reference for Lab 3's tanh MLP (:func:`check_mlp_gradients`).
- ``backward_steps``: Lab 3's backward pass checked step by step, δʸ, ∂ℓ/∂h, δʰ, then the
  parameters, against autograd's intermediates (:func:`check_backward_steps`).
- ``plotting``: data, decision boundaries, training curves, step-size sweeps, growth curves
  (matplotlib is imported only when a plot is made).
- ``timing``: :func:`time_call` for the labs' timing experiments.
- ``engine_check``, ``engine_graphs``, ``engine_probes``, ``engine_diagnosis``: Lab 4's checks
  of a scalar autodiff engine (:func:`check_local_rules`, :func:`check_topological_order`,
  :func:`check_backward`), the graphs and references they use, the probes they run and the bugs
  they name.
- ``graph_drawing``: :func:`draw_graph`, a small computational graph with values and gradients.
- ``testing``: :func:`~lab_utils.testing.runs_student_code`, for the labs' own test helpers
  (imported on its own: ``from lab_utils.testing import runs_student_code``).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .backward_steps import backward_reference, check_backward_steps, compare_backward_steps
from .checking import (
    GradientReport,
    autograd_gradients,
    check_gradients,
    check_gradients_numerically,
    compare_gradients,
    numerical_gradients,
)
from .data import make_circles, make_moons, make_spirals, make_xor, one_hot, train_test_split
from .device import describe_device, get_device
from .diagnosis import diagnose
from .engine_check import check_backward, check_local_rules, check_topological_order
from .graph_drawing import draw_graph
from .mlp import check_mlp_gradients, mlp_loss, mlp_reference_gradients
from .timing import time_call

__version__ = "1.0.0"

_PLOTTING = ("plot_dataset", "plot_decision_boundary", "plot_training_curves", "plot_growth",
             "plot_step_sizes")

__all__ = [
    "GradientReport", "autograd_gradients", "check_gradients", "check_gradients_numerically",
    "compare_gradients", "numerical_gradients", "make_circles", "make_moons", "make_spirals",
    "make_xor", "one_hot", "train_test_split", "describe_device", "get_device", "diagnose",
    "time_call", "check_mlp_gradients", "mlp_loss", "mlp_reference_gradients",
    "backward_reference", "check_backward_steps", "compare_backward_steps", *_PLOTTING,
    "check_local_rules", "check_topological_order", "check_backward", "draw_graph",
]


def __getattr__(name: str) -> Any:
    """Load the plotting module (and matplotlib) on first use only."""
    if name in _PLOTTING:
        return getattr(import_module(".plotting", __name__), name)
    raise AttributeError(f"module 'lab_utils' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PLOTTING))
