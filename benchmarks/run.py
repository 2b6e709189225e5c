"""``python -m benchmarks.run [--quick] [--output PATH]`` (or ``python3 kit.py bench``): time the
training step five ways, each solution notebook's Run All, the grading of a class and
``import lab_utils``; print the report and write it to ``docs/benchmarks.md``.

``--quick`` proves the machinery works in seconds (tiny sizes, one round, Run All of the test
fixture notebook instead of the labs, no grading); its figures mean nothing. Nothing here is ever asserted on.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from .classroom import FIXTURE, ROOT, discover_labs, import_seconds, run_all_seconds
from .grading import Breakdown, GradingTiming, time_methods
from .steps import CPU_SIZES, GPU_SIZES, QUICK_SIZES, VARIANTS, StepTiming, time_steps

DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
GOAL_VS_AUTOGRAD, GOAL_VS_FLOOR = 0.9, 1.2
NOISE_LIMIT = 0.25  # a verdict needs both medians within ±25% (half the IQR over the median)
RATIOS = [("literal", "autograd"), ("tuned", "autograd"), ("tuned_torch_tanh", "autograd"),
          ("compiled", "autograd"), ("tuned", "floor"), ("autograd", "floor")]


@dataclass
class Report:
    quick: bool
    machine: dict[str, str]
    steps: dict[str, list[StepTiming]] = field(default_factory=dict)   # device -> sizes
    run_all: dict[str, list[float] | str] = field(default_factory=dict)  # lab -> seconds or note
    grading: list[GradingTiming] = field(default_factory=list)
    breakdown: Breakdown | None = None
    grading_note: str = ""
    imports: dict[str, list[float]] = field(default_factory=dict)
    load: list[float] = field(default_factory=list)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):  # Windows
        return None


def machine_info() -> dict[str, str]:
    cuda = (f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})" if torch.cuda.is_available()
            else "none: the GPU figures were not measured in this run")
    return {"CPU": f"{cpu_model()}, {os.cpu_count()} logical cores",
            "torch": f"{torch.__version__}, {torch.get_num_threads()} CPU threads (torch.set_num_threads)",
            "Python": f"{platform.python_version()} on {platform.system()} {platform.release()}",
            "GPU": cuda,
            "Date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


# formatting -------------------------------------------------------------------------------

def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def fmt_ratio(ratio: float | None) -> str:
    return "–" if ratio is None else f"{ratio:.2f}×"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows)]


def step_tables(timings: list[StepTiming]) -> list[str]:
    variants = [v for v in VARIANTS if any(v in t.samples or v in t.notes for t in timings)]
    times = []
    for t in timings:
        cells = []
        for v in variants:
            spread = t.spread(v)
            cells.append(t.notes.get(v, "–") if t.median(v) is None else
                         fmt_time(t.median(v)) + (f" ±{spread / 2:.0%}" if spread is not None else ""))
        times.append([t.label, *cells])
    ratios = [[t.label, *(fmt_ratio(t.ratio(a, b)) for a, b in RATIOS)] for t in timings]
    return [*table(["size (nx-nh-ny, batch)", *(VARIANTS[v] for v in variants)], times), "",
            *table(["size", *(f"{VARIANTS[a].split(' ', 1)[1]} / {VARIANTS[b].split(' ', 1)[1]}"
                              for a, b in RATIOS)], ratios)]


def verdict(timing: StepTiming, variant: str, to: str, goal: float) -> str:
    """'goal met' / 'goal **not** met', or why the figures cannot tell (missing, too noisy)."""
    ratio = timing.ratio(variant, to)
    if ratio is None:
        return "not measured"
    noise = max(timing.spread(variant) or 0.0, timing.spread(to) or 0.0) / 2
    if noise > NOISE_LIMIT:
        return f"inconclusive: the blocks scatter by ±{noise:.0%}, rerun on a quiet machine"
    return "goal met" if ratio <= goal else "goal **not** met"


def grading_breakdown(b: Breakdown) -> list[str]:
    """Where one solved submission's seconds go in the kit's 1-worker run, and the floor."""
    rows = [[name, fmt_time(seconds)] for name, seconds in b.seconds.items()]
    lines = ["### Where one submission's seconds go", "",
             "Means over the solved submissions of the 1-worker run, from the grader's own timings "
             "(`grading/<lab>/results.json`). The nbgrader child runs the notebook in a kernel "
             "started beforehand, then re-runs the tests in its own process; the main process "
             "records the result.", "", *table(["part", "seconds"], rows)]
    lines += ["", "What the kit does that plain nbgrader does not: each kernel starts (with torch and "
              "the lab's imports) before its submission comes; one warm nbgrader process forks a "
              "child per submission instead of importing nbgrader again; a kernel is killed as "
              "soon as its last cell has answered, where nbclient would ask it to shut down and "
              "wait about a second for its interpreter to exit; kernels print plain tracebacks "
              "(IPython's context tracebacks take 20–100 ms per error, and a blank notebook "
              "raises in about forty cells). What it adds: the sandbox, the guard line in locked "
              "cells, the recorder, the replay and the record into the course gradebook."]
    if b.kernel_start is not None:
        lines += ["", f"A sandboxed kernel takes {fmt_time(b.kernel_start)} from launch to its "
                  "first reply with the lab's imports loaded (median of 3); the kernel pool pays "
                  "this while the previous submission runs, so it is off the critical path."]
    if b.cells:
        lines += ["", "The slowest cells (mean seconds): " + ", ".join(
            f"{cell} {fmt_time(seconds)}" for cell, seconds in b.cells) + "."]
    cells = b.seconds.get("the notebook's cells")
    if cells is not None:
        lines += ["", f"**The floor.** Any grader must run the notebook's cells: {fmt_time(cells)} "
                  "per solved submission here. Kernel start and imports can be hidden (the kit "
                  "does) but their CPU time cannot; on C free cores a class takes at least "
                  "(cells + kernel start) / C per submission, plus the few tenths of a second "
                  "nbgrader and the replay add."]
    return lines


def closing_note(report: Report) -> list[str]:
    lines = []
    for device, timings in report.steps.items():
        if not timings:
            continue
        largest = timings[-1]
        lines.append(f"On **{device}** the tuned step takes, relative to autograd:")
        for t in timings:
            lines.append(f"- {t.label}: tuned {fmt_ratio(t.ratio('tuned', 'autograd'))} (goal ≤ "
                         f"{GOAL_VS_AUTOGRAD}×: {verdict(t, 'tuned', 'autograd', GOAL_VS_AUTOGRAD)}); "
                         f"literal translation {fmt_ratio(t.ratio('literal', 'autograd'))}.")
        lines.append(f"- At the largest size ({largest.label}) the tuned step is "
                     f"{fmt_ratio(largest.ratio('tuned', 'floor'))} the matmul floor (goal ≤ "
                     f"{GOAL_VS_FLOOR}×: {verdict(largest, 'tuned', 'floor', GOAL_VS_FLOOR)}).")
        lines.append("")
    if "cuda" not in report.steps:
        lines.append("GPU: not measured in this run (no CUDA device on this machine); on a machine with "
                     "one, the same command measures it too, at the larger GPU sizes.")
    return lines


def render(report: Report) -> str:
    m = report.machine
    out = ["# Benchmarks", ""]
    if report.quick:
        out += ["**Quick mode**: tiny sizes and one round, to prove that the benchmark runs. "
                "These figures mean nothing; run `python3 kit.py bench` for real ones.", ""]
    out += ["Written by `python3 kit.py bench` (`python -m benchmarks.run`). Every time is a median "
            "of repeated measurements; speed is never asserted in the tests.", "",
            "## Machine", "", *table(["", ""], [[k, v] for k, v in m.items()])]
    load = [x for x in report.load if x is not None]
    if load:
        busy = load[0] > 0.75 * (os.cpu_count() or 1)  # the end includes our own grading runs
        out += ["", f"1-minute load average: {load[0]:.2f} at the start, {load[-1]:.2f} at the end "
                "(the benchmark's own notebook and grading runs included)"
                + (": the machine was busy with other work, expect noisy figures." if busy else ".")]
    out += ["", "## Training step", "",
            "One step = forward, backward and the SGD update of `Wh`, `bh`, `Wy`, `by`, in float32, "
            "on random data (the lecture's tanh MLP, softmax and mean cross-entropy). "
            "Timed with `torch.utils.benchmark.Timer` after a warm-up, in blocks of about 1 ms "
            "(10 ms on CUDA), variants interleaved over several rounds; each figure is the median "
            "over blocks and ± is half their interquartile range over the median.", "",
            "- (a) literal: the lecture's forward and `backward` as written, then `p -= eta * grad`.",
            "- (b) tuned: the kit's hand-written step (`benchmarks/mlp_step.py: TunedStep`): fused "
            "bias `addmm`, in-place activation and softmax, 1/B folded into δʸ, `addmm_(alpha=-eta)` "
            "updates straight into the weights, buffers reused across steps; on the CPU, for B·nh ≥ 2¹⁴, tanh is computed as "
            "2σ(2x) − 1 (torch's CPU tanh kernel is several times slower than its sigmoid).",
            "- (b') the same tuned step with `torch.tanh` (shows what the tanh identity is worth).",
            "- (c) autograd: `lab_utils.mlp_loss(...).backward()`, then the same update.",
            "- (d) compiled: (c) with the loss under `torch.compile` (its backward compiled too).",
            "- (e) matmul floor: the step's five matrix products alone, into preallocated buffers.",
            "", "The hand-written steps never compute the loss value (the gradient does not need it); "
            "autograd must.", ""]
    for device, timings in report.steps.items():
        out += [f"### {device}", "", *step_tables(timings), ""]
    out += ["## Run All (solution notebooks)", "",
            "A fresh `python3` kernel per run (its start included), `LAB_DEVICE=cpu`; the median of "
            "the runs.", ""]
    if report.run_all:
        out += table(["notebook", "Run All (median)", "runs"],
                     [[lab, fmt_time(statistics.median(v)) if isinstance(v, list) else v,
                       ", ".join(fmt_time(s) for s in v) if isinstance(v, list) else "–"]
                      for lab, v in report.run_all.items()])
    else:
        out += ["No solution notebooks were found under `solutions/`."]
    out += ["", "## Grading", "", report.grading_note, ""]
    if report.grading:
        serial = report.grading[0].per_submission
        out += table(["grader", "workers", "submissions", "total", "per submission",
                      "relative to plain serial nbgrader"],
                     [[g.method, str(g.workers), str(g.submissions), fmt_time(g.seconds),
                       fmt_time(g.per_submission), fmt_ratio(g.per_submission / serial)]
                      for g in report.grading])
    if report.breakdown is not None:
        out += ["", *grading_breakdown(report.breakdown)]
    out += ["", "## `import lab_utils`", ""]
    for module, seconds in report.imports.items():
        out.append(f"- `import {module}`: {fmt_time(statistics.median(seconds))} (median of "
                   f"{len(seconds)} fresh interpreters, interpreter start excluded)")
    out += ["", "## Closing note", "", *closing_note(report)]
    return "\n".join(out).rstrip() + "\n"


# running ----------------------------------------------------------------------------------

def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run; figures mean nothing")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"where to write the report (default: {DEFAULT_OUTPUT.relative_to(ROOT)})")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch CPU threads (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved timing rounds per size")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    parser.add_argument("--no-notebooks", action="store_true", help="skip Run All and grading")
    parser.add_argument("--class-size", type=int, default=12, help="submissions to grade")
    parser.add_argument("--grading-lab", default="lab3_backprop_mlp",
                        help="the lab graded (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="Run All repeats per notebook")
    parser.add_argument("--grading-dir", type=Path, default=None,
                        help="keep the graded courses in this new folder (default: a temporary one)")
    args = parser.parse_args(argv)
    for name in ("threads", "class_size", "repeat", "rounds"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')}: expected an int >= 1, got {value}")
    folder = args.grading_dir
    if folder is not None and folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        parser.error(f"--grading-dir: expected a new or empty folder, got {folder} (it holds files"
                     " or is not a folder)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    report = Report(quick=args.quick, machine=machine_info(), load=[load_average()])
    quick = args.quick
    rounds = args.rounds or (1 if quick else 7)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        sizes = QUICK_SIZES if quick else GPU_SIZES if device.type == "cuda" else CPU_SIZES
        for size in sizes:
            log(f"training step {size} on {device}")
            report.steps.setdefault(str(device), []).append(time_steps(
                size, device, compile=not (quick or args.no_compile), rounds=rounds,
                min_run_time=0.02 if quick else 0.15, warmup=1 if quick else 3))

    log("import lab_utils")
    modules = ("lab_utils",) if quick else ("lab_utils", "torch")
    report.imports = {m: import_seconds(m, repeat=1 if quick else 5) for m in modules}

    labs = {"fixture": FIXTURE} if quick else discover_labs()
    if args.no_notebooks:
        report.grading_note = "Skipped (--no-notebooks)."
        labs = {}
    for lab, notebook in labs.items():
        log(f"Run All {lab}")
        try:
            report.run_all[lab] = run_all_seconds(notebook, repeat=1 if quick else args.repeat)
        except Exception as error:  # a failing notebook is reported, not fatal
            report.run_all[lab] = f"failed: {type(error).__name__}"
    grading_lab = "fixture" if quick else args.grading_lab
    if args.no_notebooks:
        pass
    elif grading_lab not in labs:
        report.grading_note = f"Skipped: no lab {grading_lab!r} under `solutions/`."
    else:
        size = 2 if quick else args.class_size
        log(f"grading {grading_lab}: {size} submissions, serial nbgrader and the kit")
        notebook = labs[grading_lab]
        source = notebook.parent if notebook.name == f"{grading_lab}.ipynb" else notebook
        with contextlib.ExitStack() as stack:
            workdir = args.grading_dir or Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="bench-grading-")))
            report.grading, report.breakdown = time_methods(
                workdir, grading_lab, source, class_size=size,
                worker_counts=[1] if quick else [1, 2])
        report.grading_note = (
            f"{grading_lab}, a class of {size}: even student ids hand in the solution, odd ones "
            "the blank student version. Each grader starts from a fresh copy of the same course "
            "(the kit's nbgrader_config.py); times include each tool's own start (the kit's: "
            "seeding the gradebooks, starting its warm nbgrader process and kernels).")

    report.load.append(load_average())
    text = render(report)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
