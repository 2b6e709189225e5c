"""What each rule forbids and what the scan reports, as tables of qualified names.

A *qualified name* is what a construct means once aliases are resolved: ``torch.autograd.grad``,
``builtins.exec``, ``get_ipython().events``. A table lists names and prefixes: a name is in a
table when it, or an attribute path above it (``torch.autograd`` for
``torch.autograd.functional.vjp``), is listed. Each ``*_family`` function maps a qualified name
to a *family* (``autograd``, ``process``...) or to ``None`` when it is allowed.
"""

from __future__ import annotations

import builtins
import re
import sys

RULES = ("by_hand", "own_softmax", "uses_autograd", "no_torch")

# families of what a rule forbids (Violation.family) and of what the scan reports (Flag.code)
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

BUILTIN_NAMES = frozenset(dir(builtins))
SHELL = "get_ipython()"  # the qualified name of what get_ipython() returns
UNRESOLVED = "<unresolved>"  # an alias chain too long to follow

# IPython puts these in the notebook's namespace: the input and output history
HISTORY_NAMES = re.compile(r"^(In|Out|_oh|_ih|_dh|_i+|_i\d+|_\d+|_{1,3})$")


def _names(*names: str) -> frozenset[str]:
    return frozenset(names)


def within(name: str, table) -> bool:
    """True when ``name`` is in ``table`` or lies below one of its entries."""
    if name in table:
        return True
    dot = name.find(".")
    while dot != -1:
        if name[:dot] in table:
            return True
        dot = name.find(".", dot + 1)
    return False


def root(name: str) -> str:
    return SHELL if name.startswith(SHELL) else name.split(".", 1)[0]


# modules other modules import, and so re-export as attributes: lab_utils.data.torch is torch
REEXPORTED = _names(
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


# ----------------------------------------------------------------------------------- autograd

TENSOR_AUTOGRAD_ATTRIBUTES = _names(
    "grad", "_grad", "backward", "requires_grad", "requires_grad_", "grad_fn", "_grad_fn",
    "retain_grad", "retains_grad", "register_hook", "register_post_accumulate_grad_hook",
    "_backward_hooks", "_execution_engine", "run_backward", "_run_backward")
AUTOGRAD_MODULES = _names(
    "torch.autograd", "torch.func", "functorch", "torch._functorch", "torch.nn.grad",
    "torch.enable_grad", "torch.set_grad_enabled", "torch.nn.Parameter", "torch.nn.parameter",
    "torch._C._ImperativeEngine", "torch._C._EngineBase", "torch._C._autograd",
    "torch._C._functions", "torch._C._functorch", "jax", "autograd")
AUTOGRAD_ALLOWED = _names(
    "torch.autograd.no_grad", "torch.autograd.grad_mode.no_grad",
    "torch.autograd.inference_mode", "torch.autograd.grad_mode.inference_mode")
# what uses_autograd accepts as "computes its gradients with autograd"
GRADIENT_COMPUTATIONS = _names(
    "torch.autograd.grad", "torch.autograd.backward", "torch.Tensor.backward",
    "torch.autograd.functional", "torch.func", "functorch", "torch.autograd.forward_ad")

# lab_utils' public helpers that compute or compare gradients (the rest loads data, picks a
# device, plots and times); tests/test_rules.py checks that this list follows lab_utils.
GRADIENT_HELPER_NAMES = _names(
    "GradientReport", "autograd_gradients", "check_gradients", "check_gradients_numerically",
    "compare_gradients", "numerical_gradients", "diagnose", "check_mlp_gradients", "mlp_loss",
    "mlp_reference_gradients")
GRADIENT_HELPER_MODULES = _names("lab_utils.checking", "lab_utils.mlp", "lab_utils.diagnosis")


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


# -------------------------------------------------------------------------------- own softmax

SOFTMAX_NAMES = _names(
    "softmax", "log_softmax", "softmin", "_softmax", "_log_softmax", "cross_entropy",
    "nll_loss", "gumbel_softmax", "Softmax", "LogSoftmax", "Softmin", "Softmax2d",
    "CrossEntropyLoss", "NLLLoss", "AdaptiveLogSoftmaxWithLoss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "BCELoss", "BCEWithLogitsLoss")
SOFTMAX_ATTRIBUTES = _names("softmax", "log_softmax", "softmin")
SOFTMAX_LIBRARIES = _names("torch", "scipy", "jax", "numpy", "sklearn")
MLP_HELPERS = _names("lab_utils.mlp", "lab_utils.mlp_loss", "lab_utils.mlp_reference_gradients",
                     "lab_utils.check_mlp_gradients")


def softmax_family(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] in SOFTMAX_LIBRARIES and any(p in SOFTMAX_NAMES for p in parts[1:]):
        return LIBRARY_SOFTMAX
    return LIBRARY_SOFTMAX if within(name, MLP_HELPERS) else None


# ----------------------------------------------------------------------------------- no_torch

ARRAY_LIBRARIES = _names("torch", "numpy", "lab_utils", "functorch", "jax", "jaxlib",
                         "tensorflow", "autograd", "scipy", "sympy", "mpmath")


def library_family(name: str) -> str | None:
    return LIBRARY if within(name, ARRAY_LIBRARIES) else None


# ------------------------------------------------ escapes: what every prohibitive rule forbids

KIT_MODULES = _names("instructor", "nbgrader", "kernel_guard", "lab_utils.testing")
PROCESS_MODULES = _names(
    "threading", "_thread", "concurrent", "multiprocessing", "subprocess", "asyncio", "pty",
    "_posixsubprocess", "sched", "joblib", "os.system", "os.popen", "os.fork", "os.forkpty",
    "os.execl", "os.execle", "os.execlp", "os.execlpe", "os.execv", "os.execve", "os.execvp",
    "os.execvpe", "os.spawnl", "os.spawnle", "os.spawnlp", "os.spawnlpe", "os.spawnv",
    "os.spawnve", "os.spawnvp", "os.spawnvpe", "os.posix_spawn", "os.posix_spawnp",
    "os.startfile", "torch.multiprocessing", "torch.distributed", "torch.jit.fork",
    "torch.jit._fork", f"{SHELL}.system", f"{SHELL}.system_raw", f"{SHELL}.system_piped",
    f"{SHELL}.getoutput")
DYNAMIC_MODULES = _names(
    "builtins.exec", "builtins.eval", "builtins.compile", "builtins.__import__", "importlib",
    "runpy", "types.FunctionType", "types.LambdaType", "types.CodeType", "marshal", "pickle",
    "_pickle", "copyreg", "code", "codeop")
# only inside a ruled function: they also run code from strings or reach attributes by name
RULE_DYNAMIC_MODULES = _names("builtins.globals", "timeit", "torch.utils.benchmark",
                              "operator.attrgetter", "operator.methodcaller")
INTERPRETER_MODULES = _names(
    "gc", "ctypes", "_ctypes", "inspect", "sys._getframe", "sys._current_frames",
    "sys.settrace", "sys.setprofile", "sys.modules", "sys.meta_path", "sys.path_hooks",
    "sys.path_importer_cache", "sys.addaudithook", "sys.path", "__main__",
    "builtins.breakpoint", "pdb", "bdb", "trace", "threading.settrace", "threading.setprofile")
INTERPRETER_ATTRIBUTES = _names(
    "__code__", "__globals__", "__builtins__", "__closure__", "__subclasses__", "__bases__",
    "__base__", "__mro__", "__defaults__", "__kwdefaults__", "f_globals", "f_locals", "f_back",
    "f_builtins", "f_code", "tb_frame", "gi_frame", "gi_code", "cr_frame", "cr_code",
    "ag_frame")
IPYTHON_MODULES = _names("sys.excepthook", "sys.displayhook", "ipykernel", "IPython.core",
                         "IPython.kernel", "IPython.terminal", "IPython.get_ipython",
                         "IPython.Application")
# a ruled function may not touch the shell at all; the scan reports only its internals
SHELL_INTERNALS = frozenset(f"{SHELL}.{attribute}" for attribute in (
    "events", "set_custom_exc", "showtraceback", "_showtraceback", "showsyntaxerror",
    "CustomTB", "custom_exceptions", "run_cell", "run_cell_async", "run_code",
    "run_ast_nodes", "ast_transformers", "input_transformers_post",
    "input_transformers_cleanup", "input_transformer_manager", "user_ns", "user_global_ns",
    "user_ns_hidden", "kernel", "register_magic_function", "magics_manager", "ex", "ev",
    "history_manager", "displayhook", "display_pub", "push", "del_var", "excepthook",
    "set_hook", "prepare_user_module", "compile", "transform_cell"))


def _reaches_internals(name: str) -> bool:
    return any(part in INTERPRETER_ATTRIBUTES for part in name.split(".")[1:])


def escape_family(name: str) -> str | None:
    """Families every prohibitive rule forbids: code that runs elsewhere, code from strings,
    the interpreter's and the grader's internals."""
    if _reaches_internals(name):
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
    if name.startswith("IPython") and not within(name, _names("IPython.display")):
        return IPYTHON
    return None


# modules a ruled function may reach: the standard library and the libraries the labs know.
# Anything else (a module the student wrote to disk, say) cannot be checked.
KNOWN_ROOTS = frozenset(sys.stdlib_module_names) | _names(
    "torch", "numpy", "lab_utils", "tqdm", "matplotlib", "scipy", "pandas", "sympy",
    "IPython", "ipywidgets", "functorch", "jax", "jaxlib", "autograd", "tensorflow",
    "sklearn", "seaborn", "PIL", "einops", "networkx", "graphviz", "torchviz", "plotly",
    "mpmath", "instructor", "nbgrader", "kernel_guard", "ipykernel", "builtins", "__main__",
    "traitlets", "joblib", "requests", "httpx", "aiohttp", "urllib3", "websocket",
    "websockets", "paramiko", SHELL, "get_ipython")


def unchecked_family(name: str) -> str | None:
    return UNCHECKED_MODULE if root(name) not in KNOWN_ROOTS else None


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


# ------------------------------------------------------------------------------------ the scan

EXIT_NAMES = _names("sys.exit", "builtins.exit", "builtins.quit", "os._exit", "os.abort",
                    "os.kill", "os.killpg", "signal", f"{SHELL}.ask_exit", f"{SHELL}.exit_now")
NETWORK_MODULES = _names(
    "socket", "ssl", "urllib", "http", "requests", "httpx", "aiohttp", "urllib3", "ftplib",
    "smtplib", "poplib", "imaplib", "telnetlib", "xmlrpc", "websocket", "websockets",
    "paramiko", "webbrowser", "torch.hub", "asyncio.open_connection", "asyncio.start_server")
FILESYSTEM_NAMES = _names("os.chdir", "os.fchdir", "os.path.expanduser", "pathlib.Path.home",
                          "os.chroot")
PATCH_ALLOWED = _names("torch.backends")  # documented switches, not patches


def scan_family(name: str) -> str | None:
    """What the scan reports about a use of ``name`` anywhere in a student's cell."""
    if _reaches_internals(name):
        return INTERPRETER
    for meaning in meanings(name):
        for table, family in _SCAN_TABLES:
            if within(meaning, table):
                return family
    return None


_SCAN_TABLES = ((EXIT_NAMES, EXIT), (KIT_MODULES, KIT), (NETWORK_MODULES, NETWORK),
                (PROCESS_MODULES, PROCESS), (DYNAMIC_MODULES, DYNAMIC_CODE),
                (INTERPRETER_MODULES, INTERPRETER), (SHELL_INTERNALS, IPYTHON),
                (IPYTHON_MODULES, IPYTHON), (FILESYSTEM_NAMES, FILESYSTEM))

# IPython magics: what their argument or body is, and how the scan sees them
PYTHON_MAGICS = _names("time", "timeit", "capture", "prun", "debug")  # runs Python
HARMLESS_MAGICS = _names(
    "matplotlib", "precision", "pprint", "who", "whos", "who_ls", "pinfo", "pinfo2", "pdef",
    "pdoc", "psource", "pfile", "psearch", "lsmagic", "magic", "quickref", "history", "page",
    "pdb", "xmode", "colors", "latex", "markdown", "svg", "doctest_mode", "tb", "notebook")
MAGIC_FAMILIES = {
    **dict.fromkeys(("bash", "sh", "script", "system", "sx", "perl", "ruby", "python",
                     "python2", "python3", "pypy", "pip", "conda", "mamba", "micromamba",
                     "uv", "ls", "cat", "cp", "mv", "rm", "mkdir", "rmdir", "ll", "lf", "lk",
                     "lx", "ldir", "less", "man", "clear", "killbgscripts"), PROCESS),
    **dict.fromkeys(("writefile", "file", "load", "cd", "pushd", "popd", "dhist", "bookmark",
                     "save", "logstart", "logon", "logoff", "dirs", "pwd"), FILESYSTEM),
    **dict.fromkeys(("run", "rerun", "recall", "macro", "alias", "unalias", "load_ext",
                     "reload_ext", "unload_ext", "store", "reset", "reset_selective", "xdel",
                     "env", "set_env", "autocall", "automagic", "code_wrap", "edit"),
                    DYNAMIC_CODE),
    **dict.fromkeys(("javascript", "js", "html"), IPYTHON),
}
# magics that run code the checker cannot read, in the notebook's namespace
OPAQUE_MAGICS = _names("run", "rerun", "recall", "macro", "load_ext", "reload_ext", "store",
                       "edit")
# IPython's own autoreload only re-imports modules (which are checked where imported)
AUTORELOAD = ("load_ext autoreload", "reload_ext autoreload")


def is_opaque_magic(name: str, argument: str) -> bool:
    return name in OPAQUE_MAGICS and f"{name} {argument.strip()}" not in AUTORELOAD


def magic_family(name: str, argument: str) -> str | None:
    """How the scan sees ``%name argument`` (or ``%%name``): None for harmless magics."""
    if name in PYTHON_MAGICS or name in HARMLESS_MAGICS or name in ("autoreload", "aimport"):
        return None
    if f"{name} {argument.strip()}" in AUTORELOAD:
        return None
    if name == "config":
        return None if argument.strip().startswith("InlineBackend") else IPYTHON
    return MAGIC_FAMILIES.get(name, IPYTHON)


# strings that name a place outside the submission's folder, or the grader's own files
ABSOLUTE_PATH = re.compile(r"^(/[^/\s]|~[/\\]|[A-Za-z]:[\\/]|\\\\)")
PARENT_PATH = re.compile(r"(^|[\\/])\.\.([\\/]|$)")
GRADING_PATH = re.compile(r"gradebook|nbgrader|autograded|(^|[\\/])(submitted|solutions)"
                          r"([\\/]|$)", re.IGNORECASE)


def string_family(text: str) -> str | None:
    if GRADING_PATH.search(text):
        return GRADING_FILES
    if ABSOLUTE_PATH.match(text) or PARENT_PATH.search(text):
        return FILESYSTEM
    return None
