"""Grading on a Dask cluster against grading on this machine, on the same submissions.

:func:`measure` prepares a class (half correct, half blank submissions of one lab), grades it
with ``python -m instructor grade LAB --workers W`` (local), then starts a Dask cluster here
(:class:`DaskCluster`: a scheduler and W single-threaded workers, each a process of its own
started with Dask's own command line) and grades fresh copies with ``--scheduler`` twice: once
with cold workers (each creates its grader on its first task) and once with warm ones. The
difference from local grading, per submission, is what a task costs on top of the grading
itself (serialising the submission and the lab, the scheduler's round trips, rebuilding the
scratch course on the instructor's side). No thresholds: it measures.

    python -m benchmarks.distributed [--lab lab1_chain_rule] [--submissions 12] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from instructor.environment import tool_env

from .classroom import discover_labs
from .grading import make_class

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DaskCluster:
    """A Dask scheduler and ``workers`` workers (``threads`` threads each) on 127.0.0.1, each a
    process started with ``python -m dask scheduler|worker`` (no nanny: the worker process is
    the one that grades). Every worker gets a temporary folder of its own (``TMPDIR``), as a
    separate machine would. A context manager: everything it started is stopped on exit."""

    def __init__(self, workers: int = 2, *, threads: int = 1, startup_timeout: float = 180):
        self.count, self.threads, self.startup_timeout = workers, threads, startup_timeout
        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.folder = Path(tempfile.mkdtemp(prefix="kit-dask-"))
        self.scheduler: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []

    def _start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        with open(self.folder / f"{name}.log", "w") as log:
            return subprocess.Popen([sys.executable, "-m", "dask", *argv], cwd=ROOT, env=env,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def worker_tmp(self, number: int) -> Path:
        return self.folder / f"worker-{number}-tmp"

    def __enter__(self) -> DaskCluster:
        try:
            self.scheduler = self._start("scheduler", [
                "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                "--no-dashboard"], tool_env())
            for number in range(self.count):
                self.add_worker(number)
            self.wait_for_workers(self.count)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def add_worker(self, number: int) -> subprocess.Popen:
        tmp = self.worker_tmp(number)
        tmp.mkdir(exist_ok=True)
        process = self._start(f"worker-{number}", [
            "worker", self.address, "--name", f"worker-{number}", "--nthreads", str(self.threads),
            "--no-nanny", "--memory-limit", "0", "--no-dashboard",
            "--local-directory", str(tmp / "dask")], tool_env(TMPDIR=str(tmp)))
        self.workers.append(process)
        return process

    def wait_for_workers(self, count: int) -> None:
        from distributed import Client
        with Client(self.address, timeout=self.startup_timeout, set_as_default=False) as client:
            try:
                client.wait_for_workers(count, timeout=self.startup_timeout)
            except TimeoutError:
                raise RuntimeError(f"{count} Dask workers did not join within "
                                   f"{self.startup_timeout:.0f} s:\n{self.logs()}") from None

    def worker_address(self, number: int) -> str:
        """The address worker ``number`` serves on (as the scheduler knows it)."""
        from distributed import Client
        with Client(self.address, timeout=60, set_as_default=False) as client:
            workers = client.scheduler_info(n_workers=-1)["workers"]
        found = [address for address, info in workers.items()
                 if info.get("name") == f"worker-{number}"]
        if not found:
            raise RuntimeError(f"worker-{number} is not connected to {self.address}")
        return found[0]

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                         for p in sorted(self.folder.glob("*.log")))

    def kill_worker(self, number: int) -> None:
        """SIGKILL worker ``number`` and every process it started, at once: as if its machine
        had died."""
        import psutil
        try:
            root = psutil.Process(self.workers[number].pid)
        except psutil.NoSuchProcess:
            return
        tree: dict[int, psutil.Process] = {}
        while True:  # stopped first, so that none forks a process we would not see
            try:
                found = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            if all(p.pid in tree for p in found):
                break
            for process in found:
                tree.setdefault(process.pid, process)
                try:
                    process.suspend()
                except psutil.NoSuchProcess:
                    pass
        for process in tree.values():
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(list(tree.values()), timeout=30)

    def stop(self) -> None:
        """Workers first (SIGTERM: each closes its graders and their kernels while the scheduler
        is still there), then the scheduler; whatever is left after a grace period is killed."""
        for group in (self.workers, [self.scheduler]):
            running = [p for p in group if p is not None and p.poll() is None]
            for process in running:
                process.send_signal(signal.SIGTERM)
            for process in running:
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(process.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class DistributedTiming:
    """Seconds to grade ``submissions`` submissions of ``lab``: locally with ``workers`` workers,
    and on a Dask cluster of ``workers`` one-thread workers, cold and warm."""

    lab: str
    submissions: int
    workers: int
    local: float
    cluster_cold: float
    cluster_warm: float
    load_before: float
    load_after: float

    def overhead_per_task(self, cluster: float) -> float:
        return (cluster - self.local) / self.submissions

    def table(self) -> str:
        rows = [("local, --workers", self.local, None),
                ("Dask cluster, cold workers", self.cluster_cold,
                 self.overhead_per_task(self.cluster_cold)),
                ("Dask cluster, warm workers", self.cluster_warm,
                 self.overhead_per_task(self.cluster_warm))]
        out = [f"{self.submissions} submissions of {self.lab}, {self.workers} workers "
               f"(load average {self.load_before:.1f} before, {self.load_after:.1f} after)", "",
               "| grading | total | per submission | overhead per task vs local |",
               "|---|---|---|---|"]
        for name, seconds, overhead in rows:
            extra = "" if overhead is None else f"{overhead:+.2f} s"
            out.append(f"| {name} | {seconds:.1f} s | {seconds / self.submissions:.2f} s | {extra} |")
        return "\n".join(out)


def _grade(course: Path, lab: str, *options: str) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "instructor", "grade", lab, "--course-dir",
                             str(course), "--quiet", "--force", *options], cwd=ROOT,
                            env=tool_env(), capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"instructor grade {lab} {' '.join(options)} failed "
                           f"({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return seconds


def _check_graded(course: Path, lab: str, submissions: int) -> None:
    graded = len(list(course.glob(f"autograded/*/{lab}/{lab}.ipynb")))
    if graded != submissions:  # a fast run that skipped submissions measures nothing
        raise RuntimeError(f"{graded} of {submissions} submissions were autograded in {course}")


def measure(workdir: Path, *, lab: str = "lab1_chain_rule", submissions: int = 12,
            workers: int = 2) -> DistributedTiming:
    """Grade the same ``submissions`` submissions of ``lab`` locally and on a Dask cluster here,
    each on a fresh copy of the prepared course; see the module's docstring."""
    labs = discover_labs()
    if lab not in labs:
        raise ValueError(f"lab: expected one of {sorted(labs)}, got {lab!r}")
    pristine = Path(workdir) / "course"
    make_class(pristine, lab, labs[lab].parent, submissions)  # the lab's folder, data too

    def fresh(name: str) -> Path:
        return Path(shutil.copytree(pristine, Path(workdir) / name))

    load_before = os.getloadavg()[0]
    course = fresh("local")
    local = _grade(course, lab, "--workers", str(workers))
    _check_graded(course, lab, submissions)
    with DaskCluster(workers) as cluster:
        timings = []
        for name in ("cluster-cold", "cluster-warm"):
            course = fresh(name)
            timings.append(_grade(course, lab, "--scheduler", cluster.address))
            _check_graded(course, lab, submissions)
    return DistributedTiming(lab, submissions, workers, local, timings[0], timings[1],
                             load_before, os.getloadavg()[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.distributed",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--lab", default="lab1_chain_rule")
    parser.add_argument("--submissions", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kit-bench-distributed-") as workdir:
        timing = measure(Path(workdir), lab=args.lab, submissions=args.submissions,
                         workers=args.workers)
    print(timing.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
