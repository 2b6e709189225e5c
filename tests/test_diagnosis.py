"""The checker names the bug: a catalogue of hand-written-gradient mistakes and their diagnoses.

Every buggy ``backward`` below is written here, in the tests (students never see it); each must
make the checker print its diagnosis. Correct implementations in several styles must pass with
no diagnosis, and gradients that are wrong in no recognisable way must get no guess.
"""

from __future__ import annotations

import pytest
import torch

import lab_utils as L
from lab_utils.diagnosis import diagnose, scale_factor
from lab_utils.mlp import SIGN_IN_HIDDEN_LAYER, SIGN_OF_OUTPUT_ERROR, mlp_mistake_gradients

# --- the network of the lecture, forward and backward written out in the tests -----------


def make_problem(B=8, nx=2, nh=5, ny=3, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    params = {"Wh": torch.randn(nh, nx, generator=g, dtype=dtype),
              "bh": 0.5 * torch.randn(nh, 1, generator=g, dtype=dtype),
              "Wy": torch.randn(ny, nh, generator=g, dtype=dtype),
              "by": 0.5 * torch.randn(ny, 1, generator=g, dtype=dtype)}
    X = torch.randn(B, nx, generator=g, dtype=dtype)
    Y = L.one_hot(torch.randint(0, ny, (B,), generator=g), ny).to(dtype)
    return params, X, Y


def forward(params, X):
    h_tilde = torch.mm(X, params["Wh"].T) + params["bh"].T
    h = torch.tanh(h_tilde)
    scores = torch.mm(h, params["Wy"].T) + params["by"].T
    return {"X": X, "h_tilde": h_tilde, "h": h, "scores": scores, "yhat": torch.softmax(scores, 1)}


def backward(params, X, Y, *, output_error=lambda o, Y: o["yhat"] - Y,
             slope=lambda o: 1 - o["h"] ** 2, average=lambda g, B: g / B,
             bias=lambda d: d.sum(0, keepdim=True).T, weight=lambda d, a: torch.mm(d.T, a)):
    """The lecture's backward with every step replaceable, so that each mistake is one change."""
    out, B = forward(params, X), X.shape[0]
    delta_y = output_error(out, Y)
    delta_h = torch.mm(delta_y, params["Wy"]) * slope(out)
    grads = {"Wy": weight(delta_y, out["h"]), "by": bias(delta_y),
             "Wh": weight(delta_h, X), "bh": bias(delta_h)}
    return {k: average(v, B) for k, v in grads.items()}


def backward_matmul(params, X, Y):
    out, B = forward(params, X), X.shape[0]
    dy = (out["yhat"] - Y) / B
    dh = (dy @ params["Wy"]) * (1 - out["h"] ** 2)
    return {"Wy": dy.T @ out["h"], "by": dy.sum(0)[:, None], "Wh": dh.T @ X,
            "bh": dh.sum(0)[:, None]}


def backward_einsum(params, X, Y):
    out, B = forward(params, X), X.shape[0]
    dy = out["yhat"] - Y
    dh = torch.einsum("bj,ji->bi", dy, params["Wy"]) * (1 - out["h"] ** 2)
    return {"Wy": torch.einsum("bi,bj->ij", dy, out["h"]) / B,
            "by": torch.einsum("bi->i", dy)[:, None] / B,
            "Wh": torch.einsum("bi,bj->ij", dh, X) / B,
            "bh": torch.einsum("bi->i", dh)[:, None] / B}


def backward_per_sample(params, X, Y):
    totals = {k: torch.zeros_like(v) for k, v in params.items()}
    for x, y in zip(X, Y):
        x, y = x[:, None], y[:, None]
        h = torch.tanh(params["Wh"] @ x + params["bh"])
        yhat = torch.softmax(params["Wy"] @ h + params["by"], 0)
        dy = yhat - y
        dh = (params["Wy"].T @ dy) * (1 - h * h)
        for k, g in (("Wy", dy @ h.T), ("by", dy), ("Wh", dh @ x.T), ("bh", dh)):
            totals[k] += g
    return {k: v / len(X) for k, v in totals.items()}


def failure(grads, params, X, Y):
    """The AssertionError text of check_mlp_gradients (which must fail)."""
    with pytest.raises(AssertionError) as error:
        L.check_mlp_gradients(grads, params, X, Y, verbose=False)
    return str(error.value)


def likely(text, name):
    """The diagnosis printed under tensor ``name`` (None when there is none)."""
    lines = text.splitlines()
    row = next(i for i, line in enumerate(lines) if line.split()[:1] == [name])
    below = lines[row + 1] if row + 1 < len(lines) else ""
    if "-> likely: " not in below:
        return None
    wrapped = [below.split("-> likely: ", 1)[1]]
    for line in lines[row + 2:]:  # continuation lines are indented further than the arrow
        if not line.startswith(" " * (below.index("->") + 3)):
            break
        wrapped.append(line.strip())
    return " ".join(wrapped)


# --- correct implementations pass, with no diagnosis -------------------------------------

STYLES = {"lecture torch.mm": backward, "@": backward_matmul, "einsum": backward_einsum,
          "per-sample loop": backward_per_sample}


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_correct_backward_passes_in_every_style(style, dtype, capsys):
    params, X, Y = make_problem(dtype=dtype, seed=1)
    report = L.check_mlp_gradients(STYLES[style](params, X, Y), params, X, Y)
    assert report.passed and all(c.diagnosis is None for c in report.checks)
    out = capsys.readouterr().out
    assert "PASSED" in out and "likely" not in out


def test_correct_backward_passes_on_the_moons_with_two_classes():
    X, y = L.make_moons(64, noise=0.2, random_state=0)
    params, _, _ = make_problem(nx=2, nh=16, ny=2, seed=2)
    Y = L.one_hot(y, 2)
    assert L.check_mlp_gradients(backward(params, X, Y), params, X, Y, verbose=False).passed


# --- the catalogue: one mistake, one diagnosis --------------------------------------------

B = 8


def _nan_softmax(o, Y):
    exp = torch.exp(o["scores"] * 1e3)   # large scores overflow a naive softmax
    return exp / exp.sum(1, keepdim=True) - Y


CATALOGUE = {
    # name: (buggy gradients, {tensor: substring of its diagnosis})
    "not averaged": (
        lambda p, X, Y: backward(p, X, Y, average=lambda g, B: g),
        dict.fromkeys(["Wh", "bh", "Wy", "by"], f"{B}x too large, exactly the batch size: the "
                      "gradient was summed over the batch but not averaged")),
    "averaged twice": (
        lambda p, X, Y: backward(p, X, Y, output_error=lambda o, Y: (o["yhat"] - Y) / len(Y)),
        dict.fromkeys(["Wh", "bh", "Wy", "by"], f"{B}x too small, exactly the batch size: the "
                      "batch average was taken twice")),
    "multiplied by the batch size": (
        lambda p, X, Y: backward(p, X, Y, average=lambda g, B: g * B),
        dict.fromkeys(["Wh", "Wy"], "the batch size squared: multiplied by the batch size "
                      "where it should divide")),
    "factor 2": (
        lambda p, X, Y: backward(p, X, Y, output_error=lambda o, Y: 2 * (o["yhat"] - Y)),
        dict.fromkeys(["Wh", "bh", "Wy", "by"], "2x too large: a stray factor 2")),
    "factor 1/2 on one tensor": (
        lambda p, X, Y: {**backward(p, X, Y), "Wy": backward(p, X, Y)["Wy"] / 2},
        {"Wy": "2x too small: a stray factor 1/2"}),
    "y - yhat": (
        lambda p, X, Y: backward(p, X, Y, output_error=lambda o, Y: Y - o["yhat"]),
        dict.fromkeys(["Wh", "bh", "Wy", "by"], SIGN_OF_OUTPUT_ERROR)),
    "h^2 - 1": (
        lambda p, X, Y: backward(p, X, Y, slope=lambda o: o["h"] ** 2 - 1),
        dict.fromkeys(["Wh", "bh"], SIGN_IN_HIDDEN_LAYER)),
    "y - yhat, not averaged": (
        lambda p, X, Y: backward(p, X, Y, output_error=lambda o, Y: Y - o["yhat"],
                                 average=lambda g, B: g),
        dict.fromkeys(["Wy", "by"], f"sign flipped and {B}x too large (the batch size)")),
    "transposed weight": (
        lambda p, X, Y: backward(p, X, Y, weight=lambda d, a: torch.mm(a.T, d)),
        {"Wh": "transposed: you have a (2, 5) matrix, the parameter is (5, 2); use .T",
         "Wy": "transposed: you have a (5, 3) matrix, the parameter is (3, 5); use .T"}),
    "bias (n,)": (
        lambda p, X, Y: backward(p, X, Y, bias=lambda d: d.sum(0)),
        {"bh": "shape (5,) instead of (5, 1): a bias gradient keeps the parameter's shape",
         "by": "shape (3,) instead of (3, 1)"}),
    "bias (1, n)": (
        lambda p, X, Y: backward(p, X, Y, bias=lambda d: d.sum(0, keepdim=True)),
        {"bh": "shape (1, 5) instead of (5, 1): the summed bias gradient has the wrong "
               "orientation; transpose it (.T); the values themselves are right"}),
    "bias not summed": (
        lambda p, X, Y: backward(p, X, Y, bias=lambda d: d),
        {"bh": "shape (8, 5): one gradient per sample is still there; sum over the batch "
               "dimension (dim=0)",
         "by": "shape (8, 3): one gradient per sample"}),
    "bias not summed, transposed": (
        lambda p, X, Y: backward(p, X, Y, bias=lambda d: d.T),
        {"bh": "shape (5, 8): one gradient per sample is still there; sum over the batch "
               "dimension (dim=1)"}),
    "bias summed over the wrong axis": (
        lambda p, X, Y: backward(p, X, Y, bias=lambda d: d.sum(1, keepdim=True)),
        {"bh": "summed over the wrong axis, over the 5 units instead of over the 8 samples"}),
    "bias summed over the wrong axis, then transposed": (
        lambda p, X, Y: backward(p, X, Y, bias=lambda d: d.sum(1, keepdim=True).T),
        {"bh": "summed over the wrong axis"}),
    "tanh derivative missing": (
        lambda p, X, Y: backward(p, X, Y, slope=lambda o: 1.0),
        dict.fromkeys(["Wh", "bh"], "the tanh derivative is missing")),
    "tanh derivative as 1 - h": (
        lambda p, X, Y: backward(p, X, Y, slope=lambda o: 1 - o["h"]),
        dict.fromkeys(["Wh", "bh"], "the tanh derivative was written as (1 - h)")),
    "tanh derivative from h tilde": (
        lambda p, X, Y: backward(p, X, Y, slope=lambda o: 1 - o["h_tilde"] ** 2),
        dict.fromkeys(["Wh", "bh"], "computed from the pre-activation h̃")),
    "sigmoid derivative": (
        lambda p, X, Y: backward(p, X, Y, slope=lambda o: o["h"] * (1 - o["h"])),
        dict.fromkeys(["Wh", "bh"], "the sigmoid's derivative h(1 - h) was used")),
    "scores instead of probabilities": (
        lambda p, X, Y: backward(p, X, Y, output_error=lambda o, Y: o["scores"] - Y),
        dict.fromkeys(["Wh", "bh", "Wy", "by"], "used the scores ỹ instead of the probabilities")),
    "no - y": (
        lambda p, X, Y: backward(p, X, Y, output_error=lambda o, Y: o["yhat"]),
        dict.fromkeys(["Wh", "bh", "Wy", "by"], "lacks the '- y'")),
    "tanh derivative missing and not averaged": (
        lambda p, X, Y: backward(p, X, Y, slope=lambda o: 1.0, average=lambda g, B: g),
        {"Wh": "the tanh derivative is missing", "bh": "also not averaged (divide by the batch "
         "size 8)", "Wy": "not averaged"}),
    "tanh derivative missing and y - yhat": (
        lambda p, X, Y: backward(p, X, Y, slope=lambda o: 1.0,
                                 output_error=lambda o, Y: Y - o["yhat"]),
        {"Wh": "the tanh derivative is missing",
         "bh": "the sign is flipped too: δʸ was taken as y - ŷ", "Wy": SIGN_OF_OUTPUT_ERROR}),
    "unstable softmax": (
        lambda p, X, Y: backward(p, X, Y, output_error=_nan_softmax),
        dict.fromkeys(["Wh", "Wy"], "NaN or infinity: exp() of large scores overflows")),
}


@pytest.mark.parametrize("mistake", CATALOGUE)
def test_each_mistake_is_named_in_the_assertion_message(mistake):
    buggy, expected = CATALOGUE[mistake]
    params, X, Y = make_problem(B=B, seed=3)
    text = failure(buggy(params, X, Y), params, X, Y)
    for name, words in expected.items():
        found = likely(text, name)
        assert found is not None and words in found, (
            f"{mistake}: expected the diagnosis of {name} to contain {words!r}, got:\n{text}")


@pytest.mark.parametrize("mistake", ["tanh derivative missing", "tanh derivative as 1 - h",
                                     "h^2 - 1", "tanh derivative from h tilde"])
def test_hidden_layer_mistakes_leave_the_output_layer_passing(mistake):
    params, X, Y = make_problem(B=B, seed=4)
    text = failure(CATALOGUE[mistake][0](params, X, Y), params, X, Y)
    for name in ("Wy", "by"):
        row = next(line for line in text.splitlines() if line.split()[:1] == [name])
        assert row.rstrip().endswith("ok") and likely(text, name) is None, text


def test_the_table_has_one_line_per_tensor_and_an_indented_likely_line(capsys):
    params, X, Y = make_problem(B=B, seed=5)
    grads = backward(params, X, Y, average=lambda g, B: g)
    text = failure(grads, params, X, Y)
    with pytest.raises(AssertionError) as error:
        L.check_mlp_gradients(grads, params, X, Y)
    assert capsys.readouterr().out == ""       # a failing check shows its table once: as the error
    assert str(error.value) == text
    lines = text.strip().splitlines()
    assert lines[0] == "backward() against autograd: FAILED"
    rows = [line for line in lines if line.split()[:1] in (["Wh"], ["bh"], ["Wy"], ["by"])]
    assert len(rows) == 4 and all("WRONG: values differ beyond tolerance" in r for r in rows)
    hints = [line for line in lines if "-> likely: " in line]
    assert len(hints) == 4 and all(h.startswith("   ") and not h.split()[0].isalnum()
                                   for h in hints)


def test_square_transpose_is_named_even_though_the_shape_fits():
    params, X, Y = make_problem(nx=4, nh=4, seed=6)
    grads = backward(params, X, Y)
    text = failure({**grads, "Wh": grads["Wh"].T}, params, X, Y)
    assert "transposed (the matrix is square, so the shape did not show it): use .T on Wh" \
        in likely(text, "Wh")


def test_batch_size_messages_say_which_way_round():
    ref = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    too_big = diagnose("W", ref * 32, ref, batch_size=32)
    too_small = diagnose("W", ref / 32, ref, batch_size=32)
    assert too_big.startswith("32x too large") and "not averaged; divide it by the batch size" \
        in too_big
    assert too_small.startswith("32x too small") and "average was taken twice" in too_small
    assert "1024x too large, the batch size squared" in diagnose("W", ref * 1024, ref, batch_size=32)
    assert "three times" in diagnose("W", ref / 1024, ref, batch_size=32)


def test_any_constant_factor_is_named_on_a_tensor_with_enough_entries():
    ref = torch.randn(4, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert "off by a constant factor 3.7" in diagnose("W", 3.7 * ref, ref)
    assert diagnose("b", 3.7 * ref[:2, :1], ref[:2, :1]) is None   # two numbers: no guess
    assert diagnose("b", -ref[:1, :1], ref[:1, :1]).startswith("sign flipped")
    assert "sign flipped: every entry has the opposite sign" in diagnose("W", -ref, ref)


def test_a_single_scalar_is_named_only_for_meaningful_factors():
    ref = torch.tensor([[0.3]])
    assert "exactly the batch size" in diagnose("b", ref * 16, ref, batch_size=16)
    assert diagnose("b", ref * 1.37, ref, batch_size=16) is None


# --- autograd: accumulated .grad ----------------------------------------------------------


def autograd_after_steps(params, X, Y, steps, *, zero=False, reduction="mean"):
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    for _ in range(steps):
        if zero:
            for p in leaves.values():
                p.grad = None
        scores = torch.tanh(X @ leaves["Wh"].T + leaves["bh"].T) @ leaves["Wy"].T + leaves["by"].T
        torch.nn.functional.cross_entropy(scores, Y, reduction=reduction).backward()
    return {k: v.grad for k, v in leaves.items()}


@pytest.mark.parametrize("steps", [2, 3, 5])
def test_accumulated_grad_is_named_with_from_autograd(steps):
    params, X, Y = make_problem(B=B, seed=7)
    reference = L.mlp_reference_gradients(params, X, Y)
    assert L.check_gradients(autograd_after_steps(params, X, Y, steps, zero=True), reference,
                             from_autograd=True, verbose=False).passed
    with pytest.raises(AssertionError) as error:
        L.check_gradients(autograd_after_steps(params, X, Y, steps), reference,
                          from_autograd=True, verbose=False)
    text = str(error.value)
    for name in ("Wh", "bh", "Wy", "by"):
        assert (f"{steps}x the gradient of a single step: .grad adds up across backward() calls; "
                "call .grad.zero_() (or set .grad = None) after each step") in likely(text, name)


def test_factor_two_without_from_autograd_is_a_plain_constant():
    params, X, Y = make_problem(B=B, seed=7)
    reference = L.mlp_reference_gradients(params, X, Y)
    report = L.compare_gradients(autograd_after_steps(params, X, Y, 2), reference)
    assert all(c.diagnosis.startswith("2x too large: a stray factor 2") for c in report.checks)
    assert all("zero_" not in c.diagnosis for c in report.checks)


def test_summed_loss_under_autograd_names_the_reduction():
    params, X, Y = make_problem(B=B, seed=8)
    reference = L.mlp_reference_gradients(params, X, Y)
    report = L.compare_gradients(autograd_after_steps(params, X, Y, 1, reduction="sum"),
                                 reference, batch_size=B, from_autograd=True)
    assert all("the loss sums over the batch" in c.diagnosis for c in report.checks)
    assert all("reduction='mean'" in c.diagnosis for c in report.checks)
    report = L.compare_gradients({k: -v for k, v in reference.items()}, reference,
                                 from_autograd=True)
    assert all("the loss has the wrong sign" in c.diagnosis for c in report.checks)


# --- no false diagnosis ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_random_wrong_gradients_get_no_diagnosis(seed):
    g = torch.Generator().manual_seed(1000 + seed)
    ny = 2 + seed % 3
    params, X, Y = make_problem(B=4 + seed % 7, nh=3 + seed % 5, ny=ny, seed=seed)
    reference = L.mlp_reference_gradients(params, X, Y)
    kinds = [lambda r: torch.randn(r.shape, generator=g),                     # unrelated
             lambda r: r + 0.3 * r.abs().max() * torch.randn(r.shape, generator=g),  # noisy
             lambda r: r * (1 + torch.rand(r.shape, generator=g))]             # uneven scaling
    wrong = {k: kinds[seed % 3](r) for k, r in reference.items()}
    text = failure(wrong, params, X, Y)
    assert "likely" not in text, text
    assert "rel. error" in text and text.count("WRONG: values differ beyond tolerance") == 4


def test_random_values_get_no_guess_from_diagnose_directly():
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        ref = torch.randn(int(torch.randint(1, 6, (1,), generator=g)), 3, generator=g)
        value = torch.randn(ref.shape, generator=g)
        assert diagnose("W", value, ref, batch_size=int(torch.randint(2, 64, (1,), generator=g)),
                        from_autograd=bool(torch.rand(1, generator=g) < 0.5)) is None


def test_a_suspect_equal_to_the_reference_is_ignored():
    ref = torch.randn(3, 4, generator=torch.Generator().manual_seed(2))
    message = diagnose("W", 2 * ref, ref, suspects={"a mistake": ref.clone(),
                                                  "a scaled mistake": 2 * ref})
    assert message.startswith("2x too large")


def test_mistake_gradients_differ_from_the_reference_and_keep_shapes():
    params, X, Y = make_problem(B=B, seed=9)
    reference = L.mlp_reference_gradients(params, X, Y)
    mistakes = mlp_mistake_gradients(params, X, Y)
    assert set(mistakes) == {"Wh", "bh", "Wy", "by"}
    assert len(mistakes["Wh"]) == 6 and len(mistakes["Wy"]) == 2
    for name, by_description in mistakes.items():
        for description, grad in by_description.items():
            assert grad.shape == reference[name].shape, description
            assert scale_factor(grad, reference[name]) is None, description
            assert not torch.allclose(grad, reference[name]), description
    assert all(not p.requires_grad for p in params.values())


def test_check_mlp_gradients_names_a_missing_key():
    params, X, Y = make_problem(seed=10)
    with pytest.raises(KeyError, match=r"grads: expected keys .* missing \['by'\]"):
        L.check_mlp_gradients({k: v for k, v in params.items() if k != "by"}, params, X, Y)


def test_a_sign_flip_in_one_output_tensor_is_not_blamed_on_the_output_error():
    params, X, Y = make_problem(B=B, seed=11)
    grads = backward(params, X, Y)
    text = failure({**grads, "Wy": -grads["Wy"]}, params, X, Y)
    assert likely(text, "Wy").startswith("sign flipped: every entry has the opposite sign")
    assert "y - ŷ" in likely(text, "Wy") and SIGN_OF_OUTPUT_ERROR not in text


# --- the backward pass step by step: δʸ, ∂ℓ/∂h, δʰ, then the parameters ------------------------


def steps(params, X, Y, *, delta_y=lambda o, Y: o["yhat"] - Y, grad_h=lambda dy, p: dy @ p["Wy"],
          slope=lambda o: 1 - o["h"] ** 2, scale=1.0):
    """A backward that returns its steps too, every step replaceable; ``scale`` multiplies the
    δ's (1/B folded in), the parameter gradients then divide by B only if scale is 1."""
    out, B = forward(params, X), X.shape[0]
    dy = delta_y(out, Y) * scale
    gh = grad_h(dy, params)
    dh = gh * slope(out)
    average = B if scale == 1.0 else 1.0
    return {"delta_y": dy, "grad_h": gh, "delta_h": dh,
            "Wy": dy.T @ out["h"] / average, "by": dy.sum(0, keepdim=True).T / average,
            "Wh": dh.T @ X / average, "bh": dh.sum(0, keepdim=True).T / average}


def step_failure(grads, params, X, Y):
    with pytest.raises(AssertionError) as error:
        L.check_backward_steps(grads, params, X, Y, verbose=False)
    return error.value.report


def test_the_reference_steps_match_the_formulas_written_out():
    params, X, Y = make_problem(B=6, dtype=torch.float64, seed=12)
    reference = L.backward_reference(params, X, Y)
    mine = steps(params, X, Y)
    for key, value in mine.items():
        torch.testing.assert_close(reference[key], value)
    assert list(reference) == ["delta_y", "grad_h", "delta_h", "Wy", "by", "Wh", "bh"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", ["per sample", "1/B folded into delta_y"])
def test_right_steps_pass_with_one_row_per_step_and_parameter(dtype, scale, capsys):
    params, X, Y = make_problem(B=B, dtype=dtype, seed=13)
    grads = steps(params, X, Y, scale=1.0 if scale == "per sample" else 1 / B)
    report = L.check_backward_steps(grads, params, X, Y)
    assert report.passed and report.summary is None
    assert [c.name for c in report.checks] == ["delta_y", "grad_h", "delta_h", "Wy", "by", "Wh",
                                               "bh"]
    out = capsys.readouterr().out
    assert out.startswith("backward() step by step against autograd: PASSED")
    assert ("already include the 1/B" in out) == (scale != "per sample")


STEP_MISTAKES = {
    # name: (keyword arguments of steps(), first wrong step, the start of its summary)
    "tanh derivative missing": (dict(slope=lambda o: 1.0), "delta_h",
                                "∂ℓ/∂h is right but δʰ is wrong: the tanh derivative is missing"),
    "1 - h": (dict(slope=lambda o: 1 - o["h"]), "delta_h",
              "∂ℓ/∂h is right but δʰ is wrong: (1 - h) is not the derivative of tanh"),
    "1 - h tilde squared": (dict(slope=lambda o: 1 - o["h_tilde"] ** 2), "delta_h",
                            "∂ℓ/∂h is right but δʰ is wrong: the derivative was taken at the "
                            "pre-activation"),
    "sigmoid's derivative": (dict(slope=lambda o: o["h"] * (1 - o["h"])), "delta_h",
                             "∂ℓ/∂h is right but δʰ is wrong: h(1 - h) is the sigmoid's"),
    "h^2 - 1": (dict(slope=lambda o: o["h"] ** 2 - 1), "delta_h",
                "∂ℓ/∂h is right but δʰ is wrong: the sign is flipped: h² - 1 instead of 1 - h²"),
    "y - yhat": (dict(delta_y=lambda o, Y: Y - o["yhat"]), "delta_y",
                 "δʸ is wrong: the sign is reversed"),
    "scores": (dict(delta_y=lambda o, Y: o["scores"] - Y), "delta_y",
               "δʸ is wrong: it uses the scores ỹ instead of the probabilities"),
    "no - y": (dict(delta_y=lambda o, Y: o["yhat"]), "delta_y",
               "δʸ is wrong: the '- y' is missing"),
    "gradient before the softmax": (dict(delta_y=lambda o, Y: -Y / o["yhat"]), "delta_y",
                                    "δʸ is wrong: this is ∂ℓ/∂ŷ = -y/ŷ"),
    "dl/dh divided by B": (dict(grad_h=lambda dy, p: dy @ p["Wy"] / B), "grad_h",
                           f"δʸ is right but ∂ℓ/∂h is wrong: {B}x too small"),
}


@pytest.mark.parametrize("mistake", STEP_MISTAKES)
def test_the_first_wrong_step_is_named_with_its_likely_mistake(mistake):
    change, first, summary = STEP_MISTAKES[mistake]
    params, X, Y = make_problem(B=B, seed=14)
    report = step_failure(steps(params, X, Y, **change), params, X, Y)
    assert report.summary.startswith(f"first wrong step: {summary}"), report.summary
    wrong = [c.name for c in report.checks if not c.passed and c.name in ("delta_y", "grad_h",
                                                                          "delta_h")]
    assert wrong[0] == first
    for later in wrong[1:]:
        assert report[later].diagnosis.startswith("follows from the wrong"), str(report)


def test_a_dl_dh_that_already_holds_the_tanh_derivative_is_named_at_its_own_step():
    params, X, Y = make_problem(B=B, seed=15)
    grads = steps(params, X, Y)
    report = step_failure(dict(grads, grad_h=grads["delta_h"]), params, X, Y)
    assert report.summary.startswith("first wrong step: δʸ is right but ∂ℓ/∂h is wrong: it "
                                     "already includes the tanh derivative")
    assert report["delta_h"].passed


def test_a_transposed_product_is_named_when_the_shapes_hide_it():
    params, X, Y = make_problem(B=B, nh=4, ny=4, seed=16)
    report = step_failure(steps(params, X, Y, grad_h=lambda dy, p: dy @ p["Wy"].T), params, X, Y)
    assert "it multiplies δʸ by Wʸᵀ (the shapes fit only because ny = nh)" in report.summary


def test_missing_and_misshaped_steps_are_reported_and_the_parameters_still_checked():
    params, X, Y = make_problem(B=B, seed=17)
    grads = steps(params, X, Y)
    report = step_failure({k: v for k, v in grads.items() if k != "delta_y"}, params, X, Y)
    assert report.summary.startswith("first wrong step: δʸ is missing (add grads['delta_y']")
    assert all(report[k].passed for k in ("grad_h", "delta_h", "Wh", "bh", "Wy", "by"))
    report = step_failure(dict(grads, delta_h=grads["delta_h"].T), params, X, Y)
    assert report["delta_h"].diagnosis.startswith("transposed: shape (5, 8); keep one row per "
                                                  "sample, shape (8, 5)")


def test_right_steps_with_wrong_parameter_gradients_point_at_the_parameters():
    params, X, Y = make_problem(B=B, seed=18)
    grads = steps(params, X, Y)
    report = step_failure(dict(grads, Wh=grads["Wh"] * B, bh=grads["bh"][:, 0]), params, X, Y)
    assert report.summary.startswith("δʸ, ∂ℓ/∂h and δʰ are right: the mistake is in the "
                                     "parameter gradients")
    assert f"{B}x too large, exactly the batch size" in report["Wh"].diagnosis
    assert "shape (5,) instead of (5, 1)" in report["bh"].diagnosis


@pytest.mark.parametrize("seed", range(12))
def test_random_wrong_steps_get_no_guess(seed):
    g = torch.Generator().manual_seed(2000 + seed)
    params, X, Y = make_problem(B=4 + seed % 5, nh=3 + seed % 4, ny=2 + seed % 3, seed=seed)
    grads = L.backward_reference(params, X, Y)
    key = ("delta_y", "grad_h", "delta_h")[seed % 3]
    report = step_failure(dict(grads, **{key: torch.randn(grads[key].shape, generator=g)}),
                          params, X, Y)
    assert report[key].diagnosis is None
    assert "in no recognisable way" in report.summary


def test_a_failing_step_check_raises_with_the_summary_first_and_prints_nothing(capsys):
    params, X, Y = make_problem(B=B, seed=19)
    with pytest.raises(AssertionError) as error:
        L.check_backward_steps(steps(params, X, Y, slope=lambda o: 1.0), params, X, Y)
    lines = str(error.value).strip().splitlines()
    assert lines[0] == "backward() step by step against autograd: FAILED"
    assert lines[1].startswith("  first wrong step: ∂ℓ/∂h is right but δʰ is wrong")
    assert capsys.readouterr().out == ""
