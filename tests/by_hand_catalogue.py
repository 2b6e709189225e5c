"""Lab 3 submissions whose `backward` gets its gradients from autograd or otherwise sidesteps
the by-hand rule (ATTACKS), and honest, correct `backward`s in other styles (HONEST).

Each entry is importable data: the source of the `backward` solution cell, the cells the
student added before it (`extra`) or after it (`after`), and what the rule checker must report:
the resolved construct, the cell holding it (`where`) and a piece of text on its line
(`marker`). Where only a scan flag is possible, `flag` names the flag's code.
:func:`submission` builds the notebook from Lab 3's released notebook and its source, as a
student would hand it in. Entries marked `runs` are plain Python: the test suite runs them to
show that each attack really computes what Lab 3's `backward` returns (the per-sample steps
`delta_y`, `grad_h`, `delta_h` and the four parameter gradients), just not by hand, and that
each honest style is a correct solution.
"""

from __future__ import annotations

import base64
import copy
import textwrap
from dataclasses import dataclass

import nbformat
from submission_factory import filled

from instructor.notebooks import grade_id as graded_id

LAB = "lab3_backprop_mlp"
# What Lab 3 declares in its solution cells' metadata and the catalogue relies on (`backward`
# is by_hand); the tests read the rules from the lab itself and check them against this.
LAB3_RULES = {"forward": ["own_softmax"], "softmax_jacobian": ["by_hand"],
              "cross_entropy_grad": ["by_hand"], "output_error": ["by_hand"],
              "backward": ["by_hand"], "sgd": ["by_hand"], "train_minibatch": ["by_hand"],
              "autograd_step": ["uses_autograd"]}


@dataclass(frozen=True)
class Submission:
    """A Lab 3 submission that differs from a correct one in its `backward` cell and in the
    cells the student added around it."""

    backward: str                  # the source of the `backward` solution cell
    construct: str = ""            # what the checker must name, resolved ("" when honest)
    marker: str = ""               # text on the construct's line, in the cell named by `where`
    where: str = "backward"        # "backward", "extra<i>" or "after<i>"
    extra: tuple[str, ...] = ()    # cells added just before the `backward` cell
    after: tuple[str, ...] = ()    # cells added just after it
    code: str = "forbidden"        # the expected Violation.code
    flag: str = ""                 # the expected Flag.code when only a flag is possible
    runs: bool = True              # plain Python that the suite runs to check the gradients

    def cell_source(self) -> str:
        kind, number = _where(self.where)
        if kind == "backward":
            return self.backward
        return (self.extra if kind == "extra" else self.after)[number]

    def line(self) -> int:
        """The line (from 1) of `where`'s cell that holds `marker`."""
        return next(n for n, text in enumerate(self.cell_source().splitlines(), 1)
                    if self.marker in text)


def _where(where: str) -> tuple[str, int]:
    """("extra", 0) for "extra0"; ("backward", 0) for "backward"."""
    kind = where.rstrip("0123456789")
    return kind, int(where[len(kind):] or 0)


def with_rules(source_nb, rules: dict[str, list[str]]):
    """A copy of a source notebook with rule metadata on the cells named in ``rules``."""
    nb = copy.deepcopy(source_nb)
    for cell in nb.cells:
        if graded_id(cell) in rules:
            cell.metadata["kit"] = {"rules": list(rules[graded_id(cell)])}
    return nb


def submission(release_nb, source_nb, entry: Submission):
    """Lab 3's release with every answer filled in, then `entry`'s `backward` cell and the
    cells the student added around it."""
    nb = filled(release_nb, source_nb)
    index = next(i for i, c in enumerate(nb.cells) if graded_id(c) == "backward")
    nb.cells[index].source = entry.backward
    nb.cells[index + 1:index + 1] = [nbformat.v4.new_code_cell(s) for s in entry.after]
    nb.cells[index:index] = [nbformat.v4.new_code_cell(s) for s in entry.extra]
    return nb


def cell_index(release_nb, entry: Submission) -> int:
    """Where `entry.where` sits in :func:`submission`'s notebook."""
    index = next(i for i, c in enumerate(release_nb.cells) if graded_id(c) == "backward")
    kind, number = _where(entry.where)
    if kind == "extra":
        return index + number
    position = index + len(entry.extra)
    return position if kind == "backward" else position + 1 + number


# Most attacks start from leaves that require gradients, run the student's own forward and
# loss_accuracy on them and ask autograd for the gradients of the mean loss with respect to the
# parameters and to the intermediates ỹ, h and h̃ (`wrt`, named as backward returns them); the
# per-sample steps are B times the latter. A line "<leaves>" in an entry stands for:
LEAVES = """\
leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
out = forward(leaves, outputs["X"])
loss, _ = loss_accuracy(out["yhat"], Y)
wrt = dict(leaves, delta_y=out["ytilde"], grad_h=out["h"], delta_h=out["htilde"])
"""
# The function transforms (torch.func, functorch, forward mode, finite differences) need a
# function instead: the summed loss of the parameters and of zero offsets added to h̃, h and ỹ,
# whose gradients with respect to the offsets are the per-sample steps. "<offsets>" stands for:
OFFSETS = """\
B = len(Y)

def summed_loss(p):
    X, T = outputs["X"].to(p["Wh"].dtype), Y.to(p["Wh"].dtype)
    h = torch.tanh(X @ p["Wh"].T + p["bh"].T + p["delta_h"]) + p["grad_h"]
    ytilde = h @ p["Wy"].T + p["by"].T + p["delta_y"]
    return -(T * torch.log_softmax(ytilde, dim=1)).sum()

at = dict(params, delta_y=torch.zeros_like(Y), grad_h=torch.zeros_like(outputs["h"]),
          delta_h=torch.zeros_like(outputs["h"]))
"""
_BLOCKS = {"<leaves>": LEAVES, "<offsets>": OFFSETS}


def code(text: str) -> str:
    """A cell's source, written in this file as an indented block; a line "<leaves>" or
    "<offsets>" becomes that block, indented like the line."""
    lines = []
    for line in textwrap.dedent(text).strip("\n").splitlines():
        block = _BLOCKS.get(line.strip())
        if block is None:
            lines.append(line)
            continue
        indent = line[:len(line) - len(line.lstrip())]
        lines += [indent + part if part else "" for part in block.splitlines()]
    return "\n".join(lines) + "\n"


REDEFINITION = code("""
    def backward(params, outputs, Y):
        <leaves>
        grads = torch.autograd.grad(loss, list(wrt.values()))
        return {k: g if k in params else g * len(Y) for k, g in zip(wrt, grads)}
""")
STUB = code("""
    def backward(params, outputs, Y):
        raise NotImplementedError()
""")
SUBPROCESS = code('''
    import json, subprocess, sys

    SCRIPT = """
    import json, sys, torch
    p, X, Y = (json.loads(line) for line in sys.stdin)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in p.items()}
    htilde = torch.tensor(X) @ p["Wh"].T + p["bh"].T
    h = torch.tanh(htilde)
    scores = h @ p["Wy"].T + p["by"].T
    steps = {"delta_y": scores, "grad_h": h, "delta_h": htilde}
    for value in steps.values():
        value.retain_grad()
    (-(torch.tensor(Y) * torch.log_softmax(scores, 1)).sum()).backward()
    grads = {k: (v.grad / len(Y)).tolist() for k, v in p.items()}
    print(json.dumps({**grads, **{k: v.grad.tolist() for k, v in steps.items()}}))
    """


    def backward(params, outputs, Y):
        lines = [json.dumps({k: v.tolist() for k, v in params.items()}),
                 json.dumps(outputs["X"].tolist()), json.dumps(Y.tolist())]
        done = subprocess.run([sys.executable, "-c", SCRIPT], input="\\n".join(lines),
                              capture_output=True, text=True, check=True)
        grads = json.loads(done.stdout)
        return {k: torch.tensor(v, dtype=Y.dtype) for k, v in grads.items()}
''')

ATTACKS: dict[str, Submission] = {
    "alias_from_import": Submission(code("""
        def backward(params, outputs, Y):
            <leaves>
            grads = A.grad(loss, list(wrt.values()))
            return {k: g if k in params else g * len(Y) for k, g in zip(wrt, grads)}
        """), "torch.autograd.grad", "A.grad(", extra=("from torch import autograd as A\n",)),
    "alias_by_assignment": Submission(code("""
        def backward(params, outputs, Y):
            <leaves>
            grads = g(loss, list(wrt.values()))
            return {k: d if k in params else d * len(Y) for k, d in zip(wrt, grads)}
        """), "torch.autograd.grad", "g(loss", extra=("g = torch.autograd.grad\n",)),
    "alias_inside_the_function": Submission(code("""
        def backward(params, outputs, Y):
            t = torch
            <leaves>
            grads = t.autograd.grad(loss, list(wrt.values()))
            return {k: g if k in params else g * len(Y) for k, g in zip(wrt, grads)}
        """), "torch.autograd.grad", "t.autograd.grad("),
    "helper_in_another_cell": Submission(code("""
        def backward(params, outputs, Y):
            <leaves>
            grads = _grads_of(loss, list(wrt.values()))
            return {k: g if k in params else g * len(Y) for k, g in zip(wrt, grads)}
        """), "Tensor.backward", "loss.backward(", where="extra0", extra=(code("""
        def _grads_of(loss, tensors):
            loss.backward(inputs=tensors)
            return [t.grad for t in tensors]
        """),)),
    "helper_lambda_at_module_level": Submission(code("""
        def backward(params, outputs, Y):
            <leaves>
            grads = _g(loss, list(wrt.values()))
            return {k: g if k in params else g * len(Y) for k, g in zip(wrt, grads)}
        """), "torch.autograd.grad", "torch.autograd.grad", where="extra0",
        extra=("_g = lambda loss, tensors: torch.autograd.grad(loss, tensors)\n",)),
    "helper_class": Submission(code("""
        def backward(params, outputs, Y):
            <leaves>
            grads = Gradients()(loss, list(wrt.values()))
            return {k: g if k in params else g * len(Y) for k, g in zip(wrt, grads)}
        """), "Tensor.backward", "loss.backward(", where="extra0", extra=(code("""
        class Gradients:
            def __call__(self, loss, tensors):
                loss.backward(inputs=tensors)
                return [t.grad for t in tensors]
        """),)),
    "thread": Submission(code("""
        import threading


        def backward(params, outputs, Y):
            result = {}

            def work():
                <leaves>
                grads = torch.autograd.grad(loss, list(wrt.values()))
                result.update({k: g if k in params else g * len(Y) for k, g in zip(wrt, grads)})

            worker = threading.Thread(target=work)
            worker.start()
            worker.join()
            return result
        """), "threading.Thread", "threading.Thread("),
    "executor": Submission(code("""
        import concurrent.futures


        def backward(params, outputs, Y):
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                return pool.submit(_autograd_grads, params, outputs, Y).result()
        """), "concurrent.futures.ThreadPoolExecutor", "ThreadPoolExecutor(", extra=(code("""
        def _autograd_grads(params, outputs, Y):
            <leaves>
            grads = torch.autograd.grad(loss, list(wrt.values()))
            return {k: g if k in params else g * len(Y) for k, g in zip(wrt, grads)}
        """),)),
    "subprocess": Submission(SUBPROCESS, "subprocess.run", "subprocess.run(", runs=False),
    "exec_of_a_built_string": Submission(code("""
        def backward(params, outputs, Y):
            <leaves>
            tensors = list(wrt.values())
            exec("lo" + "ss.back" + "ward(inputs=tensors)", {"loss": loss, "tensors": tensors})
            grads = [t.grad for t in tensors]
            return {k: g if k in params else g * len(Y) for k, g in zip(wrt, grads)}
        """), "builtins.exec", "exec("),
    "eval_of_compiled_code": Submission(code("""
        def backward(params, outputs, Y):
            <leaves>
            tensors = list(wrt.values())
            step = compile("loss.backward(inputs=tensors)", "<step>", "eval")
            eval(step, {"loss": loss, "tensors": tensors})
            grads = [t.grad for t in tensors]
            return {k: g if k in params else g * len(Y) for k, g in zip(wrt, grads)}
        """), "builtins.compile", "compile("),
    "importlib": Submission(code("""
        import importlib


        def backward(params, outputs, Y):
            <leaves>
            engine = importlib.import_module("torch.autograd")
            grads = engine.grad(loss, list(wrt.values()))
            return {k: g if k in params else g * len(Y) for k, g in zip(wrt, grads)}
        """), "torch.autograd", "import_module("),
    "getattr_with_a_built_name": Submission(code("""
        def backward(params, outputs, Y):
            <leaves>
            grad = getattr(getattr(torch, "auto" + "grad"), "grad")
            grads = grad(loss, list(wrt.values()))
            return {k: g if k in params else g * len(Y) for k, g in zip(wrt, grads)}
        """), "torch.autograd.grad", "getattr(getattr(torch"),
    "getattr_with_a_computed_name": Submission(code("""
        def backward(params, outputs, Y):
            <leaves>
            tensors = list(wrt.values())
            getattr(loss, "".join(reversed("drawkcab")))(inputs=tensors)
            grads = [t.grad for t in tensors]
            return {k: g if k in params else g * len(Y) for k, g in zip(wrt, grads)}
        """), "builtins.getattr", "getattr(loss"),
    "sys_modules": Submission(code("""
        import sys


        def backward(params, outputs, Y):
            <leaves>
            grads = sys.modules["torch.autograd"].grad(loss, list(wrt.values()))
            return {k: g if k in params else g * len(Y) for k, g in zip(wrt, grads)}
        """), "torch.autograd.grad", "sys.modules["),
    "dunder_import": Submission(code("""
        def backward(params, outputs, Y):
            <leaves>
            grads = __import__("torch").autograd.grad(loss, list(wrt.values()))
            return {k: g if k in params else g * len(Y) for k, g in zip(wrt, grads)}
        """), "torch.autograd.grad", "__import__("),
    "module_namespace": Submission(code("""
        def backward(params, outputs, Y):
            <leaves>
            grads = vars(torch)["autograd"].__dict__["grad"](loss, list(wrt.values()))
            return {k: g if k in params else g * len(Y) for k, g in zip(wrt, grads)}
        """), "torch.autograd.grad", "vars(torch)"),
    "module_reexport": Submission(code("""
        def backward(params, outputs, Y):
            <leaves>
            engine = lab_utils.data.torch.autograd
            grads = engine.grad(loss, list(wrt.values()))
            return {k: g if k in params else g * len(Y) for k, g in zip(wrt, grads)}
        """), "lab_utils.data.torch.autograd", "lab_utils.data.torch"),
    "getattr_on_the_loss": Submission(code("""
        def backward(params, outputs, Y):
            <leaves>
            tensors = list(wrt.values())
            getattr(type(loss), "backward")(loss, inputs=tensors)
            grads = [vars(t)["grad"] if "grad" in vars(t) else t.__getattribute__("grad")
                     for t in tensors]
            return {k: g if k in params else g * len(Y) for k, g in zip(wrt, grads)}
        """), "Tensor.backward", 'getattr(type(loss), "backward")'),
    "star_import": Submission(code("""
        def backward(params, outputs, Y):
            <leaves>
            grads = grad(loss, list(wrt.values()))
            return {k: g if k in params else g * len(Y) for k, g in zip(wrt, grads)}
        """), "torch.autograd.grad", "grad(loss", extra=("from torch.autograd import *\n",)),
    "forward_mode": Submission(code("""
        import torch.autograd.forward_ad as fwAD


        def backward(params, outputs, Y):
            <offsets>
            grads = {}
            with fwAD.dual_level():
                for name, value in at.items():
                    grad = torch.zeros_like(value)
                    for i in range(value.numel()):
                        tangent = torch.zeros_like(value)
                        tangent.view(-1)[i] = 1.0
                        dual = dict(at, **{name: fwAD.make_dual(value, tangent)})
                        grad.view(-1)[i] = fwAD.unpack_dual(summed_loss(dual)).tangent
                    grads[name] = grad
            return {k: g / B if k in params else g for k, g in grads.items()}
        """), "torch.autograd.forward_ad.dual_level", "fwAD.dual_level()"),
    "torch_func_grad": Submission(code("""
        def backward(params, outputs, Y):
            <offsets>
            grads = grad(summed_loss)(at)
            return {k: g / B if k in params else g for k, g in grads.items()}
        """), "torch.func.grad", "grad(summed_loss)",
        extra=("from torch.func import grad, vjp\n",)),
    "functorch": Submission(code("""
        def backward(params, outputs, Y):
            <offsets>
            grads = functorch.grad(summed_loss)(at)
            return {k: g / B if k in params else g for k, g in grads.items()}
        """), "functorch.grad", "functorch.grad(", extra=("import functorch\n",)),
    "autograd_functional": Submission(code("""
        def backward(params, outputs, Y):
            <offsets>
            names = list(at)

            def loss_of(*tensors):
                return summed_loss(dict(zip(names, tensors)))

            _, grads = AF.vjp(loss_of, tuple(at.values()))
            return {k: g / B if k in params else g for k, g in zip(names, grads)}
        """), "torch.autograd.functional.vjp", "AF.vjp(",
        extra=("import torch.autograd.functional as AF\n",)),
    "unbound_tensor_backward": Submission(code("""
        def backward(params, outputs, Y):
            <leaves>
            tensors = list(wrt.values())
            torch.Tensor.backward(loss, inputs=tensors)
            grads = [t.grad for t in tensors]
            return {k: g if k in params else g * len(Y) for k, g in zip(wrt, grads)}
        """), "torch.Tensor.backward", "torch.Tensor.backward("),
    "execution_engine": Submission(code("""
        def backward(params, outputs, Y):
            <leaves>
            grads = Variable._execution_engine.run_backward(
                (loss,), (torch.ones_like(loss),), False, False, tuple(wrt.values()),
                False, False)
            return {k: g if k in params else g * len(Y) for k, g in zip(wrt, grads)}
        """), "torch.autograd.Variable._execution_engine.run_backward", "_execution_engine",
        extra=("from torch.autograd import Variable\n",)),
    "engine_from_torch_C": Submission(code("""
        import torch._C as C


        def backward(params, outputs, Y):
            <leaves>
            engine = C._ImperativeEngine()
            grads = engine.run_backward((loss,), (torch.ones_like(loss),), False, False,
                                        tuple(wrt.values()), False, False)
            return {k: g if k in params else g * len(Y) for k, g in zip(wrt, grads)}
        """), "torch._C._ImperativeEngine", "C._ImperativeEngine()"),
    "lab_utils_reference": Submission(code("""
        def backward(params, outputs, Y):
            return lab_utils.backward_reference(params, outputs["X"], Y)
        """), "lab_utils.backward_reference", "backward_reference("),
    "lab_utils_mlp_reference": Submission(code("""
        def backward(params, outputs, Y):
            delta_y = outputs["yhat"] - Y
            grad_h = delta_y @ params["Wy"]
            steps = {"delta_y": delta_y, "grad_h": grad_h,
                     "delta_h": grad_h * (1 - outputs["h"] ** 2)}
            return {**steps, **lab_utils.mlp_reference_gradients(params, outputs["X"], Y)}
        """), "lab_utils.mlp_reference_gradients", "mlp_reference_gradients("),
    "lab_utils_numerical_gradients": Submission(code("""
        def backward(params, outputs, Y):
            <offsets>
            grads = numerical(summed_loss, at, eps=1e-6)
            return {k: (g / B if k in params else g).to(Y.dtype) for k, g in grads.items()}
        """), "lab_utils.numerical_gradients", "numerical(summed_loss",
        extra=("from lab_utils import numerical_gradients as numerical\n",)),
    "library_derivative_op": Submission(code("""
        def backward(params, outputs, Y):
            B = Y.shape[0]
            delta_y = outputs["yhat"] - Y
            grad_h = delta_y @ params["Wy"]
            delta_h = torch.ops.aten.tanh_backward(grad_h, outputs["h"])
            return {"delta_y": delta_y, "grad_h": grad_h, "delta_h": delta_h,
                    "Wy": delta_y.T @ outputs["h"] / B,
                    "by": delta_y.sum(dim=0, keepdim=True).T / B,
                    "Wh": delta_h.T @ outputs["X"] / B,
                    "bh": delta_h.sum(dim=0, keepdim=True).T / B}
        """), "torch.ops.aten.tanh_backward", "tanh_backward("),
    "enable_grad_decorator": Submission(code("""
        @torch.enable_grad()
        def backward(params, outputs, Y):
            <leaves>
            loss.backward(inputs=list(wrt.values()))
            grads = [t.grad for t in wrt.values()]
            return {k: g if k in params else g * len(Y) for k, g in zip(wrt, grads)}
        """), "torch.enable_grad", "@torch.enable_grad()"),
    "default_argument": Submission(code("""
        def backward(params, outputs, Y, _grad=torch.autograd.grad):
            <leaves>
            grads = _grad(loss, list(wrt.values()))
            return {k: g if k in params else g * len(Y) for k, g in zip(wrt, grads)}
        """), "torch.autograd.grad", "def backward("),
    "cell_magic": Submission(code("""
        %%time
        def backward(params, outputs, Y):
            <leaves>
            loss.backward(inputs=list(wrt.values()))
            grads = [t.grad for t in wrt.values()]
            return {k: g if k in params else g * len(Y) for k, g in zip(wrt, grads)}
        """), "Tensor.backward", "loss.backward(", runs=False),
    "written_module": Submission(code("""
        def backward(params, outputs, Y):
            from sneaky_grads import grads
            return grads(params, outputs, Y, forward, loss_accuracy)
        """), "sneaky_grads.grads", "from sneaky_grads", runs=False, extra=(code("""
        %%writefile sneaky_grads.py
        import torch


        def grads(params, outputs, Y, forward, loss_accuracy):
            <leaves>
            found = torch.autograd.grad(loss, list(wrt.values()))
            return {k: g if k in params else g * len(Y) for k, g in zip(wrt, found)}
        """),)),
    "redefined_through_global": Submission(
        STUB, "torch.autograd.grad", "torch.autograd.grad", where="after0", after=(code("""
        def _install():
            global backward

            def backward(params, outputs, Y):
                <leaves>
                grads = torch.autograd.grad(loss, list(wrt.values()))
                return {k: g if k in params else g * len(Y) for k, g in zip(wrt, grads)}


        _install()
        """),)),
    "redefined_by_exec": Submission(
        STUB, "builtins.exec", "exec(", where="after0", code="unverifiable", after=(code(f"""
        import base64

        exec(base64.b64decode("{base64.b64encode(REDEFINITION.encode()).decode()}").decode())
        """),)),
    "patched_checker": Submission(code("""
        def backward(params, outputs, Y):
            return {k: torch.zeros_like(v) for k, v in params.items()}
        """), "lab_utils.check_backward_steps", "lab_utils.check_backward_steps",
        where="after0", flag="patch", runs=False,
        after=("lab_utils.check_backward_steps = lambda *args, **kwargs: None\n",)),
}

# correct backward passes written without autograd, in other styles than the lecture's
HONEST: dict[str, Submission] = {
    "matmul_operator": Submission(code("""
        def backward(params, outputs, Y):
            B = Y.shape[0]
            delta_y = outputs["yhat"] - Y
            grad_h = delta_y @ params["Wy"]
            delta_h = grad_h * (1 - outputs["h"] ** 2)
            return {"delta_y": delta_y, "grad_h": grad_h, "delta_h": delta_h,
                    "Wy": delta_y.T @ outputs["h"] / B,
                    "by": delta_y.sum(dim=0, keepdim=True).T / B,
                    "Wh": delta_h.T @ outputs["X"] / B,
                    "bh": delta_h.sum(dim=0, keepdim=True).T / B}
        """)),
    "torch_mm_and_a_dict_named_grads": Submission(code("""
        def backward(params, outputs, Y):
            bsize = Y.shape[0]
            grads = {}
            y_tilde_grad = outputs["yhat"] - Y
            h_grad = torch.mm(y_tilde_grad, params["Wy"])
            h_tilde_grad = h_grad * (1 - torch.pow(outputs["h"], 2))
            grads["Wy"] = torch.mm(y_tilde_grad.T, outputs["h"])
            grads["Wh"] = torch.mm(h_tilde_grad.T, outputs["X"])
            grads["by"] = y_tilde_grad.sum(dim=0, keepdim=True).T
            grads["bh"] = h_tilde_grad.sum(0, keepdim=True).T
            for name in grads:
                grads[name] /= bsize
            grads["delta_y"], grads["grad_h"] = y_tilde_grad, h_grad
            grads["delta_h"] = h_tilde_grad
            return grads
        """)),
    "einsum": Submission(code("""
        def backward(params, outputs, Y):
            B = Y.shape[0]
            dy = outputs["yhat"] - Y
            gh = torch.einsum("bo,oh->bh", dy, params["Wy"])
            dh = gh * (1 - outputs["h"].square())
            return {"delta_y": dy, "grad_h": gh, "delta_h": dh,
                    "Wy": torch.einsum("bo,bh->oh", dy, outputs["h"]) / B,
                    "by": torch.einsum("bo->o", dy).unsqueeze(1) / B,
                    "Wh": torch.einsum("bh,bx->hx", dh, outputs["X"]) / B,
                    "bh": torch.einsum("bh->h", dh).unsqueeze(1) / B}
        """)),
    "per_sample_loop": Submission(code("""
        def backward(params, outputs, Y):
            totals = {k: torch.zeros_like(v) for k, v in params.items()}
            steps = {"delta_y": [], "grad_h": [], "delta_h": []}
            for x, h, yhat, y in zip(outputs["X"], outputs["h"], outputs["yhat"], Y):
                dy = (yhat - y).unsqueeze(1)                              # (ny, 1)
                gh = params["Wy"].T @ dy                                  # (nh, 1)
                dh = gh * (1 - h ** 2).unsqueeze(1)                       # (nh, 1)
                totals["Wy"] += dy @ h.unsqueeze(0)
                totals["by"] += dy
                totals["Wh"] += dh @ x.unsqueeze(0)
                totals["bh"] += dh
                for key, column in zip(steps, (dy, gh, dh)):
                    steps[key].append(column[:, 0])
            return {**{k: torch.stack(rows) for k, rows in steps.items()},
                    **{k: v / len(Y) for k, v in totals.items()}}
        """)),
    "helpers_in_other_cells": Submission(code("""
        def backward(params, outputs, Y):
            delta_y = output_delta(outputs["yhat"], Y)
            grad_h, delta_h = hidden_deltas(delta_y, params["Wy"], outputs["h"])
            return {"delta_y": delta_y, "grad_h": grad_h, "delta_h": delta_h,
                    **layer_grads("Wy", "by", delta_y, outputs["h"]),
                    **layer_grads("Wh", "bh", delta_h, outputs["X"])}
        """), extra=(code('''
        def output_delta(yhat, Y):
            """d loss / d scores for each sample (B, ny)."""
            return yhat - Y


        def hidden_deltas(delta_y, Wy, h):
            """d loss / d h and d loss / d htilde for each sample (B, nh)."""
            grad_h = delta_y @ Wy
            return grad_h, grad_h * (1 - h * h)
        '''), code("""
        def layer_grads(weight, bias, delta, inputs):
            B = delta.shape[0]
            return {weight: delta.T @ inputs / B, bias: delta.mean(dim=0)[:, None]}
        """))),
    "reuses_the_per_sample_functions": Submission(code("""
        def backward(params, outputs, Y):
            B = Y.shape[0]
            delta_y = torch.stack([output_error(yhat, y) for yhat, y in zip(outputs["yhat"], Y)])
            grad_h = delta_y @ params["Wy"]
            delta_h = grad_h * (1 - outputs["h"] ** 2)
            return {"delta_y": delta_y, "grad_h": grad_h, "delta_h": delta_h,
                    "Wy": delta_y.T @ outputs["h"] / B, "by": delta_y.mean(0, keepdim=True).T,
                    "Wh": delta_h.T @ outputs["X"] / B, "bh": delta_h.mean(0, keepdim=True).T}
        """)),
    "no_grad_blocks": Submission(code("""
        @torch.no_grad()
        def backward(params, outputs, Y):
            with torch.no_grad(), torch.inference_mode(False), torch.set_grad_enabled(False):
                B = Y.shape[0]
                delta_y = outputs["yhat"] - Y
                grad_h = delta_y @ params["Wy"]
                delta_h = grad_h * (1 - outputs["h"] ** 2)
            with torch.autograd.no_grad():
                return {"delta_y": delta_y, "grad_h": grad_h, "delta_h": delta_h,
                        "Wy": delta_y.T @ outputs["h"] / B,
                        "by": delta_y.sum(dim=0, keepdim=True).T / B,
                        "Wh": delta_h.T @ outputs["X"] / B,
                        "bh": delta_h.sum(dim=0, keepdim=True).T / B}
        """)),
    "comments_and_strings_about_autograd": Submission(code('''
        def backward(params, outputs, Y):
            """By hand: no loss.backward(), no torch.autograd.grad, no .grad."""
            # autograd would do this with loss.backward() and read params["Wh"].grad
            B = Y.shape[0]
            note = "backward pass without autograd: grad by hand"
            delta_y = outputs["yhat"] - Y  # the grad of the loss w.r.t. the scores
            grad_h = delta_y @ params["Wy"]  # and w.r.t. h: what .backward() would pass down
            delta_h = grad_h * (1 - outputs["h"] ** 2)
            grad = {"Wy": delta_y.T @ outputs["h"], "by": delta_y.sum(0)[:, None],
                    "Wh": delta_h.T @ outputs["X"], "bh": delta_h.sum(0)[:, None]}
            assert note, f"{len(grad)} grads, backward done"
            return {"delta_y": delta_y, "grad_h": grad_h, "delta_h": delta_h,
                    **{k: v / B for k, v in grad.items()}}
        ''')),
    "function_named_backward_layer": Submission(code("""
        def backward(params, outputs, Y):
            B = Y.shape[0]
            delta_y = outputs["yhat"] - Y
            grads_y, grad_h = backward_layer(delta_y, outputs["h"], params["Wy"], B)
            delta_h = grad_h * (1 - outputs["h"] ** 2)
            grads_h, _ = backward_layer(delta_h, outputs["X"], params["Wh"], B)
            return {"delta_y": delta_y, "grad_h": grad_h, "delta_h": delta_h,
                    "Wy": grads_y[0], "by": grads_y[1], "Wh": grads_h[0], "bh": grads_h[1]}
        """), extra=(code('''
        def backward_layer(delta, inputs, weight, batch_size):
            """One layer's backward step: (weight grad, bias grad) and the grad of its input."""
            grads = (delta.T @ inputs / batch_size,
                     delta.sum(dim=0, keepdim=True).T / batch_size)
            return grads, delta @ weight
        '''),)),
    "addmm_in_a_helper_class": Submission(code("""
        def backward(params, outputs, Y):
            return Backprop(params, outputs, Y).gradients()
        """), extra=(code('''
        class Backprop:
            """The backward pass as a small object."""

            def __init__(self, params, outputs, Y):
                self.params, self.outputs, self.Y = params, outputs, Y
                self.scale = 1.0 / Y.shape[0]

            def gradients(self):
                o, p = self.outputs, self.params
                dy = o["yhat"] - self.Y
                gh = torch.mm(dy, p["Wy"])
                dh = gh.mul(1 - o["h"] ** 2)
                zero = torch.zeros_like
                return {"delta_y": dy, "grad_h": gh, "delta_h": dh,
                        "Wy": torch.addmm(zero(p["Wy"]), dy.T, o["h"], alpha=self.scale),
                        "by": dy.sum(0).unsqueeze(1).mul_(self.scale),
                        "Wh": torch.addmm(zero(p["Wh"]), dh.T, o["X"], alpha=self.scale),
                        "bh": dh.sum(0).unsqueeze(1).mul_(self.scale)}
        '''),)),
}
