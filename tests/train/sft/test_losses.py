"""Head losses against values worked out by hand (σ(x) = 1/(1+e^-x), so -log σ(x) = log(1+e^-x)), ties included."""

from __future__ import annotations

import math

import pytest
import torch

from agentrm.losses import (
    LogitScale,
    apply_tie_policy,
    bce_pointwise,
    bt,
    btt,
    ce,
    margin_bt,
    masked_mean,
    mse_pointwise,
    pairwise_correct,
    pairwise_loss,
    pointwise_target,
)


def nls(x: float) -> float:
    """-log σ(x), by hand."""
    return math.log1p(math.exp(-x))


def t(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


D = t([1.0, -0.5, 0.0, 2.0])
Y = t([1.0, 1.0, 0.0, -1.0])  # video 1 better, video 1 better, tie, video 2 better
M = torch.ones_like(D, dtype=torch.bool)


def test_bt_values_with_a_tie() -> None:
    got = bt(D, Y, M)[0].tolist()
    # log(1+e^-1), log(1+e^0.5), tie at d=0 is the ½/½ BCE = log 2, label "2" with d=2 is log(1+e^2)
    assert got == pytest.approx([0.3132617, 0.9740770, math.log(2), 2.1269280], abs=1e-6)
    tie = bt(t([1.5]), t([0.0]), torch.tensor([[True]]))[0, 0].item()
    assert tie == pytest.approx(0.5 * (nls(1.5) + nls(-1.5)))


def test_bt_label_smoothing() -> None:
    got = bt(t([1.0]), t([1.0]), torch.tensor([[True]]), label_smoothing=0.1).item()
    assert got == pytest.approx(0.9 * 0.3132617 + 0.1 * 1.3132617, abs=1e-6)
    with pytest.raises(ValueError, match="label_smoothing"):
        bt(D, Y, M, label_smoothing=0.5)


def test_btt_rao_kupper_values_and_probabilities_sum_to_one() -> None:
    k = 5.0
    got = btt(D, Y, M, k)[0].tolist()
    ln5 = math.log(5)
    assert got[0] == pytest.approx(nls(1.0 - ln5)) and got[0] == pytest.approx(1.0435918, abs=1e-6)
    assert got[1] == pytest.approx(nls(-0.5 - ln5))
    # tie at d = 0: -2 log σ(-ln 5) - ln 24 = 2 ln(1 + 5) - ln 24 = ln(36/24)
    assert got[2] == pytest.approx(math.log(36 / 24))
    assert got[3] == pytest.approx(nls(-2.0 - ln5))
    for d in (-3.0, -0.2, 0.0, 0.7, 4.0):
        one = torch.tensor([[True]])
        p_win = math.exp(-btt(t([d]), t([1.0]), one, k).item())
        p_lose = math.exp(-btt(t([d]), t([-1.0]), one, k).item())
        p_tie = math.exp(-btt(t([d]), t([0.0]), one, k).item())
        assert p_win + p_lose + p_tie == pytest.approx(1.0)
    with pytest.raises(ValueError, match="k must be > 1"):
        btt(D, Y, M, 1.0)


def test_margin_bt_values() -> None:
    one = torch.tensor([[True]])
    assert margin_bt(t([1.0]), t([1.0]), one, 3.0).item() == pytest.approx(2.1269280, abs=1e-6)  # log(1+e^2)
    tie = margin_bt(t([0.5]), t([0.0]), one, 3.0).item()
    assert tie == pytest.approx(math.log1p(math.exp(2.5)) + math.log1p(math.exp(3.5)))
    smoothed = margin_bt(t([4.0]), t([-1.0]), one, 1.0, label_smoothing=0.2).item()
    assert smoothed == pytest.approx(0.8 * nls(-5.0) + 0.2 * nls(5.0))


def test_ce_with_scale_values_and_gradient_to_the_scale() -> None:
    one = torch.tensor([[True]])
    assert ce(t([1.0]), t([-1.0]), one, 2.0).item() == pytest.approx(2.1269280, abs=1e-6)
    assert ce(t([1.0]), t([0.0]), one, 2.0).item() == pytest.approx(0.5 * (0.1269280 + 2.1269280), abs=1e-6)
    scale = LogitScale()
    assert float(scale().detach()) == pytest.approx(1 / 0.07, rel=1e-5)
    loss = ce(torch.tensor([[0.1]]), torch.tensor([[1.0]]), one, scale())
    loss.sum().backward()
    assert scale.log_scale.grad is not None and scale.log_scale.grad.item() < 0  # a larger scale lowers a right loss
    with torch.no_grad():
        scale.log_scale.fill_(10.0)
    assert float(scale().detach()) == pytest.approx(100.0)  # clamped like CLIP


def test_pointwise_bce_and_mse() -> None:
    target = pointwise_target(torch.tensor([[4.0, 5.0, 1.0]]), (1, 5))
    assert target.tolist() == [[0.75, 1.0, 0.0]]
    m = torch.tensor([[True, True, False]])
    got = bce_pointwise(torch.tensor([[0.0, 2.0, 9.0]]), target, m)[0].tolist()
    # BCE(0, .75) = log 2; BCE(2, 1) = log(1+e^-2); masked -> 0
    assert got == pytest.approx([math.log(2), 0.1269280, 0.0], abs=1e-6)
    mse = mse_pointwise(torch.tensor([[0.0, 0.0, 0.0]]), target, m)[0].tolist()
    assert mse == pytest.approx([0.0625, 0.25, 0.0])


def test_masking_ties_policy_and_mean() -> None:
    d = t([1.0, 1e6, 0.0])
    y = t([1.0, -1.0, 0.0])
    m = torch.tensor([[True, False, True]])
    loss = bt(d, y, m)
    assert loss[0, 1].item() == 0.0 and torch.isfinite(loss).all()
    assert masked_mean(loss, m).item() == pytest.approx((0.3132617 + math.log(2)) / 2, abs=1e-6)
    dropped = apply_tie_policy(y, m, "drop")
    assert dropped.tolist() == [[True, False, False]]  # DeScore: ties out
    assert apply_tie_policy(y, m, "keep").tolist() == m.tolist()
    empty = masked_mean(loss, torch.zeros_like(m))
    assert empty.item() == 0.0


def test_dispatch_and_accuracy() -> None:
    assert torch.equal(pairwise_loss("btt", D, Y, M, k=5.0), btt(D, Y, M, 5.0))
    assert torch.equal(pairwise_loss("margin_bt", D, Y, M, margin=2.0), margin_bt(D, Y, M, 2.0))
    with pytest.raises(ValueError, match="unknown pairwise loss"):
        pairwise_loss("hinge", D, Y, M)  # type: ignore[arg-type]
    correct, counted = pairwise_correct(t([1.0, -0.5, 0.3, 0.0], [2.0, 1.0, 0.0, -1.0]),
                                        t([1.0, 1.0, 0.0, 1.0], [1.0, -1.0, 1.0, -1.0]),
                                        torch.ones(2, 4, dtype=torch.bool))
    assert correct.tolist() == [2, 0, 0, 1] and counted.tolist() == [2, 2, 1, 2]  # ties not counted; 0 is wrong


def test_bt_gradient_at_zero() -> None:
    d = torch.zeros(1, 1, dtype=torch.float64, requires_grad=True)
    bt(d, t([1.0]), torch.tensor([[True]])).sum().backward()
    assert d.grad is not None and d.grad.item() == pytest.approx(-0.5)
