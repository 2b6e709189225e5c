"""The words every module of the checker shares: the rules, the families, qualified names.

A *qualified name* is what a construct means once aliases are resolved: ``torch.autograd.grad``,
``builtins.exec``, ``get_ipython().events``. The catalogues (:mod:`.forbidden`, :mod:`.escapes`,
:mod:`.suspicious`) are tables of qualified names: a name is in a table when it, or an
attribute path above it (``torch.autograd`` for ``torch.autograd.functional.vjp``), is listed
(:func:`within`). Each table leads to a *family*: what kind of thing the name is.
"""

from __future__ import annotations

import builtins
import re

RULES = ("by_hand", "own_softmax", "uses_autograd", "no_torch")
PROHIBITIVE = ("by_hand", "own_softmax", "no_torch")  # the rules that forbid constructs

# families of what a rule forbids (Violation.family) and of what the scan reports (Flag.code);
# each has its words in .sentences
AUTOGRAD = "autograd"
GRADIENT_HELPERS = "gradient_helpers"
TORCH_INTERNALS = "torch_internals"
LIBRARY_SOFTMAX = "library_softmax"
LIBRARY = "library"
PROCESS = "process"
DYNAMIC_CODE = "dynamic_code"
INTERPRETER = "interpreter"
KIT = "kit"
IPYTHON = "ipython"
UNCHECKED_MODULE = "unchecked_module"
UNREADABLE = "unreadable"
EXIT = "exit"
PATCH = "patch"
REBIND = "rebind"
NETWORK = "network"
FILESYSTEM = "filesystem"
GRADING_FILES = "grading_files"
SYNTAX_ERROR = "syntax_error"
UNKNOWN_MODULE = "unknown_module"

SHELL = "get_ipython()"  # the qualified name of what get_ipython() returns
UNRESOLVED = "<unresolved>"  # an alias chain too long to follow

# names a notebook has without binding them: Python's builtins, what the kernel defines
# (IPython's, and the grader's guard at start-up), IPython's input and output history
BUILTIN_NAMES = frozenset(dir(builtins))
INJECTED_NAMES = {"get_ipython": "get_ipython", "display": "IPython.display.display",
                  "_kit_guard": "instructor.kernel_guard"}
HISTORY_NAMES = re.compile(r"^(In|Out|_oh|_ih|_dh|_i+|_i\d+|_\d+|_{1,3})$")


def table(*names: str) -> frozenset[str]:
    """A catalogue's table of qualified names (and prefixes)."""
    return frozenset(names)


def within(name: str, names: frozenset[str]) -> bool:
    """True when ``name`` is in the table ``names`` or lies below one of its entries."""
    if name in names:
        return True
    dot = name.find(".")
    while dot != -1:
        if name[:dot] in names:
            return True
        dot = name.find(".", dot + 1)
    return False


def root(name: str) -> str:
    """The module (or the shell) a qualified name starts from."""
    return SHELL if name.startswith(SHELL) else name.split(".", 1)[0]


# modules other modules import, and so re-export as attributes: lab_utils.data.torch is torch
REEXPORTED = table(
    "torch", "numpy", "sys", "os", "builtins", "importlib", "gc", "ctypes", "inspect",
    "subprocess", "threading", "multiprocessing", "concurrent", "asyncio", "socket", "urllib",
    "http", "pickle", "marshal", "runpy", "functorch", "lab_utils", "instructor", "nbgrader",
    "IPython", "ipykernel", "__main__", "kernel_guard")


def meanings(name: str) -> list[str]:
    """``name``, and what it also is through a module another re-exports
    (``lab_utils.data.torch.autograd.grad`` is ``torch.autograd.grad``)."""
    parts = name.split(".")
    return [name] + [".".join(parts[i:]) for i in range(1, len(parts))
                     if parts[i] in REEXPORTED]
