"""Plots for the labs. Each function returns the matplotlib ``Figure``.

The figure is closed in pyplot before it is returned, so it is shown exactly once: put the
call last in a cell (or ``display(fig)``). Pass ``ax=`` to draw into an existing axes instead.
matplotlib is imported only when one of these functions is called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import torch

from ._validate import describe, require_int, require_same_length, require_tensor

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

CLASS_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    plt.close(fig)
    return fig, ax


def _check_points(X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    require_tensor("X", X, shape=(None, 2))
    require_tensor("y", y, ndim=1)
    require_same_length(("X", "y"), X, y)
    if y.is_floating_point():
        raise TypeError(f"y: expected integer class labels (use y.argmax(1) for one-hot), got dtype {y.dtype}")
    return X.detach().float().cpu(), y.detach().cpu()


def plot_dataset(X: torch.Tensor, y: torch.Tensor, *, title: str | None = None,
                 ax: Axes | None = None) -> Figure:
    """Scatter plot of 2-D points ``X`` ``(n, 2)`` coloured by integer labels ``y`` ``(n,)``."""
    X, y = _check_points(X, y)
    fig, ax = _axes(ax, (5.5, 4.5))
    for label in sorted(set(y.tolist())):
        mask = y == label
        ax.scatter(X[mask, 0], X[mask, 1], s=16, color=CLASS_COLORS[label % len(CLASS_COLORS)],
                   edgecolors="white", linewidths=0.4, label=f"class {label}")
    ax.set(xlabel="$x_1$", ylabel="$x_2$", title=title or f"{len(y)} points")
    ax.legend(loc="best", fontsize="small")
    ax.set_aspect("equal", adjustable="datalim")
    return fig


def plot_decision_boundary(predict: Callable[[torch.Tensor], torch.Tensor], X: torch.Tensor,
                           y: torch.Tensor, *, resolution: int = 200, padding: float = 0.5,
                           title: str | None = None, ax: Axes | None = None) -> Figure:
    """Shade the plane by the class ``predict`` assigns, with the points on top.

    ``predict`` maps a ``(m, 2)`` float tensor (on ``X``'s device and dtype) to ``(m,)``
    integer labels; it is called once on a ``resolution × resolution`` grid, without gradients.
    """
    if not callable(predict):
        raise TypeError(f"predict: expected a function X -> labels, got {describe(predict)}")
    require_int("resolution", resolution, minimum=2)
    points, labels = _check_points(X, y)
    low, high = points.min(0).values - padding, points.max(0).values + padding
    xs = torch.linspace(float(low[0]), float(high[0]), resolution)
    ys = torch.linspace(float(low[1]), float(high[1]), resolution)
    grid_x, grid_y = torch.meshgrid(xs, ys, indexing="xy")
    grid = torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], 1).to(X.device, X.dtype)
    with torch.no_grad():
        predicted = predict(grid)
    if not isinstance(predicted, torch.Tensor) or predicted.shape != (grid.shape[0],):
        raise ValueError(f"predict: expected it to return labels of shape ({grid.shape[0]},), "
                         f"got {describe(predicted)}")
    from matplotlib.colors import ListedColormap

    n_classes = int(max(int(predicted.max()), int(labels.max()))) + 1
    cmap = ListedColormap(CLASS_COLORS[:n_classes])
    fig, ax = _axes(ax, (5.5, 4.5))
    ax.contourf(grid_x, grid_y, predicted.cpu().reshape(resolution, resolution).float(),
                levels=torch.arange(n_classes + 1).float() - 0.5, cmap=cmap, alpha=0.25)
    plot_dataset(points, labels, ax=ax, title=title or "decision boundary")
    ax.set_aspect("equal", adjustable="box")  # the shading fills the whole axes
    ax.set(xlim=(float(low[0]), float(high[0])), ylim=(float(low[1]), float(high[1])))
    return fig


def plot_training_curves(history: Mapping[str, Sequence[float]], *, xlabel: str = "epoch",
                         title: str | None = None) -> Figure:
    """Loss and accuracy against the epoch (or the step: ``xlabel="step"``).

    ``history`` maps series names to sequences of numbers; names containing ``"loss"`` go in the
    left panel, those containing ``"acc"`` in the right one, e.g.
    ``{"train loss": [...], "test loss": [...], "train acc": [...], "test acc": [...]}``.
    """
    if not isinstance(history, Mapping) or not history:
        raise TypeError(f"history: expected a non-empty dict of name -> list of numbers, got {describe(history)}")
    panels = {"loss": [k for k in history if "loss" in k.lower()],
              "accuracy": [k for k in history if "acc" in k.lower()]}
    unplaced = [k for k in history if k not in panels["loss"] + panels["accuracy"]]
    if unplaced:
        raise ValueError(f"history: expected names containing 'loss' or 'acc', got {unplaced}")
    import matplotlib.pyplot as plt

    shown = [p for p in panels if panels[p]]
    fig, axes = plt.subplots(1, len(shown), figsize=(5.5 * len(shown), 4), layout="constrained",
                             squeeze=False)
    plt.close(fig)
    for ax, panel in zip(axes[0], shown):
        for key in panels[panel]:
            values = [float(v) for v in history[key]]
            ax.plot(range(1, len(values) + 1), values, label=key)
        ax.set(xlabel=xlabel, ylabel=panel, title=panel)
        if panel == "loss":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def plot_step_sizes(runs: Mapping[float, Sequence[float]], *, steps_per_epoch: int,
                    title: str | None = None) -> Figure:
    """A step-size sweep: left, the mean loss of each epoch for each step size; right, the mean
    loss of the last epoch against the step size (log axes). A run whose loss became infinite
    or NaN is marked as diverged: an x where its curve stops, and a red x at the top right.

    ``runs`` maps each step size eta to the losses of its steps (one number per step, as many
    epochs of ``steps_per_epoch`` steps as it ran).
    """
    if not isinstance(runs, Mapping) or not runs:
        raise TypeError(f"runs: expected a non-empty dict of step size -> losses, got {describe(runs)}")
    require_int("steps_per_epoch", steps_per_epoch, minimum=1)
    sweep = {}
    for eta, losses in sorted(runs.items()):
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or eta <= 0:
            raise ValueError(f"runs: expected positive step sizes as keys, got {eta!r}")
        values = [float(v) for v in losses]
        if not values:
            raise ValueError(f"runs[{eta!r}]: expected at least one loss, got none")
        sweep[float(eta)] = values
    import math

    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    plt.close(fig)
    finals, diverged = {}, []
    for eta, values in sweep.items():
        epochs = [values[i:i + steps_per_epoch] for i in range(0, len(values), steps_per_epoch)]
        means = [math.fsum(e) / len(e) for e in epochs]
        shown = [m if math.isfinite(m) else float("nan") for m in means]
        blew_up = not all(math.isfinite(m) for m in means)
        line, = left.plot(range(1, len(means) + 1), shown, marker="o", markersize=3,
                          label=f"η = {eta:g}" + (" (diverged)" if blew_up else ""))
        if not blew_up:
            finals[eta] = means[-1]
        else:
            diverged.append(eta)
            last = next((i for i, m in enumerate(means) if not math.isfinite(m)), len(means))
            if last > 0:
                left.plot(last, means[last - 1], "x", color=line.get_color(), markersize=10)
    left.set(xlabel="epoch", ylabel="mean batch loss", yscale="log", title="loss per epoch")
    left.grid(alpha=0.3, which="both")
    left.legend(fontsize="small", ncols=2)
    right.plot(list(finals), list(finals.values()), marker="o", color="#1f77b4",
               label="mean loss, last epoch")
    if diverged:
        top = max(finals.values(), default=1.0) * 3
        right.plot(diverged, [top] * len(diverged), "x", color="#d62728", markersize=10,
                   label="diverged (inf or nan)")
    right.set(xlabel="step size η", ylabel="loss", xscale="log", yscale="log",
              title="after the last epoch")
    right.grid(alpha=0.3, which="both")
    right.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def plot_growth(x: Sequence[float], series: Mapping[str, Sequence[float]], *, xlabel: str = "n",
                ylabel: str = "count", title: str | None = None, logx: bool = False,
                logy: bool = True, ax: Axes | None = None) -> Figure:
    """Curves such as call counts or run times against a size, on a log y-axis by default.

    ``series`` maps a label to values, one per entry of ``x`` (``None`` entries are skipped, so a
    slow method can stop early).
    """
    xs = list(x)
    if not xs:
        raise ValueError("x: expected at least one value, got an empty sequence")
    if not isinstance(series, Mapping) or not series:
        raise TypeError(f"series: expected a non-empty dict of label -> values, got {describe(series)}")
    fig, ax = _axes(ax, (6, 4.2))
    for label, values in series.items():
        values = list(values)
        if len(values) > len(xs):
            raise ValueError(f"series[{label!r}]: expected at most {len(xs)} values, got {len(values)}")
        pairs = [(a, float(b)) for a, b in zip(xs, values) if b is not None]
        ax.plot([a for a, _ in pairs], [b for _, b in pairs], marker="o", markersize=3, label=label)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title or f"{ylabel} against {xlabel}")
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    return fig
