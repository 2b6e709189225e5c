"""The benchmark's steps are right and its command runs. A fast wrong step is worthless, so the
hand-written steps must move the parameters exactly as autograd's step does (float64, several
sizes, several steps through the same buffers). Speed itself is never asserted."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch

from benchmarks import run
from benchmarks.mlp_step import (
    PARAM_NAMES,
    MatmulFloor,
    TunedStep,
    autograd_step,
    clone_params,
    init_params,
    literal_step,
    make_batch,
)
from benchmarks.steps import VARIANTS, StepTiming
from instructor.environment import tool_env
from labs import ROOT

SIZES = [(2, 4, 2, 64), (2, 64, 2, 1024), (3, 5, 4, 7), (64, 512, 10, 96), (1, 1, 2, 1)]
F64 = torch.float64


def train(step, params, batches, eta):
    for X, Y in batches:
        step(params, X, Y, eta)
    return params


def batches_for(size, count=3):
    nx, _, ny, batch_size = size
    return [make_batch(batch_size, nx, ny, seed=10 + i, dtype=F64) for i in range(count)]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: "-".join(map(str, s)))
@pytest.mark.parametrize("variant", ["literal", "tuned (tanh=sigmoid)", "tuned (tanh=torch)"])
def test_hand_written_steps_match_autograd(size, variant):
    """Three SGD steps on different batches leave every parameter where autograd's steps do."""
    nx, nh, ny, batch_size = size
    start = init_params(nx, nh, ny, seed=3, dtype=F64)
    start["bh"].uniform_(-0.5, 0.5)  # nonzero biases, so a dropped bias term shows
    start["by"].uniform_(-0.5, 0.5)
    eta, batches = 0.3, batches_for(size)
    expected = train(autograd_step, clone_params(start, requires_grad=True), batches, eta)
    if variant == "literal":
        actual = train(literal_step, clone_params(start), batches, eta)
    else:
        params = clone_params(start)
        tuned = TunedStep(params, batch_size, eta, tanh=variant.split("=")[1].rstrip(")"))
        actual = train(lambda p, X, Y, _: tuned(X, Y), params, batches, eta)
    for name in PARAM_NAMES:
        assert not torch.equal(expected[name], start[name]), f"autograd left {name} unchanged"
        torch.testing.assert_close(actual[name], expected[name].detach(), rtol=1e-10, atol=1e-12,
                                   msg=lambda m, n=name: f"{variant} step, {n} at size {size}: {m}")


def test_tuned_step_in_float32_stays_close_to_autograd():
    """The benchmark runs in float32, where the tanh identity 2σ(2x) − 1 costs about an epsilon."""
    start, (X, Y) = init_params(64, 512, 10, seed=1), make_batch(256, 64, 10, seed=2)
    expected = clone_params(start, requires_grad=True)
    autograd_step(expected, X, Y, 0.5)
    params = clone_params(start)
    TunedStep(params, 256, 0.5)(X, Y)
    for name in PARAM_NAMES:
        torch.testing.assert_close(params[name], expected[name].detach(), rtol=1e-4, atol=1e-5)


def test_matmul_floor_computes_the_steps_five_products():
    """The floor does the work of the step's products: X Whᵀ, h Wyᵀ, δʸᵀh, δʸWʸ, δʰᵀX."""
    params, (X, _) = init_params(3, 6, 4, dtype=F64), make_batch(5, 3, 4, dtype=F64)
    floor = MatmulFloor(params, 5)
    floor(X)
    Wh, Wy = params["Wh"], params["Wy"]
    h = X @ Wh.T
    s = h @ Wy.T
    dh = s @ Wy
    for got, want in [(floor.h, h), (floor.s, s), (floor.Wy_grad, s.T @ h), (floor.dh, dh),
                      (floor.Wh_grad, dh.T @ X)]:
        torch.testing.assert_close(got, want)


def test_steps_reject_bad_input_with_named_errors():
    params = init_params(2, 4, 2)
    X, Y = make_batch(8, 2, 2)
    with pytest.raises(ValueError, match=r"X, Y: expected shapes \(8, 2\) and \(8, 2\).*got \(4, 2\)"):
        TunedStep(params, 8, 0.1)(X[:4], Y[:4])
    with pytest.raises(ValueError, match="params: expected plain tensors"):
        TunedStep(clone_params(params, requires_grad=True), 8, 0.1)
    with pytest.raises(KeyError, match=r"params: expected keys .* missing \['by'\]"):
        TunedStep({k: v for k, v in params.items() if k != "by"}, 8, 0.1)
    with pytest.raises(ValueError, match=r"params\['by'\]: expected shape \(2, 1\)"):
        TunedStep({**params, "by": torch.zeros(3, 1)}, 8, 0.1)
    with pytest.raises(ValueError, match="eta: expected a positive learning rate, got -0.1"):
        TunedStep(params, 8, -0.1)
    with pytest.raises(ValueError, match="tanh: expected 'auto', 'sigmoid' or 'torch', got 'relu'"):
        TunedStep(params, 8, 0.1, tanh="relu")
    with pytest.raises(ValueError, match="batch_size: expected an int >= 1, got 0"):
        TunedStep(params, 0, 0.1)
    with pytest.raises(ValueError, match=r"X: expected shape \(8, 2\), got \(8, 3\)"):
        MatmulFloor(params, 8)(torch.zeros(8, 3))
    with pytest.raises(ValueError, match="nh: expected a positive int, got 0"):
        init_params(2, 0, 2)


def timing(size, **medians):
    return StepTiming(size, "cpu", samples={k: [v] * 5 for k, v in medians.items()})


def test_closing_note_judges_each_size_against_the_goals():
    """The note quotes tuned/autograd per size and tuned/floor at the largest, with verdicts."""
    report = run.Report(quick=False, machine={}, steps={"cpu": [
        timing((2, 4, 2, 64), tuned=0.5, autograd=1.0, literal=0.6, floor=0.1),
        timing((64, 512, 10, 4096), tuned=0.95, autograd=1.0, literal=1.4, floor=0.75)]})
    note = "\n".join(run.closing_note(report))
    assert "2-4-2, B=64: tuned 0.50× (goal ≤ 0.9×: goal met); literal translation 0.60×" in note
    assert "64-512-10, B=4096: tuned 0.95× (goal ≤ 0.9×: goal **not** met)" in note
    assert "(64-512-10, B=4096) the tuned step is 1.27× the matmul floor (goal ≤ 1.2×: goal **not** met)" in note
    assert "GPU: not measured in this run" in note
    noisy = timing((2, 4, 2, 64), tuned=0.5, autograd=1.0, floor=0.1)
    noisy.samples["autograd"] = [1.0, 0.2, 3.0, 1.0, 0.4, 2.0]
    assert "inconclusive: the blocks scatter by ±" in run.verdict(noisy, "tuned", "autograd", 0.9)


def test_command_line_rejects_bad_numbers(capsys):
    with pytest.raises(SystemExit):
        run.parse_args(["--threads", "0"])
    assert "--threads: expected an int >= 1, got 0" in capsys.readouterr().err


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """`python -m benchmarks.run --quick --output PATH --grading-dir DIR`, once for the tests
    below: (the finished process, the report it wrote, the folder of its graded courses)."""
    folder = tmp_path_factory.mktemp("quick-bench")
    output, grading = folder / "bench.md", folder / "grading"
    result = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--output", str(output),
                             "--grading-dir", str(grading)],
                            cwd=ROOT, env=tool_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, output.read_text(), grading


@pytest.mark.slow
def test_quick_benchmark_prints_and_writes_the_report(quick_run):
    """`python -m benchmarks.run --quick --output PATH` times every variant, Run All of a
    notebook and the import, prints the report and writes it to PATH (not docs/)."""
    docs = ROOT / "docs" / "benchmarks.md"
    before = docs.read_bytes() if docs.exists() else None
    result, text, _ = quick_run
    assert result.stdout.strip() == text.strip()
    assert f"| torch | {torch.__version__}" in text and "**Quick mode**" in text
    header = next(line for line in text.splitlines() if line.startswith("| size (nx-nh-ny"))
    for variant in ("literal", "tuned", "autograd", "floor"):
        assert VARIANTS[variant] in header
    for label in ("2-4-2, B=64", "2-16-2, B=128"):
        row = next(line for line in text.splitlines() if line.startswith(f"| {label} |"))
        assert row.count(" µs") + row.count(" ms") >= 4, row
    assert "| fixture | " in text and "`import lab_utils`: " in text
    assert "## Closing note" in text
    assert (docs.read_bytes() if docs.exists() else None) == before


def _seconds(text: str, row: str) -> float:
    """The time in the report's table row that starts with ``| row |`` (µs, ms or s)."""
    line = next(line for line in text.splitlines() if line.startswith(f"| {row} |"))
    value, unit = re.search(r"\| ([0-9.]+) (µs|ms|s) \|", line).groups()
    return float(value) * {"µs": 1e-6, "ms": 1e-3, "s": 1.0}[unit]


@pytest.mark.slow
def test_grading_benchmark_grades_the_same_class_both_ways(quick_run):
    """The grading benchmark builds a class (a solution and a blank copy) that plain nbgrader and
    the kit's grader both grade 3/3 and 0/3, and reads where the kit's seconds went."""
    from nbgrader.api import Gradebook

    _, text, grading = quick_run
    rows = [line for line in text.splitlines()
            if line.startswith(("| nbgrader autograde (serial) |", "| python3 kit.py grade |"))]
    assert [line.split(" | ")[:3] for line in rows] == [
        ["| nbgrader autograde (serial)", "1", "2"], ["| python3 kit.py grade", "1", "2"]]
    for course in ("serial", "kit-1"):
        with Gradebook(f"sqlite:///{grading / course / 'gradebook.db'}") as gradebook:
            scores = {s: gradebook.find_submission("fixture", s).score for s in ("s00", "s01")}
        assert scores == {"s00": 3.0, "s01": 0.0}, course
    assert _seconds(text, "the notebook's cells") > 0
    assert _seconds(text, "nbgrader child, in all") > _seconds(text, "the notebook's cells")
    kernel_start = re.search(r"A sandboxed kernel takes ([0-9.]+) (ms|s) from launch", text)
    assert kernel_start and float(kernel_start.group(1)) > 0, text


def test_grading_dir_must_be_new_or_empty(tmp_path, capsys):
    (tmp_path / "something").write_text("")
    with pytest.raises(SystemExit):
        run.parse_args(["--grading-dir", str(tmp_path)])
    assert "--grading-dir: expected a new or empty folder" in capsys.readouterr().err
