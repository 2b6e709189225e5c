"""One sentence per :class:`~.violations.Violation` or :class:`~.flags.Flag`, for the grading
summary and the students' feedback. A new rule, family or flag code gets its words here.

Cells are named by their ``grade_id`` when they have one, else by their position in the
notebook counted from 1 (``cell 22``); lines are counted from 1 within the cell.
"""

from __future__ import annotations

from .flags import Flag
from .violations import FORBIDDEN, MISSING_AUTOGRAD, Violation

RULE_WORDS = {
    "by_hand": "must be written by hand",
    "own_softmax": "must compute its own softmax",
    "no_torch": "must not use torch, numpy or lab_utils",
    "uses_autograd": "must compute its gradients with autograd",
}
FAMILY_WORDS = {
    "autograd": "autograd",
    "gradient_helpers": "a gradient helper of lab_utils",
    "torch_internals": "torch's internals",
    "library_softmax": "a library softmax",
    "library": "a numerical library",
    "process": "code run in another thread, process or shell",
    "dynamic_code": "code built at run time",
    "interpreter": "the interpreter's internals",
    "kit": "the grader's own modules",
    "ipython": "IPython's internals",
    "unchecked_module": "a module the checker cannot read",
    "unreadable": "code too large or complex to read",
}
FLAG_WORDS = {
    "exit": "exits the kernel",
    "patch": "replaces or patches a library's attribute",
    "rebind": "redefines a name that a locked cell defines",
    "dynamic_code": "runs code built at run time",
    "interpreter": "reaches into the interpreter's internals",
    "kit": "reaches the grader's own modules",
    "ipython": "reaches into IPython's internals",
    "process": "runs code in another thread, process or shell",
    "network": "uses the network",
    "filesystem": "works with files outside the notebook",
    "grading_files": "names the grader's files",
    "unknown_module": "imports a module the checker cannot read",
    "syntax_error": "does not parse",
    "unreadable": "is too large or complex to check",
}


def _cell(grade_id: str | None, index: int) -> str:
    return f"cell `{grade_id}`" if grade_id else f"cell {index + 1}"


def _what(construct: str, resolved: str, family: str) -> str:
    meaning = FAMILY_WORDS.get(family, family)
    if not resolved or resolved == construct:
        return f"`{construct}` ({meaning})"
    return f"`{construct}` (`{resolved}`, {meaning})"


def describe(item: Violation | Flag) -> str:
    """One sentence naming the function, the rule or the suspicion, the construct and where."""
    if isinstance(item, Violation):
        return _violation(item)
    if isinstance(item, Flag):
        return _flag(item)
    raise TypeError(f"item: expected a Violation or a Flag, got {type(item).__name__}")


def _violation(v: Violation) -> str:
    rule = RULE_WORDS.get(v.rule, f"must follow the rule {v.rule}")
    where = f"line {v.line} of {_cell(v.cell, v.index)}"
    if v.code == MISSING_AUTOGRAD:
        return (f"`{v.function}` {rule}, but nothing it runs calls `.backward()` or "
                f"`torch.autograd.grad` ({where}).")
    if v.code == FORBIDDEN:
        if len(v.chain) > 1:
            calls = ", which calls ".join(f"`{name}`" for name in v.chain[1:])
            where = f"it calls {calls}, and {where}"
        what = _what(v.construct, v.resolved, v.family)
        return f"`{v.function}` {rule}, but {where} uses {what}."
    return (f"`{v.function}` {rule}, but it cannot be checked: {where} holds "
            f"{_what(v.construct, v.resolved, v.family)}, which could redefine it unseen.")


def _flag(f: Flag) -> str:
    words = FLAG_WORDS.get(f.code, f"is suspicious ({f.code})")
    where = f"Line {f.line} of {_cell(f.cell, f.index)}"
    if f.code in ("syntax_error", "unreadable"):
        return f"{where} {words} ({f.construct})."
    if not f.resolved or f.resolved == f.construct:
        return f"{where} {words}: `{f.construct}`."
    return f"{where} {words}: `{f.construct}` (`{f.resolved}`)."
