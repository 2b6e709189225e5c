"""Times one training step of the lecture's MLP, every variant of :mod:`benchmarks.mlp_step` in
the same run, with ``torch.utils.benchmark`` (warm-up, many short timed blocks, medians; the
Timer synchronises CUDA). Variants are measured in interleaved rounds so that a burst of load on a
shared machine hits all of them alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.utils.benchmark import Timer

from .mlp_step import (
    MatmulFloor,
    TunedStep,
    autograd_step,
    clone_params,
    compiled_autograd_step,
    init_params,
    literal_step,
    make_batch,
)

# (nx, nh, ny, B): the lecture's 2-4-2 net, a wide hidden layer, a small MNIST-like net.
CPU_SIZES = [(2, 4, 2, 64), (2, 64, 2, 1024), (64, 512, 10, 4096)]
GPU_SIZES = [*CPU_SIZES, (784, 2048, 10, 65536), (1024, 8192, 1024, 16384)]
QUICK_SIZES = [(2, 4, 2, 64), (2, 16, 2, 128)]

VARIANTS = {  # key: label in the report
    "literal": "(a) literal",
    "tuned": "(b) tuned",
    "tuned_torch_tanh": "(b') tuned, torch.tanh",
    "autograd": "(c) autograd",
    "compiled": "(d) compiled",
    "floor": "(e) matmul floor",
}
ETA = 1e-3
BLOCK_TIME = {False: 1e-3, True: 1e-2}  # seconds per timed block: CPU, CUDA (amortises the sync)


@dataclass
class StepTiming:
    """Median seconds per step of each variant at one size; ``None`` with a note where a
    variant did not run."""
    size: tuple[int, int, int, int]
    device: str
    samples: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def median(self, variant: str) -> float | None:
        times = self.samples.get(variant)
        return statistics.median(times) if times else None

    def spread(self, variant: str) -> float | None:
        """Interquartile range over the median (0.05 = the middle half of blocks within 5%)."""
        times = self.samples.get(variant)
        if not times or len(times) < 4:
            return None
        q1, _, q3 = statistics.quantiles(times, n=4)
        return (q3 - q1) / statistics.median(times)

    def ratio(self, variant: str, to: str) -> float | None:
        a, b = self.median(variant), self.median(to)
        return a / b if a is not None and b else None

    @property
    def label(self) -> str:
        nx, nh, ny, batch = self.size
        return f"{nx}-{nh}-{ny}, B={batch}"


def step_variants(size: tuple[int, int, int, int], device: torch.device, *, compile: bool
                  ) -> tuple[dict[str, Callable[[], None]], dict[str, str]]:
    """A zero-argument callable per variant, each on its own copy of the same parameters and
    batch (float32 on ``device``), and notes for the variants left out."""
    nx, nh, ny, batch_size = size
    params = init_params(nx, nh, ny, device=device)
    X, Y = make_batch(batch_size, nx, ny, device=device)
    literal_params, tuned_params, plain_tanh_params = (clone_params(params) for _ in range(3))
    autograd_params, compiled_params = (clone_params(params, requires_grad=True) for _ in range(2))
    tuned = TunedStep(tuned_params, batch_size, ETA)
    floor = MatmulFloor(params, batch_size)
    steps = {
        "literal": lambda: literal_step(literal_params, X, Y, ETA),
        "tuned": lambda: tuned(X, Y),
        "autograd": lambda: autograd_step(autograd_params, X, Y, ETA),
        "floor": lambda: floor(X),
    }
    notes = {}
    if tuned.via_sigmoid:
        tuned_torch_tanh = TunedStep(plain_tanh_params, batch_size, ETA, tanh="torch")
        steps["tuned_torch_tanh"] = lambda: tuned_torch_tanh(X, Y)
    else:
        notes["tuned_torch_tanh"] = "same as (b) here"
    if compile:
        compiled = compiled_autograd_step(dynamic=False)
        steps["compiled"] = lambda: compiled(compiled_params, X, Y, ETA)
    else:
        notes["compiled"] = "not run (--quick or --no-compile)"
    return steps, notes


def time_steps(size: tuple[int, int, int, int], device: torch.device, *, compile: bool = True,
               rounds: int = 7, min_run_time: float = 0.15, warmup: int = 3) -> StepTiming:
    """Time every variant at ``size`` = (nx, nh, ny, B): ``warmup`` calls each (which compile
    the compiled variant), then ``rounds`` interleaved rounds of at least ``min_run_time``
    seconds per variant, each made of short blocks (see :func:`short_blocks`)."""
    steps, notes = step_variants(size, device, compile=compile)
    result = StepTiming(size, str(device), notes=notes)
    per_call = {}
    for name, step in list(steps.items()):
        try:
            for _ in range(warmup):
                start = time.perf_counter()
                step()
                per_call[name] = time.perf_counter() - start
        except Exception as error:  # e.g. torch.compile without a working C++ compiler
            message = str(error).strip().splitlines()[0][:120] if str(error).strip() else ""
            result.notes[name] = f"failed: {type(error).__name__}: {message}"
            del steps[name]
    block_time = BLOCK_TIME[device.type == "cuda"]
    for _ in range(rounds):
        for name, step in steps.items():
            timer = Timer("step()", globals={"step": step}, num_threads=torch.get_num_threads())
            result.samples.setdefault(name, []).extend(
                short_blocks(timer, per_call[name], block_time=block_time, min_run_time=min_run_time))
    if "compiled" in steps:
        torch._dynamo.reset()
    return result


def short_blocks(timer: Timer, per_call: float, *, block_time: float, min_run_time: float) -> list[float]:
    """Seconds per call in blocks of about ``block_time`` seconds (``Timer.timeit``, which
    synchronises CUDA), until ``min_run_time`` has passed. Short blocks keep most of them clear
    of the scheduler's interruptions on a shared machine, so that their median is robust;
    ``blocked_autorange`` would pick blocks of 10 ms or more."""
    number = max(1, round(block_time / max(per_call, 1e-7)))
    times: list[float] = []
    while sum(times) * number < min_run_time:
        times.append(timer.timeit(number).median)
    return times
