"""Every lab is right on every machine: CPU, CUDA and Apple's MPS.

Without a Mac or a GPU the suite still proves it: every solution notebook (all labs that
``instructor.course.find_labs`` finds) runs in a kernel where :mod:`simulated_device` makes
``lab_utils.get_device()`` pick a simulated MPS device that fails the way MPS does (no float64,
no mixing with CPU tensors) and refuses random numbers drawn on the device's own generator.
Every cell must run and every test cell pass. The simulator itself is tested here too: it must
catch the mistakes it is meant to catch. Lab 3's network and first training steps must be the
same whichever device the notebook picks (the simulated one here; real CUDA or MPS when the
machine has them).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell

import lab_utils
from labs import ROOT, SOLUTIONS, discover_labs, solution_path

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
from simulated_device import (  # noqa: E402
    MPS_FLOAT64,
    DeviceDrawError,
    SimulatedDevice,
    is_tagged,
)

LABS = discover_labs()
INSTALL = f"""\
import sys
sys.path.insert(0, {str(TESTS)!r})
import simulated_device
simulated_device.install("mps")
"""
REPORT = """\
import json, lab_utils, simulated_device, torch
mode = simulated_device.installed()
print("SIMULATED", json.dumps({"device": lab_utils.get_device().type,
                               "active": torch.overrides._get_current_function_mode() is mode,
                               "counts": dict(mode.counts)}))
"""


def run_on_simulated_device(notebook: Path, workdir: Path, monkeypatch) -> tuple[list[str], dict]:
    """Run ``notebook`` (a copy, in ``workdir``) in a kernel whose first cell installs the
    simulated MPS device; return the cells that raised, as "id: error", and the simulator's
    final report."""
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)
    nb.cells.insert(0, new_code_cell(INSTALL))
    nb.cells.append(new_code_cell(REPORT))
    monkeypatch.setenv("LAB_DEVICE", "mps")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    client = NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(workdir)}})
    client.execute()
    failures = [f"{_name(cell)}: {out['ename']}: {out['evalue'][:1500]}"
                for cell in nb.cells for out in cell.get("outputs", [])
                if out.get("output_type") == "error"]
    printed = "".join(out.get("text", "") for out in nb.cells[-1].get("outputs", []))
    found = re.search(r"SIMULATED (\{.*\})", printed)
    return failures, json.loads(found.group(1)) if found else {}


def _name(cell) -> str:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or cell.get("id", "?")


# --- every lab on the simulated device ------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_every_solution_runs_and_passes_its_tests_on_a_simulated_mps_device(
        lab, tmp_path, monkeypatch):
    """Run All on the simulated device: no cell raises (so every test cell passes), the device
    stayed simulated to the end, and a lab that asks for a device really put tensors there."""
    workdir = tmp_path / lab
    shutil.copytree(SOLUTIONS / lab, workdir)
    failures, report = run_on_simulated_device(workdir / f"{lab}.ipynb", workdir, monkeypatch)
    assert not failures, f"{lab} on a simulated MPS device:\n" + "\n".join(failures)
    assert report.get("device") == "mps" and report.get("active"), report
    if "get_device" in solution_path(lab).read_text():
        counts = report["counts"]
        assert counts.get("moved to the device", 0) + counts.get("created on the device", 0) > 0, (
            f"{lab} calls get_device() but put no tensor on the device: {report}")


# --- the simulator catches what it is meant to catch -----------------------------------------

MPS = torch.device("mps")


def test_a_cpu_draw_moved_to_the_device_is_tagged_and_keeps_its_numbers():
    torch.manual_seed(0)
    on_cpu = torch.randn(3, 2) * 0.3
    with SimulatedDevice("mps"):
        torch.manual_seed(0)
        moved = (torch.randn(3, 2) * 0.3).to(MPS)
        assert is_tagged(moved) and moved.device == torch.device("mps", 0) and moved.is_mps
        assert is_tagged(moved * 2 + 1) and (moved * 2).device.type == "mps"
        back = moved.cpu()
        assert not is_tagged(back) and is_tagged(moved) and back.device.type == "cpu"
    assert torch.equal(back, on_cpu)


@pytest.mark.parametrize("draw", [
    lambda: torch.randn(3, device=MPS),
    lambda: torch.rand(2, 2, device="mps"),
    lambda: torch.randint(0, 5, (4,), device=MPS),
    lambda: torch.randn_like(torch.zeros(3).to(MPS)),
    lambda: torch.zeros(3).to(MPS).normal_(),
])
def test_random_numbers_drawn_on_the_device_are_refused(draw):
    with SimulatedDevice("mps"), pytest.raises(DeviceDrawError, match="device's own generator"):
        draw()


@pytest.mark.parametrize("make", [
    lambda: torch.ones(2, dtype=torch.float64).to(MPS),
    lambda: torch.ones(2, dtype=torch.float64).to(device=MPS),
    lambda: torch.zeros(2, 2, dtype=torch.float64, device=MPS),
    lambda: torch.ones(2).to(MPS).double(),
    lambda: torch.ones(2).to(MPS).to(torch.float64),
    lambda: torch.nn.functional.one_hot(torch.tensor([0, 1]).to(MPS), 2).double(),
])
def test_a_float64_tensor_on_the_mps_device_raises_mps_own_error(make):
    with SimulatedDevice("mps"), pytest.raises(TypeError, match=re.escape(MPS_FLOAT64)):
        make()


def test_float64_stays_allowed_on_the_cpu_and_float32_moves_from_it():
    with SimulatedDevice("mps"):
        cpu64 = torch.randn(3, dtype=torch.float64) * 2
        moved = torch.randn(3, dtype=torch.float64).to(MPS, torch.float32)
        assert cpu64.dtype == torch.float64 and not is_tagged(cpu64)
        assert moved.dtype == torch.float32 and is_tagged(moved)


def test_mixing_device_and_cpu_tensors_raises_but_cpu_scalars_and_indices_are_fine():
    with SimulatedDevice("mps"):
        x = torch.ones(3, 2).to(MPS)
        with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
            _ = x + torch.ones(3, 2)
        with pytest.raises(RuntimeError, match="same device"):
            torch.cat([x, torch.zeros(1, 2)])
        assert is_tagged(x * torch.tensor(2.0))             # a 0-dim CPU tensor is a scalar
        assert is_tagged(x[torch.tensor([0, 2])])           # CPU indices, as CUDA and MPS allow


def test_autograd_gradients_live_on_the_device_and_numpy_needs_cpu_first():
    with SimulatedDevice("mps"):
        w = torch.zeros(2, 2).to(MPS).requires_grad_(True)
        (torch.ones(3, 2).to(MPS) @ w).sum().backward()
        assert is_tagged(w.grad)
        with torch.no_grad():
            w -= 0.1 * w.grad                               # no mixing error
        grad, = torch.autograd.grad((w * w).sum(), [w])
        assert is_tagged(grad)
        with pytest.raises(TypeError, match="can't convert mps:0 device type tensor to numpy"):
            w.detach().numpy()
        assert w.detach().cpu().numpy().shape == (2, 2)


def test_a_simulated_cuda_device_tags_cuda_calls_and_allows_float64():
    with SimulatedDevice("cuda"):
        x = torch.ones(2, dtype=torch.float64).cuda()
        assert is_tagged(x) and x.device == torch.device("cuda", 0) and x.is_cuda
        with pytest.raises(DeviceDrawError):
            torch.randn(2, device="cuda")
    with SimulatedDevice("mps"), pytest.raises(AssertionError, match="not compiled with CUDA"):
        torch.ones(2).cuda()


@pytest.mark.slow
def test_the_simulated_kernel_reports_a_float64_and_a_device_draw_in_a_notebook(
        tmp_path, monkeypatch):
    """The notebook-level runner: the two classic mistakes each make their cell fail, with
    MPS's own message for float64, while the device-agnostic version of the same cell runs."""
    from instructor.commands.authoring import code, notebook

    nb = notebook([
        code("import torch, lab_utils\ndevice = lab_utils.get_device()\nprint(device.type)"),
        code("X = torch.randn(4, 2, dtype=torch.float64).to(device)", "float64_on_device"),
        code("torch.manual_seed(0)\nW = torch.randn(2, 3, device=device)", "draw_on_device"),
        code("torch.manual_seed(0)\nW = (torch.randn(2, 3) * 0.3).to(device)\n"
             "X = torch.randn(4, 2, dtype=torch.float64).float().to(device)\n"
             "assert (X @ W).device.type == 'mps'", "right_on_every_device"),
    ])
    path = tmp_path / "mistakes.ipynb"
    nbformat.write(nb, path)
    failures, report = run_on_simulated_device(path, tmp_path, monkeypatch)
    assert len(failures) == 2, failures
    assert failures[0].startswith("float64_on_device: TypeError: " + MPS_FLOAT64[:40])
    assert failures[1].startswith("draw_on_device: DeviceDrawError: randn() drew random numbers")
    assert report["device"] == "mps" and report["counts"]["moved to the device"] >= 3


# --- Lab 3: the same network and the same first steps on every device ------------------------

LAB3 = "lab3_backprop_mlp"
LAB3_FUNCTIONS = ("init_params", "forward", "loss_accuracy", "backward", "sgd", "train_minibatch")
MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n", re.M)


def lab3_functions(device: torch.device) -> dict:
    """The solution's functions of Lab 3, defined in a namespace whose `device` is `device`."""
    nb = nbformat.read(solution_path(LAB3), as_version=4)
    namespace = {"torch": torch, "F": torch.nn.functional, "lab_utils": lab_utils,
                 "device": device}
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") in LAB3_FUNCTIONS:
            exec(MARKER.sub("", cell.source), namespace)
    return namespace


def first_steps(device: torch.device, steps: int = 6) -> tuple[dict, list[float], dict]:
    """Lab 3's 2-4-2 network after torch.manual_seed(0), and the losses and parameters after
    `steps` minibatch steps on the moons (batches of 32, generator seeded with 0)."""
    lab = lab3_functions(device)
    X, y = lab_utils.make_moons(1000, noise=0.15, random_state=0, device=device)
    X_train, _, y_train, _ = lab_utils.train_test_split(X, y, test_size=0.25, random_state=0)
    Y_train = lab_utils.one_hot(y_train, 2)
    torch.manual_seed(0)
    params = lab["init_params"](2, 4, 2)
    start = {k: v.cpu().clone() for k, v in params.items()}
    rows = slice(0, 32 * steps)
    losses = lab["train_minibatch"](params, X_train[rows], Y_train[rows], 1.0, 32, 1,
                                    torch.Generator().manual_seed(0))
    return start, losses, {k: v.cpu() for k, v in params.items()}


def _available(kind: str) -> bool:
    return (torch.cuda.is_available() if kind == "cuda" else
            bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()))


@pytest.mark.parametrize("kind", ["simulated mps", "cuda", "mps"])
def test_lab3_gives_the_same_network_and_first_steps_on_every_device(kind):
    """Parameters identical to the CPU's, bit for bit (drawn on the CPU, then moved); the first
    six training steps identical on the simulated device and equal up to float32 rounding on a
    real GPU (other kernels, other summation orders)."""
    cpu_start, cpu_losses, cpu_end = first_steps(torch.device("cpu"))
    if kind == "simulated mps":
        with SimulatedDevice("mps"):
            start, losses, end = first_steps(torch.device("mps"))
        rtol = 0.0
    else:
        if not _available(kind):
            pytest.skip(f"this machine has no {kind} device")
        start, losses, end = first_steps(torch.device(kind))
        rtol = 1e-4
    for key, value in cpu_start.items():
        assert torch.equal(start[key], value), f"{kind}: init_params gave another {key}"
    assert len(losses) == len(cpu_losses) == 6
    assert losses == pytest.approx(cpu_losses, rel=rtol, abs=rtol * 1e-2), (kind, losses, cpu_losses)
    for key, value in cpu_end.items():
        torch.testing.assert_close(end[key], value, rtol=rtol, atol=rtol * 1e-2)
