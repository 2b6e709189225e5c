"""What the scan reports anywhere in the student's cells, as tables of qualified names, IPython
magics and path-like strings.

:func:`scan_family` maps a qualified name to a flag code (or None), :func:`patch_family` does
the same for a store to a library's attribute, :func:`magic_family` for a magic and
:func:`string_family` for a string. To report one more construct, add it to a table (a new
table goes in ``_SCAN_TABLES``, a new flag code gets words in :mod:`.sentences`).
"""

from __future__ import annotations

import re

from .escapes import (
    DYNAMIC_MODULES,
    INTERPRETER_MODULES,
    IPYTHON_MODULES,
    KIT_MODULES,
    PROCESS_MODULES,
    reaches_internals,
)
from .vocabulary import (
    DYNAMIC_CODE,
    EXIT,
    FILESYSTEM,
    GRADING_FILES,
    INTERPRETER,
    IPYTHON,
    KIT,
    NETWORK,
    PATCH,
    PROCESS,
    SHELL,
    meanings,
    table,
    within,
)

EXIT_NAMES = table("sys.exit", "builtins.exit", "builtins.quit", "os._exit", "os.abort",
                   "os.kill", "os.killpg", "signal", f"{SHELL}.ask_exit", f"{SHELL}.exit_now")
NETWORK_MODULES = table(
    "socket", "ssl", "urllib", "http", "requests", "httpx", "aiohttp", "urllib3", "ftplib",
    "smtplib", "poplib", "imaplib", "telnetlib", "xmlrpc", "websocket", "websockets",
    "paramiko", "webbrowser", "torch.hub", "asyncio.open_connection", "asyncio.start_server")
FILESYSTEM_NAMES = table("os.chdir", "os.fchdir", "os.path.expanduser", "pathlib.Path.home",
                         "os.chroot")
# a ruled function may not touch the shell at all; the scan reports only its internals
SHELL_INTERNALS = frozenset(f"{SHELL}.{attribute}" for attribute in (
    "events", "set_custom_exc", "showtraceback", "_showtraceback", "showsyntaxerror",
    "CustomTB", "custom_exceptions", "run_cell", "run_cell_async", "run_code",
    "run_ast_nodes", "ast_transformers", "input_transformers_post",
    "input_transformers_cleanup", "input_transformer_manager", "user_ns", "user_global_ns",
    "user_ns_hidden", "kernel", "register_magic_function", "magics_manager", "ex", "ev",
    "history_manager", "displayhook", "display_pub", "push", "del_var", "excepthook",
    "set_hook", "prepare_user_module", "compile", "transform_cell"))
PATCH_ALLOWED = table("torch.backends")  # documented switches, not patches

_SCAN_TABLES = ((EXIT_NAMES, EXIT), (KIT_MODULES, KIT), (NETWORK_MODULES, NETWORK),
                (PROCESS_MODULES, PROCESS), (DYNAMIC_MODULES, DYNAMIC_CODE),
                (INTERPRETER_MODULES, INTERPRETER), (SHELL_INTERNALS, IPYTHON),
                (IPYTHON_MODULES, IPYTHON), (FILESYSTEM_NAMES, FILESYSTEM))


def scan_family(name: str) -> str | None:
    """What the scan reports about a use of ``name`` anywhere in a student's cell."""
    if reaches_internals(name):
        return INTERPRETER
    for meaning in meanings(name):
        for names, family in _SCAN_TABLES:
            if within(meaning, names):
                return family
    return None


def patch_family(name: str) -> str | None:
    """A store to (or setattr on) a library's attribute: a patch, unless it is a documented
    switch or a more specific suspicion (``sys.excepthook = ...`` reaches IPython)."""
    family = scan_family(name)
    if family in (IPYTHON, EXIT, INTERPRETER, KIT):
        return family
    return None if within(name, PATCH_ALLOWED) else PATCH


# ------------------------------------------------------------------------------------ magics

PYTHON_MAGICS = table("time", "timeit", "capture", "prun", "debug")  # their code is Python
HARMLESS_MAGICS = table(
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
OPAQUE_MAGICS = table("run", "rerun", "recall", "macro", "load_ext", "reload_ext", "store",
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


# ----------------------------------------------------------------------------------- strings

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
