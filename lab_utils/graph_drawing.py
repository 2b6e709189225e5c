"""Draw a small computational graph of scalar nodes with matplotlib (Lab 4).

A node is any object with ``data``, ``grad`` and ``parents`` (the Values this one was computed
from) and optionally ``op`` and ``local_derivatives()``. Inputs sit on the left, the root on
the right; each box shows a node's name (or operation), value and gradient, and each arrow the
local derivative d(head) / d(tail) when the node's rule can be evaluated. matplotlib is imported
only when a graph is drawn; the figure is closed in pyplot and returned (shown once when it
ends a cell).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._validate import describe, require_int

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LEAF_COLOR, OP_COLOR, ROOT_COLOR = "#dbe9f6", "#f3f3f3", "#fde2c8"


def _nodes(root: Any, limit: int) -> list[Any]:
    """Every node root depends on, each once (no order), or ValueError past ``limit``."""
    known, pending, found = {id(root)}, [root], []
    while pending:
        node = pending.pop()
        found.append(node)
        if len(found) > limit:
            raise ValueError(f"root: expected a graph of at most {limit} nodes to draw, got more")
        for parent in node.parents:
            if id(parent) not in known:
                known.add(id(parent))
                pending.append(parent)
    return found


def _columns(nodes: list[Any]) -> dict[int, int]:
    """Column of each node (by id): one more than its furthest parent; an input sits just
    left of its first user."""
    column: dict[int, int] = {}
    remaining = [node for node in nodes if node.parents]
    while remaining:  # a few passes over a small graph; every pass places at least one node
        left = []
        for node in remaining:
            if all(id(p) in column or not p.parents for p in node.parents):
                column[id(node)] = 1 + max(column.get(id(p), 0) for p in node.parents)
            else:
                left.append(node)
        remaining = left
    for node in nodes:
        for parent in node.parents:
            if not parent.parents:
                column[id(parent)] = min(column.get(id(parent), column[id(node)] - 1),
                                         column[id(node)] - 1)
    column.setdefault(id(nodes[0]), 0)  # a root that is an input
    return column


def _local(node: Any) -> list[float] | None:
    """The node's local derivatives, or None when its rule cannot be evaluated (yet)."""
    rule = getattr(node, "local_derivatives", None)
    try:
        values = list(rule()) if callable(rule) else None
    except Exception:  # an unwritten or broken rule: draw the graph without edge labels
        return None
    return values if values and len(values) == len(node.parents) else None


def draw_graph(root: Any, *, names: Mapping[str, Any] | None = None, title: str | None = None,
               max_nodes: int = 40) -> Figure:
    """Draw the graph of ``root`` with every node's value and gradient.

    ``names`` maps a label to a node (e.g. ``{"a": a, "b": b}``); other nodes are labelled by
    their ``op``. At most ``max_nodes`` nodes (a larger drawing is unreadable).
    """
    for attribute in ("data", "grad", "parents"):
        if not hasattr(root, attribute):
            raise TypeError(f"root: expected a Value (with .data, .grad, .parents), got "
                            f"{describe(root)}")
    require_int("max_nodes", max_nodes, minimum=1)
    if names is not None and not isinstance(names, Mapping):
        raise TypeError(f"names: expected a dict label -> node, got {describe(names)}")
    label_of = {id(node): label for label, node in (names or {}).items()}
    nodes = _nodes(root, max_nodes)
    column = _columns(nodes)
    by_column: dict[int, list[Any]] = {}
    for node in nodes:
        by_column.setdefault(column[id(node)], []).append(node)
    row: dict[int, float] = {}
    for c in sorted(by_column):  # order each column by where its nodes' parents sit
        members = by_column[c]
        members.sort(key=lambda n: sum(row[id(p)] for p in n.parents) / len(n.parents)
                     if n.parents else 0.0)
        for k, node in enumerate(members):
            row[id(node)] = k - (len(members) - 1) / 2

    import matplotlib.pyplot as plt

    width, height = max(by_column) + 1, max(len(m) for m in by_column.values())
    fig, ax = plt.subplots(figsize=(min(2.3 * width + 1, 16), min(1.3 * height + 1.2, 10)),
                           layout="constrained")
    plt.close(fig)
    boxes = {}
    for node in nodes:
        op = getattr(node, "op", "")
        name = label_of.get(id(node))
        name = f"{name} = {op}" if name and op else name or op or "input"
        color = ROOT_COLOR if node is root else OP_COLOR if node.parents else LEAF_COLOR
        boxes[id(node)] = ax.text(
            column[id(node)], row[id(node)],
            f"{name}\n{node.data:.4g}\ngrad {node.grad:.4g}", ha="center", va="center",
            fontsize=9, bbox={"boxstyle": "round,pad=0.4", "facecolor": color,
                              "edgecolor": "#555555"})
    for node in nodes:
        local = _local(node)
        seen: dict[int, int] = {}
        for k, parent in enumerate(node.parents):
            repeat = seen.get(id(parent), 0)  # a * a: two arrows, bent apart
            seen[id(parent)] = repeat + 1
            bend = 0.25 * repeat * (-1) ** repeat
            ax.annotate("", xy=(0, 0.5), xycoords=boxes[id(node)], xytext=(1, 0.5),
                        textcoords=boxes[id(parent)],
                        arrowprops={"arrowstyle": "-|>", "color": "#555555", "lw": 1,
                                    "connectionstyle": f"arc3,rad={bend}"})
            if local is not None:
                x = (column[id(node)] + column[id(parent)]) / 2
                y = (row[id(node)] + row[id(parent)]) / 2 + 0.18 * (repeat + 0.5)
                ax.text(x, y, f"{local[k]:.3g}", ha="center", va="center", fontsize=8,
                        color="#1f4e99")
    ax.set(xlim=(-0.6, width - 0.4), ylim=(-height / 2 - 0.2, height / 2 + 0.2),
           title=title or "computational graph: value and gradient of each node")
    ax.axis("off")
    return fig
