"""lab_utils, specified by its behaviour: devices, data, gradient checking, plotting, timing."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lab_utils as L

# --- device -----------------------------------------------------------------------------


def test_get_device_defaults_to_an_available_device(monkeypatch):
    monkeypatch.delenv("LAB_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert L.get_device().type == expected


def test_lab_device_environment_variable_forces_the_cpu(monkeypatch):
    monkeypatch.setenv("LAB_DEVICE", "cpu")
    assert L.get_device() == torch.device("cpu")
    assert L.get_device("auto").type in {"cpu", "cuda", "mps"}  # an argument beats the variable


@pytest.mark.parametrize("bad", ["gpu", "tpu", "cuda!"])
def test_unknown_device_names_are_rejected_with_the_choices(monkeypatch, bad):
    monkeypatch.setenv("LAB_DEVICE", bad)
    with pytest.raises(ValueError, match=r"LAB_DEVICE: expected one of .*got"):
        L.get_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_missing_cuda_raises_instead_of_falling_back():
    with pytest.raises(RuntimeError, match="prefer: asked for 'cuda'"):
        L.get_device("cuda")


def test_describe_device_says_it_in_a_few_friendly_words():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert L.describe_device("cpu") == "the CPU (1 thread)"
        torch.set_num_threads(2)
        assert L.describe_device("cpu") == "the CPU (2 threads)"
    finally:
        torch.set_num_threads(threads)
    assert L.describe_device("mps") == "the Apple-silicon GPU (mps)"


# --- data -------------------------------------------------------------------------------

GENERATORS = [L.make_moons, L.make_circles, L.make_xor, L.make_spirals]


@pytest.mark.parametrize("make", GENERATORS)
def test_generators_return_float_points_and_int64_labels(make):
    X, y = make(101, noise=0.1, random_state=3)
    assert X.shape == (101, 2) and X.dtype == torch.float32
    assert y.shape == (101,) and y.dtype == torch.int64
    assert torch.isfinite(X).all()


@pytest.mark.parametrize("make", GENERATORS)
def test_a_seed_gives_the_same_data_and_another_seed_other_data(make):
    X1, y1 = make(50, noise=0.2, random_state=7)
    X2, y2 = make(50, noise=0.2, random_state=7)
    X3, _ = make(50, noise=0.2, random_state=8)
    assert torch.equal(X1, X2) and torch.equal(y1, y2)
    assert not torch.equal(X1, X3)


@pytest.mark.parametrize("make", GENERATORS)
def test_dtype_and_device_arguments_are_honoured_without_changing_values(make):
    X32, _ = make(40, noise=0.1, random_state=1)
    X64, y64 = make(40, noise=0.1, random_state=1, dtype=torch.float64, device="cpu")
    assert X64.dtype == torch.float64 and X64.device.type == "cpu"
    torch.testing.assert_close(X64.float(), X32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_same_seed_gives_the_same_data_on_the_gpu():
    X_cpu, y_cpu = L.make_moons(64, noise=0.1, random_state=0)
    X_gpu, y_gpu = L.make_moons(64, noise=0.1, random_state=0, device="cuda")
    assert torch.equal(X_gpu.cpu(), X_cpu) and torch.equal(y_gpu.cpu(), y_cpu)


def test_moons_without_noise_lie_on_two_unit_half_circles():
    X, y = L.make_moons(200, random_state=0, dtype=torch.float64)
    upper, lower = X[y == 0], X[y == 1]
    torch.testing.assert_close(upper.norm(dim=1), torch.ones(100, dtype=torch.float64))
    centre = torch.tensor([1.0, 0.5], dtype=torch.float64)
    torch.testing.assert_close((lower - centre).norm(dim=1), torch.ones(100, dtype=torch.float64))


def test_circles_without_noise_have_radii_one_and_factor():
    X, y = L.make_circles(100, factor=0.3, random_state=0, dtype=torch.float64)
    radius = X.norm(dim=1)
    torch.testing.assert_close(radius[y == 0], torch.ones(50, dtype=torch.float64))
    torch.testing.assert_close(radius[y == 1], torch.full((50,), 0.3, dtype=torch.float64))


def test_xor_labels_mark_points_whose_coordinates_differ_in_sign():
    X, y = L.make_xor(300, random_state=2)
    assert torch.equal(y, ((X[:, 0] > 0) != (X[:, 1] > 0)).long())


def test_spirals_have_k_balanced_classes():
    _, y = L.make_spirals(301, n_classes=4, random_state=0)
    assert torch.bincount(y).tolist() == [76, 75, 75, 75]


@pytest.mark.parametrize("call, message", [
    (lambda: L.make_moons(1), r"n_samples: expected an int >= 2, got 1"),
    (lambda: L.make_moons(10.0), r"n_samples: expected an int, got float"),
    (lambda: L.make_moons(10, noise=-1), r"noise: expected a number >= 0"),
    (lambda: L.make_moons(10, random_state="a"), r"random_state: expected an int, got str"),
    (lambda: L.make_circles(10, factor=1.5), r"factor: expected a number <= 1"),
    (lambda: L.make_spirals(10, n_classes=1), r"n_classes: expected an int >= 2, got 1"),
    (lambda: L.make_moons(10, dtype=torch.int64), r"dtype: expected a floating-point torch.dtype"),
])
def test_generators_reject_bad_arguments_by_name(call, message):
    with pytest.raises((TypeError, ValueError), match=message):
        call()


def test_one_hot_builds_float_rows_with_a_single_one():
    Y = L.one_hot(torch.tensor([2, 0, 1]), 4)
    assert Y.dtype == torch.float32 and Y.shape == (3, 4)
    assert Y.tolist() == [[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]]
    assert L.one_hot(torch.tensor([0, 1, 1])).shape == (3, 2)


@pytest.mark.parametrize("y, k, message", [
    (torch.tensor([0.0, 1.0]), None, r"y: expected an integer tensor of labels, got dtype torch.float32"),
    (torch.tensor([[0, 1]]), None, r"y: expected a 1-D tensor, got shape \(1, 2\)"),
    (torch.tensor([0, 3]), 2, r"num_classes: expected more than the largest label 3, got 2"),
    (torch.tensor([0, -1]), None, r"y: expected labels >= 0"),
    ([0, 1], None, r"y: expected a torch.Tensor, got list"),
])
def test_one_hot_rejects_bad_labels(y, k, message):
    with pytest.raises((TypeError, ValueError), match=message):
        L.one_hot(y, k)


def test_train_test_split_partitions_rows_reproducibly():
    X = torch.arange(20.0).reshape(10, 2)
    y = torch.arange(10)
    X_train, X_test, y_train, y_test = L.train_test_split(X, y, test_size=0.3, random_state=0)
    assert len(X_test) == 3 and len(X_train) == 7
    assert sorted(torch.cat([y_train, y_test]).tolist()) == list(range(10))
    torch.testing.assert_close(X_train[:, 0], 2.0 * y_train.float())  # rows stay paired
    again = L.train_test_split(X, y, test_size=0.3, random_state=0)
    assert torch.equal(again[3], y_test)


@pytest.mark.parametrize("kwargs, message", [
    ({"test_size": 1.5}, r"test_size: expected a fraction in \(0, 1\), got 1.5"),
    ({"test_size": 10}, r"test_size: expected between 1 and 9 test rows, got 10"),
    ({"test_size": "a"}, r"test_size: expected a fraction or a count, got str"),
])
def test_train_test_split_rejects_bad_sizes(kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        L.train_test_split(torch.zeros(10, 2), torch.zeros(10, dtype=torch.long), **kwargs)


def test_train_test_split_requires_matching_rows():
    with pytest.raises(ValueError, match=r"y: expected 10 rows to match X, got 9"):
        L.train_test_split(torch.zeros(10, 2), torch.zeros(9, dtype=torch.long))


# --- checking ---------------------------------------------------------------------------


def _quadratic_problem(dtype=torch.float64):
    generator = torch.Generator().manual_seed(0)
    params = {"W": torch.randn(3, 5, generator=generator, dtype=dtype),
              "b": torch.randn(3, 1, generator=generator, dtype=dtype)}
    X = torch.randn(8, 5, generator=generator, dtype=dtype)

    def loss(p):
        return ((X @ p["W"].T + p["b"].T) ** 2).mean()
    loss.X = X
    return params, loss


def test_autograd_gradients_match_the_formula_and_leave_params_untouched():
    params, loss = _quadratic_problem()
    before = {k: v.clone() for k, v in params.items()}
    grads = L.autograd_gradients(loss, params)
    X = loss.X  # by hand: d/dW mean(R²) with R = XWᵀ + bᵀ is 2 Rᵀ X / R.numel()
    residual = X @ params["W"].T + params["b"].T
    torch.testing.assert_close(grads["W"], 2 * residual.T @ X / residual.numel())
    torch.testing.assert_close(grads["b"], 2 * residual.sum(0, keepdim=True).T / residual.numel())
    for k in params:
        assert torch.equal(params[k], before[k]) and not params[k].requires_grad


def test_autograd_gradients_of_a_single_tensor():
    x = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(L.autograd_gradients(lambda t: (t ** 3).sum(), x), 3 * x ** 2)


def test_correct_gradients_pass_and_the_table_says_so(capsys):
    params, loss = _quadratic_problem()
    grads = L.autograd_gradients(loss, params)
    report = L.check_gradients({k: v.clone() for k, v in grads.items()}, grads)
    assert report.passed
    out = capsys.readouterr().out
    assert "PASSED" in out and "W" in out and "ok" in out


@pytest.mark.parametrize("mistake", ["scaled", "transposed", "sign", "broadcast", "row", "dtype"])
def test_wrong_gradients_fail_with_an_assertion_naming_the_tensor(mistake):
    params, loss = _quadratic_problem()
    reference = L.autograd_gradients(loss, params)
    wrong = dict(reference)
    if mistake == "scaled":
        wrong["W"] = reference["W"] * 8
    elif mistake == "transposed":
        wrong["W"] = reference["W"].T
    elif mistake == "sign":
        wrong["b"] = -reference["b"]
    elif mistake == "broadcast":
        wrong["b"] = reference["b"][:, 0]          # (3,) must never pass for (3, 1)
    elif mistake == "row":
        wrong["b"] = reference["b"].T              # (1, 3)
    else:
        wrong["W"] = reference["W"].float()
    with pytest.raises(AssertionError) as error:
        L.check_gradients(wrong, reference, verbose=False)
    failed = [c.name for c in L.compare_gradients(wrong, reference).checks if not c.passed]
    assert failed == (["W"] if mistake in {"scaled", "transposed", "dtype"} else ["b"])
    assert "FAILED" in str(error.value) and "WRONG" in str(error.value)


def test_small_rounding_differences_pass_in_float32():
    params, loss = _quadratic_problem(torch.float32)
    reference = L.autograd_gradients(loss, params)
    nudged = {k: v * (1 + 1e-6) for k, v in reference.items()}
    assert L.compare_gradients(nudged, reference).passed


def test_nan_gradients_fail_and_are_named():
    reference = {"W": torch.ones(2, 2)}
    report = L.compare_gradients({"W": torch.tensor([[1.0, float("nan")], [1.0, 1.0]])}, reference)
    assert not report.passed and "NaN" in report["W"].problem


def test_missing_keys_and_non_tensors_are_reported_by_name():
    reference = {"W": torch.ones(2), "b": torch.ones(1)}
    with pytest.raises(KeyError, match=r"actual: expected keys \['W', 'b'\], missing \['b'\]"):
        L.compare_gradients({"W": torch.ones(2)}, reference)
    report = L.compare_gradients({"W": [1.0, 1.0], "b": torch.ones(1)}, reference)
    assert "expected a tensor, got list" in report["W"].problem
    with pytest.raises(TypeError, match="expected: expected a tensor or a dict of tensors"):
        L.compare_gradients(torch.ones(1), 3.0)


def test_autograd_gradients_rejects_a_non_scalar_loss():
    with pytest.raises(ValueError, match="loss_fn: expected it to return a scalar tensor"):
        L.autograd_gradients(lambda t: t * 2, torch.ones(3))


def test_finite_differences_agree_with_autograd_in_float64():
    params, loss = _quadratic_problem()
    numeric = L.numerical_gradients(loss, params)
    exact = L.autograd_gradients(loss, params)
    torch.testing.assert_close(numeric, exact, rtol=1e-6, atol=1e-8)
    assert L.check_gradients_numerically(exact, loss, params, verbose=False).passed
    with pytest.raises(AssertionError, match="finite-difference check"):
        L.check_gradients_numerically({"W": exact["W"] * 2, "b": exact["b"]}, loss, params,
                                      verbose=False)


def test_mlp_reference_matches_a_per_sample_computation():
    torch.manual_seed(0)
    params = {"Wh": torch.randn(4, 2, dtype=torch.float64), "bh": torch.randn(4, 1, dtype=torch.float64),
              "Wy": torch.randn(3, 4, dtype=torch.float64), "by": torch.randn(3, 1, dtype=torch.float64)}
    X = torch.randn(5, 2, dtype=torch.float64)
    Y = L.one_hot(torch.tensor([0, 2, 1, 1, 0]), 3, dtype=torch.float64)
    per_sample = []
    for x, target in zip(X, Y):
        logits = params["Wy"] @ torch.tanh(params["Wh"] @ x[:, None] + params["bh"]) + params["by"]
        per_sample.append(-(target[:, None] * torch.log_softmax(logits, 0)).sum())
    torch.testing.assert_close(L.mlp_loss(params, X, Y), torch.stack(per_sample).mean())


def test_mlp_checker_validates_parameter_shapes():
    params = {"Wh": torch.zeros(4, 2), "bh": torch.zeros(4), "Wy": torch.zeros(2, 4), "by": torch.zeros(2, 1)}
    with pytest.raises(ValueError, match=r"params\['bh'\]: expected shape \(4, 1\), got shape \(4,\)"):
        L.mlp_reference_gradients(params, torch.zeros(3, 2), torch.zeros(3, 2))
    with pytest.raises(KeyError, match=r"params: expected keys"):
        L.mlp_reference_gradients({"Wh": torch.zeros(4, 2)}, torch.zeros(3, 2), torch.zeros(3, 2))


# --- plotting and timing ----------------------------------------------------------------


def test_plots_return_figures_with_labelled_axes():
    X, y = L.make_moons(60, noise=0.1, random_state=0)
    fig = L.plot_dataset(X, y)
    assert fig.axes[0].get_xlabel() and len(fig.axes[0].collections) == 2
    fig = L.plot_decision_boundary(lambda P: (P[:, 1] > 0.25).long(), X, y)
    assert fig.axes[0].get_title() == "decision boundary"
    fig = L.plot_training_curves({"train loss": [1.0, 0.5], "train acc": [0.5, 0.9]})
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "accuracy"]
    fig = L.plot_growth([1, 2, 3], {"calls": [1, 3, 5], "slow": [1, 10]}, ylabel="calls")
    assert fig.axes[0].get_yscale() == "log" and len(fig.axes[0].lines) == 2


@pytest.mark.parametrize("call, message", [
    (lambda: L.plot_dataset(torch.zeros(5, 3), torch.zeros(5, dtype=torch.long)), r"X: expected shape \(\*, 2\)"),
    (lambda: L.plot_dataset(torch.zeros(5, 2), torch.zeros(5)), r"y: expected integer class labels"),
    (lambda: L.plot_decision_boundary("f", torch.zeros(5, 2), torch.zeros(5, dtype=torch.long)), "predict: expected a function"),
    (lambda: L.plot_decision_boundary(lambda P: P, torch.zeros(5, 2), torch.zeros(5, dtype=torch.long)), r"predict: expected it to return labels of shape"),
    (lambda: L.plot_training_curves({"speed": [1]}), r"history: expected names containing 'loss' or 'acc'"),
    (lambda: L.plot_growth([], {"a": []}), "x: expected at least one value"),
])
def test_plots_reject_bad_input_by_name(call, message):
    with pytest.raises((TypeError, ValueError), match=message):
        call()


def test_time_call_measures_a_sleep():
    import time
    seconds = L.time_call(time.sleep, 0.01, repeat=2, min_time=0.0)
    assert 0.009 < seconds < 1.0
    with pytest.raises(TypeError, match="fn: expected a function"):
        L.time_call(3)


def test_import_is_light_and_quiet():
    """`import lab_utils` loads neither matplotlib nor the notebook stack, and prints nothing."""
    code = ("import sys, lab_utils; heavy = [m for m in ('matplotlib', 'IPython', 'nbformat') "
            "if m in sys.modules]; print(heavy)")
    result = subprocess.run([sys.executable, "-W", "error::DeprecationWarning:lab_utils", "-c", code],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]" and result.stderr == ""


def test_lazy_plotting_names_are_listed():
    assert set(L._PLOTTING) <= set(dir(L))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        L.nope  # noqa: B018


def test_relative_error_figure_is_scale_free():
    reference = {"W": torch.tensor([[1000.0, -2000.0]], dtype=torch.float64)}
    report = L.compare_gradients({"W": reference["W"] * (1 + 1e-3)}, reference)
    assert math.isclose(report["W"].rel_error, 1e-3, rel_tol=1e-6)


def test_training_curves_can_be_drawn_against_steps():
    fig = L.plot_training_curves({"train loss": [1.0, 0.5, 0.4]}, xlabel="step")
    assert fig.axes[0].get_xlabel() == "step"


def test_a_step_size_sweep_plots_each_run_and_marks_the_diverged_ones():
    runs = {0.1: [0.7, 0.6, 0.5, 0.45], 1.0: [0.7, 0.3, 0.2, 0.1],
            10.0: [0.7, 5.0, float("inf"), float("nan")]}
    fig = L.plot_step_sizes(runs, steps_per_epoch=2, title="sweep")
    curves, finals = fig.axes
    assert curves.get_yscale() == "log" and finals.get_xscale() == "log"
    lines = [line for line in curves.lines if line.get_marker() != "x"]
    assert [list(line.get_ydata()) for line in lines[:2]] == [pytest.approx([0.65, 0.475]),
                                                              pytest.approx([0.5, 0.15])]
    stop, = [line for line in curves.lines if line.get_marker() == "x"]
    assert list(stop.get_xdata()) == [1] and list(stop.get_ydata()) == [2.85]  # where it ends
    means, crosses = finals.lines
    assert list(means.get_xdata()) == [0.1, 1.0]
    assert list(means.get_ydata()) == pytest.approx([0.475, 0.15])
    assert list(crosses.get_xdata()) == [10.0]


@pytest.mark.parametrize("call, message", [
    (lambda: L.plot_step_sizes({}, steps_per_epoch=1), "runs: expected a non-empty dict"),
    (lambda: L.plot_step_sizes({-1.0: [1.0]}, steps_per_epoch=1), "runs: expected positive step"),
    (lambda: L.plot_step_sizes({0.1: []}, steps_per_epoch=1), r"runs\[0.1\]: expected at least"),
    (lambda: L.plot_step_sizes({0.1: [1.0]}, steps_per_epoch=0), "steps_per_epoch: expected an int >= 1"),
])
def test_a_step_size_sweep_rejects_bad_input_by_name(call, message):
    with pytest.raises((TypeError, ValueError), match=message):
        call()


# --- tools for the labs' test cells -----------------------------------------------------------

from lab_utils import testing as T  # noqa: E402


def test_replaced_swaps_names_for_a_block_and_puts_everything_back_even_on_error():
    namespace = {"forward": "student's", "keep": 1}
    with T.replaced(namespace, forward="reference", extra="new"):
        assert namespace == {"forward": "reference", "keep": 1, "extra": "new"}
    assert namespace == {"forward": "student's", "keep": 1}
    with pytest.raises(ZeroDivisionError), T.replaced(namespace, forward="reference"):
        raise ZeroDivisionError
    assert namespace["forward"] == "student's"
    with pytest.raises(TypeError, match="namespace: expected a dict"):
        with T.replaced([], forward=None):
            pass


@pytest.mark.parametrize("use_autograd", [
    lambda w: (w * 2).sum().backward(),                   # saves no tensor on the way
    lambda w: torch.autograd.grad((w ** 2).sum(), [w]),
    lambda w: torch.autograd.backward([(w * w).sum()]),
    lambda w: torch.autograd.functional.jacobian(lambda v: v * v, w.detach()),
    lambda w: torch.ones(3).requires_grad_(),
    lambda w: torch.zeros(3, requires_grad=True),
    lambda w: setattr(torch.ones(3), "requires_grad", True),
    lambda w: w.grad,
    lambda w: torch.tanh(w),                              # records a graph, saves its output
    lambda w: torch.func.grad(lambda v: (v ** 2).sum())(w.detach()),
])
def test_without_autograd_makes_any_use_of_autograd_raise(use_autograd):
    w = torch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"backward\(\) used autograd|saved tensor hooks"), \
            T.without_autograd("backward()"):
        use_autograd(w)
    (w * 2).sum().backward()                      # and autograd works again afterwards
    assert w.grad.tolist() == [2.0, 2.0, 2.0]


def test_without_autograd_lets_plain_tensor_arithmetic_run():
    with T.without_autograd("backward()"):
        x = torch.ones(2, 3)
        assert float((x @ x.T).sum() * (1 - x ** 2).sum()) == 0.0
        assert not x.requires_grad


@pytest.mark.parametrize("softmax", [
    lambda s: torch.softmax(s, dim=1), lambda s: torch.nn.functional.softmax(s, dim=1),
    lambda s: s.softmax(dim=1), lambda s: s.log_softmax(1).exp(),
    lambda s: torch.nn.Softmax(dim=1)(s), lambda s: torch.special.softmax(s, dim=1),
    lambda s: torch.nn.functional.cross_entropy(s, torch.tensor([0, 1])),
])
def test_without_library_softmax_refuses_every_way_to_the_library_softmax(softmax):
    with pytest.raises(RuntimeError, match="write the softmax yourself"), \
            T.without_library_softmax("forward()"):
        softmax(torch.randn(2, 3))


def test_without_library_softmax_lets_a_hand_written_softmax_run():
    scores = torch.randn(4, 3)
    with T.without_library_softmax("forward()"):
        exp = torch.exp(scores - scores.amax(dim=1, keepdim=True))
        mine = exp / exp.sum(dim=1, keepdim=True)
    torch.testing.assert_close(mine, torch.softmax(scores, dim=1))


@pytest.mark.parametrize("got, expected, text", [
    (0.6931472, 0.6931488, "expected 0.693149, got 0.693147"),
    (0.5, 0.25, "expected 0.25, got 0.5"),
    (torch.tensor(2.0), 2, "expected 2, got 2"),
    (1.23456789012, 1.23456789013, "expected 1.23456789013, got 1.23456789012"),
    (float("nan"), 1.0, "expected 1, got nan"),
])
def test_describe_mismatch_shows_numbers_that_visibly_differ(got, expected, text):
    assert T.describe_mismatch(got, expected) == text


def test_tensor_mismatch_says_where_and_by_how_much():
    want = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert T.tensor_mismatch(want + 1e-7, want, rtol=1e-5, atol=1e-6) is None
    got = want.clone()
    got[1, 0] = 3.5
    text = T.tensor_mismatch(got, want, rtol=1e-5, atol=1e-6)
    assert text.startswith("1 of 4 entries differ; the largest difference is 0.5 at index (1, 0)")
    assert "expected 3, got 3.5" in text and "allowed: 1e-06 + 1e-05 * |expected|" in text
    with_nan = want.clone()
    with_nan[0, 1] = float("nan")
    assert T.tensor_mismatch(with_nan, want, rtol=1, atol=1).startswith("1 of 4 entries differ")
    with pytest.raises(ValueError, match=r"got: expected shape \(2, 2\), got \(4,\)"):
        T.tensor_mismatch(want.reshape(-1), want, rtol=0, atol=0)


def test_a_failed_check_shows_its_table_once_and_no_library_frames(capsys):
    reference = {"W": torch.ones(3, 2)}
    with pytest.raises(AssertionError) as error:
        L.check_gradients({"W": 2 * torch.ones(3, 2)}, reference)
    assert capsys.readouterr().out == ""                       # not printed, and raised once
    assert isinstance(error.value, L.checking.CheckFailed)
    shown = error.value._render_traceback_()                  # what IPython displays
    assert "gradient check: FAILED" in shown[0] and "CheckFailed" in shown[0]
    assert "\n".join(shown[1:]) == str(error.value).strip().split("\n", 1)[1]
    assert not any("File " in line or "lab_utils" in line for line in shown)
    L.check_gradients(reference, reference)                   # a passing check prints once
    assert capsys.readouterr().out.count("gradient check: PASSED") == 1


@pytest.mark.slow
def test_in_a_notebook_a_failing_check_is_its_table_alone(tmp_path):
    """In a real kernel, a check-it-yourself cell that fails shows the report once, as the error,
    with the FAILED status and no traceback through lab_utils."""
    from nbclient import NotebookClient

    from instructor.commands.authoring import code, notebook

    nb = notebook([code("import torch, lab_utils\n"
                        "lab_utils.check_gradients({'W': 2 * torch.ones(3, 2)}, "
                        "{'W': torch.ones(3, 2)})")])
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[0].outputs
    errors = [o for o in outputs if o.output_type == "error"]
    assert [o.output_type for o in outputs] == ["error"], outputs   # nothing printed besides
    traceback = "\n".join(errors[0].traceback)
    assert traceback.count("gradient check: FAILED") == 1 and "WRONG" in traceback
    assert "lab_utils/" not in traceback and "File " not in traceback
    assert errors[0].ename == "CheckFailed"


def test_finite_differences_and_diagnoses_work_for_tensors_on_a_device_without_float64():
    """On Apple's MPS float64 does not exist: the finite differences run on the CPU, and the
    diagnosis of a wrong gradient compares on the CPU too (a simulated MPS device here)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from simulated_device import SimulatedDevice

    with SimulatedDevice("mps"):
        mps = torch.device("mps")
        X, y = L.make_moons(12, noise=0.1, random_state=0, device=mps)
        Y = L.one_hot(y, 2)
        params = {"Wh": (torch.randn(3, 2) * 0.5).to(mps), "bh": torch.zeros(3, 1, device=mps),
                  "Wy": (torch.randn(2, 3) * 0.5).to(mps), "by": torch.zeros(2, 1, device=mps)}
        grads = L.mlp_reference_gradients(params, X, Y)
        X64, Y64 = X.cpu().double(), Y.cpu().double()
        report = L.check_gradients_numerically(grads, lambda p: L.mlp_loss(p, X64, Y64), params,
                                               rtol=1e-4, atol=1e-6, verbose=False)
        assert report.passed
        wrong = dict(grads, Wy=grads["Wy"] * 12)
        report = L.mlp.compare_mlp_gradients(wrong, params, X, Y)
        assert "12x too large, exactly the batch size" in report["Wy"].diagnosis
