#!/usr/bin/env python3
"""One entry point for the Backprop Lab Kit.

Students::

    python3 kit.py lab            # set up .venv (first time) and open JupyterLab on notebooks/
    python3 kit.py lab --no-browser --port 8888 --ip 127.0.0.1  # e.g. on a remote machine

``lab`` shows students only what they use: nbgrader's Validate button, and its Assignments tab
when an nbgrader exchange is set up (a JupyterHub); Formgrader, the course list and the "Create
Assignment" panel are switched off. ``lab --instructor`` switches everything on (and, in a
plain local course without an exchange, gives nbgrader one in ``exchange/``).

Everyone (and CI)::

    python3 kit.py test           # set up .venv (first time) and run the whole test suite

Instructors::

    python3 kit.py lab --instructor   # JupyterLab on the whole course, Formgrader included
    python3 kit.py release | collect | grade | feedback | export   (see README.md)
    python3 kit.py bench [--quick]

This file uses the standard library only: it creates the virtual environment, installs the
project into it (``pip install -e .[test] -c constraints.txt``) once, and re-runs itself there.
Set ``KIT_VENV`` to put the environment elsewhere. In the student bundle (no tests, no
instructor tools next to it) it offers only ``lab``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("KIT_VENV", ROOT / ".venv"))
STAMP = VENV / ".kit-installed"
INSTALL_INPUTS = ("pyproject.toml", "constraints.txt")
COMPILED = ("lab_utils", "instructor", "benchmarks")  # compiled before the suite runs
# byte-compiles, on every core, the .py files in the folders and files named on its stdin (one
# per line) that have no up-to-date .pyc yet: what pip would compile one file after another.
# The few files in site-packages that are not valid Python on purpose stay uncompiled, as pip
# leaves them.
COMPILE = ("import compileall, concurrent.futures, functools, pathlib, sys\n"
           "paths = [pathlib.Path(line) for line in sys.stdin.read().splitlines()]\n"
           "files = [str(f) for p in paths for f in (p.rglob('*.py') if p.is_dir() else [p])\n"
           "         if f.suffix == '.py']\n"
           "with concurrent.futures.ProcessPoolExecutor() as pool:\n"
           "    list(pool.map(functools.partial(compileall.compile_file, quiet=2), files,\n"
           "                  chunksize=64))")
SITE_PACKAGES = ("import sysconfig\n"
                 "print('\\n'.join({sysconfig.get_paths()[k] for k in ('purelib', 'platlib')}))")

COMMANDS = {  # command -> (what it needs next to kit.py, help line)
    "lab": ("notebooks", "open JupyterLab on notebooks/ (add --no-browser on a remote machine; "
                         "--instructor opens the whole course, for Formgrader)"),
    "test": ("tests", "ruff, then the whole test suite (extra arguments go to pytest)"),
    "release": ("instructor", "regenerate notebooks/ from solutions/ and build the student bundle"),
    "collect": ("instructor", "import submissions (nbgrader folders, an LMS zip, the exchange)"),
    "grade": ("instructor", "autograde submissions in parallel, sandboxed, into the gradebook"),
    "feedback": ("instructor", "write per-student HTML feedback"),
    "export": ("instructor", "write grades.csv and the grading summary"),
    "bench": ("benchmarks", "run the benchmarks and write docs/benchmarks.md"),
}


# What students do not use: nbgrader's JupyterLab plugins and server extensions for instructors,
# and those of the exchange (Assignments tab, its menu) when there is no exchange.
INSTRUCTOR_PLUGINS = ("@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:course-list",
                      "@jupyter/nbgrader:create-assignment")
EXCHANGE_PLUGINS = ("@jupyter/nbgrader:assignment-list", "@jupyter/nbgrader:menu")
INSTRUCTOR_SERVER_EXTENSIONS = ("nbgrader.server_extensions.formgrader",
                                "nbgrader.server_extensions.course_list")
EXCHANGE_SERVER_EXTENSIONS = ("nbgrader.server_extensions.assignment_list",)

# Run in the environment: is nbgrader's exchange usable from this folder? It reads nbgrader's
# configuration files as nbgrader does (this folder first, then Jupyter's config folders; no
# nbgrader import, which takes seconds). Another exchange class (ExchangeFactory) counts as set up.
EXCHANGE_PROBE = """
import json, os
from jupyter_core.paths import jupyter_config_path
from traitlets.config import Config, ConfigFileNotFound, JSONFileConfigLoader, PyFileConfigLoader
config = Config()
for folder in reversed([os.getcwd(), *jupyter_config_path()]):
    for loader, name in ((PyFileConfigLoader, "nbgrader_config.py"),
                         (JSONFileConfigLoader, "nbgrader_config.json")):
        try:
            config.merge(loader(name, path=folder).load_config())
        except ConfigFileNotFound:
            pass
root = config.Exchange.get("root", "/srv/nbgrader/exchange")
custom = bool(config.get("ExchangeFactory"))
print(json.dumps({"root": root, "ready": custom or os.path.isdir(root)}))
"""


def available() -> list[str]:
    """The commands this copy can run (a student bundle has no tests or instructor tools)."""
    return [name for name, (needs, _) in COMMANDS.items() if (ROOT / needs).is_dir()]


def usage() -> str:
    lines = ["usage: python3 kit.py COMMAND [ARGS...]", ""]
    lines += [f"  {name:9s} {COMMANDS[name][1]}" for name in available()]
    if "grade" in available():
        lines += ["", "instructor commands take --help for their options."]
    return "\n".join(lines) + "\n"


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def install_fingerprint() -> str:
    digest = hashlib.sha256()
    for name in INSTALL_INPUTS:
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def ensure_environment() -> Path:
    """Create the virtual environment and install the kit into it, unless already done."""
    if sys.version_info < (3, 10):
        sys.exit(f"kit.py: Python >= 3.10 is required, this is {sys.version.split()[0]}")
    python = venv_python()
    wanted = install_fingerprint()
    if python.exists() and STAMP.exists() and STAMP.read_text().strip() == wanted:
        return python
    if not python.exists():
        print(f"kit.py: creating the virtual environment in {VENV}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    print("kit.py: installing the kit and its dependencies (first run only)", flush=True)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet"]
    constrained = [*pip, "--no-compile", "-c", str(ROOT / "constraints.txt")]
    target = f"{ROOT}[test]" if (ROOT / "tests").is_dir() else f"{ROOT}[lab]"  # [lab]: bundle
    site = [Path(folder) for folder in subprocess.run(
        [str(python), "-c", SITE_PACKAGES], capture_output=True, text=True, check=True
    ).stdout.splitlines() if Path(folder).is_dir()]
    # the newest pip: Python 3.10.0's own cannot install a pyproject project editable, and newer
    # ones resolve the kit's dependencies faster
    _pip([*pip, "--upgrade", "pip"])
    # torch (thousands of files) and its dependencies first; then, while pip installs the rest
    # on one core, what it has installed is byte-compiled on the others; then whatever is not
    # compiled yet
    _pip([*constrained, "torch"])
    compiler = _Compiler(python, site)
    try:
        _pip([*constrained, "-e", target], meanwhile=compiler.poll)
    finally:
        compiler.wait()
    _compile(python, site).wait()
    STAMP.write_text(wanted + "\n")
    return python


def _pip(command: list[str], *, meanwhile: Callable[[], None] | None = None) -> None:
    """Run one pip command, calling ``meanwhile`` about once a second while it runs; pip's own
    output only when it failed, then exit."""
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, text=True)
        while True:
            try:
                process.wait(timeout=1)
                break
            except subprocess.TimeoutExpired:
                if meanwhile is not None:
                    meanwhile()
        if process.returncode != 0:
            output.seek(0)
            sys.stderr.write(output.read())
            sys.exit(f"kit.py: `{' '.join(command[1:])}` failed (exit {process.returncode})")


def _compile(python: Path, paths: list[Path]) -> subprocess.Popen:
    """Start byte-compiling ``paths`` (see :data:`COMPILE`) with ``python``."""
    process = subprocess.Popen([str(python), "-c", COMPILE], stdin=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    process.stdin.write("".join(f"{path}\n" for path in paths))
    process.stdin.close()
    return process


class _Compiler:
    """Byte-compiles what is in ``site`` now, then, at each :meth:`poll`, what pip has added
    since: one batch at a time, each entry once it has been there a poll long (pip writes most
    packages whole in less). A file compiled before pip finished writing it gets a .pyc that no
    longer matches it, which the last pass over ``site`` compiles again."""

    def __init__(self, python: Path, site: list[Path]):
        self.python, self.site = python, site
        self.seen = self._entries()
        self.settling: set[Path] = set()  # first seen at the last poll
        self.waiting: set[Path] = set()   # settled, for the next batch
        self.batch = _compile(python, sorted(self.seen))

    def _entries(self) -> set[Path]:
        return {path for folder in self.site for path in folder.iterdir()}

    def poll(self) -> None:
        now = self._entries()
        self.waiting |= self.settling & now
        self.settling = now - self.seen
        self.seen |= now
        if self.waiting and self.batch.poll() is not None:
            self.batch = _compile(self.python, sorted(self.waiting))
            self.waiting = set()

    def wait(self) -> None:
        self.batch.wait()


def run_tests(python: str, args: list[str]) -> int:
    """ruff, then pytest (which runs the solution notebooks through nbval) on three workers, each
    test file whole on one of them (pytest-xdist), unless ``args`` choose otherwise."""
    env = dict(os.environ)
    env["PATH"] = str(Path(python).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("LAB_DEVICE", "cpu")
    env.setdefault("MPLBACKEND", "Agg")
    print("== ruff check", flush=True)
    lint = subprocess.run([python, "-m", "ruff", "check", "."], env=env)
    if lint.returncode != 0:
        print("ruff found problems (see above); fix them or run `ruff check --fix .`", flush=True)
        return lint.returncode
    # the kit's own modules compiled once, not in each of the suite's hundreds of processes
    # (with PYTHONDONTWRITEBYTECODE set, none of them would keep what it compiled)
    subprocess.run([python, "-m", "compileall", "-q",
                    *(name for name in COMPILED if (ROOT / name).is_dir())],
                   cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    print("== pytest", flush=True)
    return subprocess.run([python, "-m", "pytest", *pytest_arguments(args)], env=env).returncode


def pytest_arguments(args: list[str]) -> list[str]:
    """pytest's arguments for ``kit.py test ARGS``: three pytest-xdist workers, each test file
    whole on one, unless ``args`` choose the workers or the distribution themselves. Three on a
    two-core machine: much of the suite waits (on a server, a browser, a time limit, a child
    process), and a third worker keeps both cores busy meanwhile."""
    chosen = any(a.startswith(("-n", "--numprocesses", "--dist")) or a == "no:xdist" for a in args)
    # in collection order, which tests/conftest.py makes longest first (xdist's default order
    # is by number of tests, which puts short files of many tests first)
    workers = [] if chosen else ["-n", "3", "--dist", "loadfile", "--no-loadscope-reorder"]
    return ["-p", "no:cacheprovider", *workers, *args]


def exchange_ready(python: str) -> bool:
    """Whether nbgrader finds a usable exchange from this folder (False if it cannot tell)."""
    probe = subprocess.run([python, "-c", EXCHANGE_PROBE], cwd=ROOT, capture_output=True,
                           text=True)
    try:
        return bool(json.loads(probe.stdout.strip().splitlines()[-1])["ready"])
    except (IndexError, ValueError, KeyError):
        return False


def lab_config(instructor: bool, exchange: bool) -> dict[str, dict]:
    """The Jupyter and nbgrader settings of ``kit.py lab``, as files (name -> JSON content) for
    a folder on ``JUPYTER_CONFIG_PATH``: for students, the tools they do not use switched off
    (the exchange's too when there is none); for instructors without an exchange, a local one
    in ``exchange/`` so that Formgrader works without a warning."""
    if instructor:
        if exchange:
            return {}
        return {"nbgrader_config.json": {"Exchange": {"root": str(ROOT / "exchange")}}}
    plugins = INSTRUCTOR_PLUGINS + (() if exchange else EXCHANGE_PLUGINS)
    servers = INSTRUCTOR_SERVER_EXTENSIONS + (() if exchange else EXCHANGE_SERVER_EXTENSIONS)
    return {"labconfig/page_config.json": {"disabledExtensions": {p: True for p in plugins}},
            "jupyter_server_config.json": {"ServerApp": {"jpserver_extensions": {
                e: False for e in servers}}}}


def write_lab_config(instructor: bool, exchange: bool) -> Path:
    """Write :func:`lab_config` to a folder of the environment (replaced each time)."""
    folder = VENV / "kit-jupyter" / ("instructor" if instructor else "student")
    for old in sorted(folder.rglob("*.json")) if folder.is_dir() else []:
        old.unlink()
    for name, content in lab_config(instructor, exchange).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(json.dumps(content, indent=1) + "\n")
    folder.mkdir(parents=True, exist_ok=True)
    if instructor and not exchange:
        (ROOT / "exchange").mkdir(exist_ok=True)
    return folder


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in available():
        print(f"kit.py: unknown command {command!r}; expected one of {available()}\n",
              file=sys.stderr)
        print(usage(), file=sys.stderr)
        return 2
    python = str(ensure_environment())
    os.chdir(ROOT)
    if command == "test":
        return run_tests(python, rest)
    if command == "lab":
        instructor = "--instructor" in rest  # the whole course (Formgrader can open solutions/)
        rest = [a for a in rest if a != "--instructor"]
        root_dir = ROOT if instructor else ROOT / "notebooks"
        config = write_lab_config(instructor, exchange_ready(python))
        paths = [str(config), *filter(None, [os.environ.get("JUPYTER_CONFIG_PATH")])]
        os.environ["JUPYTER_CONFIG_PATH"] = os.pathsep.join(paths)
        args = [python, "-m", "jupyter", "lab", f"--ServerApp.root_dir={root_dir}", *rest]
        if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in rest:
            args.append("--allow-root")  # containers and CI machines often run as root
    elif command == "bench":
        args = [python, "-m", "benchmarks.run", *rest]
    else:
        args = [python, "-m", "instructor", command, *rest]
    if os.name == "nt":  # os.execv does not replace the process on Windows
        return subprocess.call(args)
    os.execv(python, args)
    return 0  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
