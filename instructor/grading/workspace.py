"""Where a grading run happens, on the grader's side of the sandbox.

One run folder per ``grade`` command (a private temporary folder), holding:

- ``template/``: a throw-away course with the lab's source, the grading configuration and a
  SQLite gradebook seeded by ``nbgrader generate_assignment``; ``seed-<n>/``: the same course
  again for each further gradebook seeded the same way at the same time (the course's own, as
  a serial run would);
- ``jupyter/kernels/kit-sandbox/``: the kernelspec that makes nbgrader adopt the pre-started,
  sandboxed kernels (:mod:`.provisioner`);
- ``matplotlib/``: matplotlib's font cache, copied to each kernel. It is built once per machine
  and matplotlib version, in the grader's own cache folder (:mod:`.font_cache`), and
  copied from there; where that folder cannot be written, each run builds its own;
- per submission, ``s-<n>/``: a copy of the template with the submission in
  ``submitted/<student>/<lab>/`` (plain files only), its own gradebook, nbgrader's log and the
  report of the grader's checks. Kernels have folders of their own (:mod:`.kernels`).
"""

from __future__ import annotations

import ast
import json
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import nbformat

from ..course import build_course
from ..environment import THREAD_SETTINGS, tool_env
from ..nbgrader_runner import WarmNbgrader
from ..notebooks import MARKER_LINE
from . import gradebook, gradebook_lock
from .font_cache import shared_font_cache, write_font_cache
from .kernels import KernelHandle, remove_tree
from .limits import Limits
from .preprocessors import PIPELINE

KERNEL_NAME = "kit-sandbox"


def modules_to_preload(source_nb) -> tuple[str, ...]:
    """What a kernel may import before the submission comes: every module the lab's source
    notebook imports at the top level of a code cell, and pyplot when the lab draws."""
    found: list[str] = []
    draws = False
    for cell in source_nb.cells:
        if cell.cell_type != "code":
            continue
        draws = draws or "plot" in cell.source
        try:
            tree = ast.parse(MARKER_LINE.sub("", cell.source))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                found += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.append(node.module)
    if draws:
        found.append("matplotlib.pyplot")
    return tuple(dict.fromkeys(found))


def lab_imports(source: Path) -> tuple[str, ...]:
    """:func:`modules_to_preload` of every notebook of the lab's source folder."""
    modules: list[str] = []
    for path in sorted(source.glob("*.ipynb")):
        modules += modules_to_preload(nbformat.read(path, as_version=4))
    return tuple(dict.fromkeys(modules))


def grading_config(limits: Limits) -> str:
    """The nbgrader settings the kit adds for grading (appended to the course's config)."""
    return f"""

# ---- added by the kit's grader for this run
c.Execute.kernel_name = {KERNEL_NAME!r}
c.ExecutePreprocessor.kernel_name = {KERNEL_NAME!r}
c.Execute.timeout = {limits.cell_timeout}
c.ExecutePreprocessor.timeout = {limits.cell_timeout}
c.Execute.startup_timeout = 120
c.Execute.interrupt_on_timeout = True
c.Execute.shutdown_kernel = "immediate"
c.RecomputeVerdicts.cell_timeout = {limits.cell_timeout}
c.Autograde.autograde_preprocessors = {PIPELINE!r}
"""


def _plain_files_only(folder: str, names: list[str]) -> list[str]:
    """For copytree: skip symbolic links, sockets and devices."""
    paths = {n: Path(folder) / n for n in names}
    return [n for n, p in paths.items() if p.is_symlink() or not (p.is_file() or p.is_dir())]


@dataclass
class Workspace:
    """The run folder of one lab's grading on one machine (see the module's docstring)."""

    lab: str
    source: Path
    limits: Limits
    run_dir: Path

    @property
    def template(self) -> Path:
        return self.run_dir / "template"

    @classmethod
    def open(cls, lab: str, source: Path, limits: Limits) -> Workspace:
        """A new run folder for grading ``lab`` from its ``source`` folder, with what kernels
        need to start (the font cache): kernels may start before :meth:`seed` is done."""
        space = cls(lab, Path(source), limits, Path(tempfile.mkdtemp(prefix="kit-grade-")))
        space._build_font_cache()
        return space

    def seed(self, config: Path, seeder: WarmNbgrader, also_seed: tuple[str, ...] = (),
             duedate: datetime | None = None) -> None:
        """The template course under the course's ``config``, its gradebook and the kernelspec;
        ``also_seed`` lists further gradebook URLs to seed with the assignment (the course's
        own, on the machine that records the results); ``duedate`` is the course gradebook's
        due date of the lab (naive UTC), for nbgrader's late penalties. The gradebooks are
        seeded at the same time, each from a course folder of its own."""
        template_db = f"sqlite:///{self.template / 'gradebook.db'}"
        seeds = [(self.template, template_db)]
        seeds += [(self.run_dir / f"seed-{number}", url) for number, url in enumerate(also_seed)]
        for folder, _ in seeds:
            build_course(folder, {self.lab: self.source}, config=config,
                         extra_config=grading_config(self.limits))
        with ThreadPoolExecutor(max_workers=len(seeds)) as threads:
            list(threads.map(lambda seed: self._generate(seeder, *seed), seeds))
        if duedate is not None:
            gradebook.set_duedate(template_db, self.lab, duedate)
        self._write_kernelspec()

    def _generate(self, seeder: WarmNbgrader, folder: Path, url: str) -> None:
        """``nbgrader generate_assignment`` of the lab in ``folder`` into the gradebook ``url``."""
        argv = ["generate_assignment", self.lab, "--force", "--db", url]
        log = folder / "generate_assignment.log"
        with gradebook_lock.seeding(url):  # graders sharing a gradebook seed it one at a time
            status, _ = seeder.run(argv, cwd=folder, env=tool_env(), log=log)
        if status != 0:
            raise RuntimeError(f"nbgrader {' '.join(argv)} failed (exit {status}):\n"
                               f"{log.read_text(errors='replace')[-3000:]}")

    def _write_kernelspec(self) -> None:
        folder = self.run_dir / "jupyter" / "kernels" / KERNEL_NAME
        folder.mkdir(parents=True)
        spec = {"argv": [sys.executable, "-c", "raise SystemExit('started by the grader')"],
                "display_name": "Python 3 (grading sandbox)", "language": "python",
                "interrupt_mode": "message",
                "metadata": {"kernel_provisioner": {"provisioner_name": "kit-prestarted"}}}
        (folder / "kernel.json").write_text(json.dumps(spec, indent=1))

    def _build_font_cache(self) -> None:
        folder = self.matplotlib_cache
        folder.mkdir()
        shared = shared_font_cache()
        for cache in shared.glob("*.json") if shared else ():
            shutil.copyfile(cache, folder / cache.name)
        if shared is None:
            write_font_cache(folder)

    @property
    def matplotlib_cache(self) -> Path:
        return self.run_dir / "matplotlib"

    def submission(self, student: str, files: Path, number: int) -> Path:
        """A scratch course for one submission (``s-<number>/``): the template plus the plain
        files of ``files`` (the student's submitted folder) and a copy of the seeded gradebook."""
        scratch = self.run_dir / f"s-{number}"
        shutil.copytree(self.template / "solutions", scratch / "solutions")
        shutil.copy(self.template / "nbgrader_config.py", scratch / "nbgrader_config.py")
        shutil.copy(self.template / "gradebook.db", scratch / "gradebook.db")
        shutil.copytree(files, scratch / "submitted" / student / self.lab, symlinks=True,
                        ignore=_plain_files_only)
        return scratch

    def nbgrader_env(self, scratch: Path, kernel: KernelHandle) -> dict[str, str]:
        """The environment of the ``nbgrader autograde`` child for one submission."""
        return tool_env(**THREAD_SETTINGS, JUPYTER_PATH=str(self.run_dir / "jupyter"),
                        JUPYTER_RUNTIME_DIR=str(scratch / "runtime"),
                        JUPYTER_DATA_DIR=str(scratch / "data"),
                        KIT_KERNEL=kernel.adoption(), KIT_RECORDS=str(kernel.records),
                        KIT_REPORT=str(scratch / "report.json"))

    def close(self) -> None:
        remove_tree(self.run_dir)
