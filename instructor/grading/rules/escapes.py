"""The ways around any rule: code run elsewhere, code from strings, the interpreter's, IPython's
and the grader's internals, modules the checker cannot read.

Every prohibitive rule forbids these inside a ruled function (:func:`escape_family`,
:func:`unchecked_family`); the scan reports most of them anywhere in the student's cells
(:mod:`.suspicious`, which reuses these tables).
"""

from __future__ import annotations

import sys

from .vocabulary import (
    DYNAMIC_CODE,
    INTERPRETER,
    IPYTHON,
    KIT,
    PROCESS,
    SHELL,
    UNCHECKED_MODULE,
    root,
    table,
    within,
)

KIT_MODULES = table("instructor", "nbgrader", "kernel_guard", "lab_utils.testing")
PROCESS_MODULES = table(
    "threading", "_thread", "concurrent", "multiprocessing", "subprocess", "asyncio", "pty",
    "_posixsubprocess", "sched", "joblib", "os.system", "os.popen", "os.fork", "os.forkpty",
    "os.execl", "os.execle", "os.execlp", "os.execlpe", "os.execv", "os.execve", "os.execvp",
    "os.execvpe", "os.spawnl", "os.spawnle", "os.spawnlp", "os.spawnlpe", "os.spawnv",
    "os.spawnve", "os.spawnvp", "os.spawnvpe", "os.posix_spawn", "os.posix_spawnp",
    "os.startfile", "torch.multiprocessing", "torch.distributed", "torch.jit.fork",
    "torch.jit._fork", f"{SHELL}.system", f"{SHELL}.system_raw", f"{SHELL}.system_piped",
    f"{SHELL}.getoutput")
DYNAMIC_MODULES = table(
    "builtins.exec", "builtins.eval", "builtins.compile", "builtins.__import__", "importlib",
    "runpy", "types.FunctionType", "types.LambdaType", "types.CodeType", "marshal", "pickle",
    "_pickle", "copyreg", "code", "codeop")
# only inside a ruled function: they also run code from strings or reach attributes by name
RULE_DYNAMIC_MODULES = table("builtins.globals", "timeit", "torch.utils.benchmark",
                             "operator.attrgetter", "operator.methodcaller")
INTERPRETER_MODULES = table(
    "gc", "ctypes", "_ctypes", "inspect", "sys._getframe", "sys._current_frames",
    "sys.settrace", "sys.setprofile", "sys.modules", "sys.meta_path", "sys.path_hooks",
    "sys.path_importer_cache", "sys.addaudithook", "sys.path", "__main__",
    "builtins.breakpoint", "pdb", "bdb", "trace", "threading.settrace", "threading.setprofile")
INTERPRETER_ATTRIBUTES = table(
    "__code__", "__globals__", "__builtins__", "__closure__", "__subclasses__", "__bases__",
    "__base__", "__mro__", "__defaults__", "__kwdefaults__", "f_globals", "f_locals", "f_back",
    "f_builtins", "f_code", "tb_frame", "gi_frame", "gi_code", "cr_frame", "cr_code",
    "ag_frame")
IPYTHON_MODULES = table("sys.excepthook", "sys.displayhook", "ipykernel", "IPython.core",
                        "IPython.kernel", "IPython.terminal", "IPython.get_ipython",
                        "IPython.Application")
IPYTHON_ALLOWED = table("IPython.display")


def reaches_internals(name: str) -> bool:
    """``name`` goes through an attribute of the interpreter's internals (``f.__globals__``)."""
    return any(part in INTERPRETER_ATTRIBUTES for part in name.split(".")[1:])


def escape_family(name: str) -> str | None:
    """Families every prohibitive rule forbids: code that runs elsewhere, code from strings,
    the interpreter's and the grader's internals."""
    if reaches_internals(name):
        return INTERPRETER
    if within(name, KIT_MODULES):
        return KIT
    if within(name, PROCESS_MODULES):
        return PROCESS
    if within(name, DYNAMIC_MODULES) or within(name, RULE_DYNAMIC_MODULES):
        return DYNAMIC_CODE
    if within(name, INTERPRETER_MODULES):
        return INTERPRETER
    if name.startswith(SHELL) or name == "get_ipython" or within(name, IPYTHON_MODULES):
        return IPYTHON
    if name.startswith("IPython") and not within(name, IPYTHON_ALLOWED):
        return IPYTHON
    return None


# modules a ruled function may reach: the standard library and the libraries the labs know.
# Anything else (a module the student wrote to disk, say) cannot be checked.
KNOWN_ROOTS = frozenset(sys.stdlib_module_names) | table(
    "torch", "numpy", "lab_utils", "tqdm", "matplotlib", "scipy", "pandas", "sympy",
    "IPython", "ipywidgets", "functorch", "jax", "jaxlib", "autograd", "tensorflow",
    "sklearn", "seaborn", "PIL", "einops", "networkx", "graphviz", "torchviz", "plotly",
    "mpmath", "instructor", "nbgrader", "kernel_guard", "ipykernel", "builtins", "__main__",
    "traitlets", "joblib", "requests", "httpx", "aiohttp", "urllib3", "websocket",
    "websockets", "paramiko", SHELL, "get_ipython")


def unchecked_family(name: str) -> str | None:
    return UNCHECKED_MODULE if root(name) not in KNOWN_ROOTS else None
