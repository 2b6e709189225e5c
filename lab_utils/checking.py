"""Check hand-written gradients against torch autograd (or finite differences), tensor by tensor.

Typical use in a notebook::

    reference = autograd_gradients(lambda p: loss_of(p, X, Y), params)   # dict like params
    check_gradients(my_grads, reference, batch_size=len(X))              # prints a table

Each tensor must first match the reference exactly in shape, dtype and device (a ``(n,)``
never passes for ``(n, 1)``: there is no broadcasting), then agree within a tolerance,
``|g - g_ref| <= atol + rtol |g_ref|`` entry by entry (``torch.testing.assert_close``'s rule,
without importing it: its first use costs seconds). The table reports the largest absolute
error and the relative error ``max|g - g_ref| / max|g_ref|``. As a rule of thumb: about 1e-7 or less in
float64 (1e-5 in float32) means correct; above 1e-2 means a real mistake. Where a failure has a
recognisable cause (a batch-size factor, a transpose, a sign...) the table says which.

A failed check raises :class:`CheckFailed`, an ``AssertionError`` whose message is the table. In a
notebook the table is then shown once, as the error, without a traceback through ``lab_utils``
(IPython shows what ``_render_traceback_`` returns; pytest and IPython also skip frames that set
``__tracebackhide__``).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from ._validate import describe, require_keys

Gradients = torch.Tensor | Mapping[str, torch.Tensor]
Suspects = Mapping[str, Mapping[str, torch.Tensor]]

#: (rtol, atol) per dtype, used when the caller gives none.
DEFAULT_TOLERANCES = {
    torch.float16: (1e-2, 1e-3),
    torch.bfloat16: (2e-2, 1e-2),
    torch.float32: (1e-4, 1e-6),
    torch.float64: (1e-7, 1e-10),
}
GOOD_RELATIVE_ERROR = 1e-7
WRONG_RELATIVE_ERROR = 1e-2


@dataclass
class TensorCheck:
    """The verdict on one tensor."""

    name: str
    passed: bool
    max_abs_error: float | None = None
    rel_error: float | None = None
    problem: str | None = None     # what is wrong, in words (None when passed)
    diagnosis: str | None = None   # the likely mistake and its fix, when recognisable


@dataclass
class GradientReport:
    """The per-tensor verdicts of one comparison; ``str(report)`` is a readable table."""

    checks: list[TensorCheck]
    rtol: float | None = None
    atol: float | None = None
    title: str = "gradient check"
    extra: list[str] = field(default_factory=list)
    summary: str | None = None     # one sentence under the title (e.g. the first wrong step)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def __bool__(self) -> bool:
        return self.passed

    def __getitem__(self, name: str) -> TensorCheck:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(f"name: expected one of {[c.name for c in self.checks]}, got {name!r}")

    def __str__(self) -> str:
        width = max([len("tensor")] + [len(c.name) for c in self.checks])
        lines = [f"{self.title}: {'PASSED' if self.passed else 'FAILED'}"]
        if self.summary:
            lines.append(_fill(self.summary, "  ", "    "))
        lines.append(f"  {'tensor':<{width}}  {'max |error|':>11}  {'rel. error':>10}  verdict")
        for c in self.checks:
            abs_text = "-" if c.max_abs_error is None else f"{c.max_abs_error:.2e}"
            rel_text = "-" if c.rel_error is None else f"{c.rel_error:.2e}"
            verdict = "ok" if c.passed else f"WRONG: {c.problem}"
            lines.append(f"  {c.name:<{width}}  {abs_text:>11}  {rel_text:>10}  {verdict}")
            if c.diagnosis:
                indent = " " * (width + 29)
                lines.append(_fill(f"-> likely: {c.diagnosis}", indent, indent + "   "))
        lines.extend(self.extra)
        if not self.passed:
            lines.append(f"  (relative error ~{GOOD_RELATIVE_ERROR:g} is good, above "
                         f"{WRONG_RELATIVE_ERROR:g} is wrong)")
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython display
        printer.text(str(self))


_KEEP_TOGETHER = (" - ", " = ", " ⊙ ", " + ")


def _fill(text: str, first: str, rest: str, width: int = 100) -> str:
    """Wrap ``text`` at ``width`` columns without breaking a formula such as ``1 - h²``."""
    for glue in _KEEP_TOGETHER:
        text = text.replace(glue, glue.replace(" ", "\u00a0"))
    wrapped = textwrap.fill(text, width, initial_indent=first, subsequent_indent=rest,
                            break_on_hyphens=False, break_long_words=False)
    return wrapped.replace("\u00a0", " ")


class CheckFailed(AssertionError):
    """A failed check; the message is the report's table (``report`` holds the report).

    IPython displays it as the table alone, first line in red, with no traceback: the failure
    is in the code being checked, not in ``lab_utils``.
    """

    def __init__(self, report: GradientReport):
        super().__init__("\n" + str(report))
        self.report = report

    def _render_traceback_(self) -> list[str]:
        first, *rest = str(self.report).splitlines()
        return [f"\x1b[1;31m{type(self).__name__}\x1b[0m: {first}", *rest]


def _as_dict(name: str, grads: Gradients) -> dict[str, torch.Tensor]:
    if isinstance(grads, torch.Tensor):
        return {"gradient": grads}
    if isinstance(grads, Mapping):
        return dict(grads)
    raise TypeError(f"{name}: expected a tensor or a dict of tensors, got {describe(grads)}")


def compare_gradients(actual: Gradients, expected: Gradients, *, rtol: float | None = None,
                      atol: float | None = None, batch_size: int | None = None,
                      suspects: Suspects | None = None, from_autograd: bool = False,
                      title: str = "gradient check") -> GradientReport:
    """Compare ``actual`` with ``expected`` tensor by tensor and return the report (never raises
    on a wrong gradient; raises ``TypeError``/``KeyError`` on malformed arguments).

    ``actual`` and ``expected`` are both tensors or both dicts; a dict ``actual`` must hold every
    key of ``expected``. ``batch_size`` and ``suspects`` (per tensor name, a dict from a
    description of a known mistake to the gradient that mistake produces) let the report name
    the likely mistake; ``from_autograd=True`` says ``actual`` came from ``.grad`` after
    ``loss.backward()``, so that a whole multiple of the reference is named as gradients
    accumulated over several steps (a forgotten ``zero_()``).
    """
    from .diagnosis import diagnose

    want = _as_dict("expected", expected)
    got = _as_dict("actual", actual)
    if isinstance(expected, Mapping):
        require_keys("actual", got, want)
    checks = []
    for name, reference in want.items():
        if not isinstance(reference, torch.Tensor):
            raise TypeError(f"expected[{name!r}]: expected a tensor, got {describe(reference)}")
        checks.append(_check_one(name, got[name], reference.detach(), rtol, atol, batch_size,
                                 (suspects or {}).get(name, {}), from_autograd, diagnose))
    return GradientReport(checks, rtol, atol, title)


def _check_one(name, value, reference, rtol, atol, batch_size, suspects, from_autograd,
               diagnose) -> TensorCheck:
    if not isinstance(value, torch.Tensor):
        return TensorCheck(name, False, problem=f"expected a tensor, got {describe(value)}")
    value = value.detach()
    problem = None
    if value.shape != reference.shape:
        problem = f"shape {tuple(value.shape)}, expected {tuple(reference.shape)}"
    elif value.dtype != reference.dtype:
        problem = f"dtype {value.dtype}, expected {reference.dtype}"
    elif value.device != reference.device:
        problem = f"on {value.device}, expected on {reference.device}"
    elif not bool(torch.isfinite(value).all()):
        problem = f"{int((~torch.isfinite(value)).sum())} NaN or infinite entries"
    max_abs = rel = None
    if problem is None:
        difference = (value - reference).abs()
        max_abs = float(difference.max()) if difference.numel() else 0.0
        scale = float(reference.abs().max()) if reference.numel() else 0.0
        rel = max_abs / max(scale, torch.finfo(reference.dtype).tiny)
        default_rtol, default_atol = DEFAULT_TOLERANCES.get(reference.dtype, (1e-5, 1e-8))
        allowed = ((default_atol if atol is None else atol)
                   + (default_rtol if rtol is None else rtol) * reference.abs())
        if not bool((difference <= allowed).all()):
            problem = "values differ beyond tolerance"
    if problem is None:
        return TensorCheck(name, True, max_abs, rel)
    hint = diagnose(name, value, reference, batch_size=batch_size, suspects=suspects,
                    from_autograd=from_autograd)
    return TensorCheck(name, False, max_abs, rel, problem, hint)


def check_gradients(actual: Gradients, expected: Gradients, *, rtol: float | None = None,
                    atol: float | None = None, batch_size: int | None = None,
                    suspects: Suspects | None = None, from_autograd: bool = False,
                    verbose: bool = True, title: str = "gradient check") -> GradientReport:
    """Like :func:`compare_gradients`, then print the table if it passed (``verbose``), or raise
    :class:`CheckFailed` (an ``AssertionError``) carrying the table if any tensor is wrong."""
    __tracebackhide__ = True
    report = compare_gradients(actual, expected, rtol=rtol, atol=atol, batch_size=batch_size,
                               suspects=suspects, from_autograd=from_autograd, title=title)
    return finish_report(report, verbose=verbose)


def finish_report(report: GradientReport, *, verbose: bool = True) -> GradientReport:
    """Return ``report`` if it passed, printing it first (``verbose``); raise
    :class:`CheckFailed` carrying it if it failed (the table is then shown once, as the error)."""
    __tracebackhide__ = True
    if not report.passed:
        raise CheckFailed(report)
    if verbose:
        print(report)
    return report


def autograd_gradients(loss_fn: Callable[..., torch.Tensor], params: Gradients) -> Gradients:
    """The gradient of the scalar ``loss_fn(params)`` with respect to ``params``, by autograd.

    ``params`` is a tensor or a dict of tensors; it is not modified (the function works on
    detached copies), and the result has the same structure, shapes, dtypes and devices.
    """
    inputs = _as_dict("params", params)
    for key, value in inputs.items():
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise TypeError(f"params[{key!r}]: expected a floating-point tensor, got {describe(value)}")
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in inputs.items()}
    with torch.enable_grad():
        loss = loss_fn(leaves["gradient"] if isinstance(params, torch.Tensor) else leaves)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError(f"loss_fn: expected it to return a scalar tensor, got {describe(loss)}")
        grads = torch.autograd.grad(loss.reshape(()), list(leaves.values()), allow_unused=True)
    result = {k: torch.zeros_like(v) if g is None else g for (k, v), g in zip(leaves.items(), grads)}
    return result["gradient"] if isinstance(params, torch.Tensor) else result


def numerical_gradients(loss_fn: Callable[..., torch.Tensor], params: Gradients, *,
                        eps: float = 1e-6) -> Gradients:
    """Central finite differences ``(L(p + eps) - L(p - eps)) / (2 eps)``, entry by entry, in float64.

    Costs two evaluations of ``loss_fn`` per parameter entry: meant for small networks. The
    work is done on the CPU, where every machine has float64 (Apple's MPS has none), so
    ``loss_fn`` receives float64 CPU tensors and must combine them only with CPU tensors. The
    result has the structure of ``params`` and is float64, on the CPU.
    """
    inputs = _as_dict("params", params)
    point = {k: v.detach().to("cpu", torch.float64).clone() for k, v in inputs.items()}

    def loss_at(values):
        value = loss_fn(values["gradient"] if isinstance(params, torch.Tensor) else values)
        return float(value)

    result = {}
    with torch.no_grad():
        for key, tensor in point.items():
            grad = torch.zeros_like(tensor)
            flat, flat_grad = tensor.view(-1), grad.view(-1)
            for i in range(flat.numel()):
                saved = float(flat[i])
                flat[i] = saved + eps
                upper = loss_at(point)
                flat[i] = saved - eps
                lower = loss_at(point)
                flat[i] = saved
                flat_grad[i] = (upper - lower) / (2 * eps)
            result[key] = grad
    return result["gradient"] if isinstance(params, torch.Tensor) else result


def check_gradients_numerically(actual: Gradients, loss_fn: Callable[..., torch.Tensor],
                                params: Gradients, *, eps: float = 1e-6, rtol: float = 1e-5,
                                atol: float = 1e-7, verbose: bool = True) -> GradientReport:
    """Check ``actual`` against float64 finite differences of ``loss_fn`` at ``params`` (on the
    CPU, see :func:`numerical_gradients`).

    ``actual`` is cast to float64 on the CPU for the comparison, so float32 work can be checked
    too; ``loss_fn`` must accept float64 CPU parameters. Keys of ``actual`` that ``params`` lacks
    are ignored.
    """
    __tracebackhide__ = True
    reference = numerical_gradients(loss_fn, params, eps=eps)
    got = _as_dict("actual", actual)
    want = _as_dict("reference", reference)
    require_keys("actual", got, want)
    cast = {k: got[k].detach().to("cpu", torch.float64) if isinstance(got[k], torch.Tensor)
            else got[k] for k in want}
    return check_gradients(cast, want, rtol=rtol, atol=atol, verbose=verbose,
                           title="finite-difference check (float64)")
