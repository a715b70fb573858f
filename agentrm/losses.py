"""Reward-head losses: pure functions of score differences and labels, tested against hand-computed values.

Every pairwise loss takes `d = s_a - s_b` (the head's score of item a minus item b, per pair and dimension),
`y` in {+1 (a better), -1 (b better), 0 (tie)} and a boolean `mask` of which (pair, dimension) entries have a
label, and returns the per-entry loss (0 where masked). `masked_mean` reduces. Ties are part of every loss (they
are kept, not dropped as in DeScore); `TIE_POLICIES` lets a config drop them to reproduce DeScore.

    bt          non-tie: -log σ(y·d)                      tie: -½ log σ(d) - ½ log σ(-d)  (BCE with target ½)
    bt + ε      non-tie: -(1-ε) log σ(y·d) - ε log σ(-y·d) (label smoothing; tie unchanged)
    btt (k)     non-tie: -log σ(y·d - ln k)               tie: -log σ(d - ln k) - log σ(-d - ln k) - ln(k²-1)
                (Rao–Kupper, as in VideoAlign: P(a≻b) = σ(d - ln k), P(tie) = (k²-1)·σ(d - ln k)·σ(-d - ln k);
                the three probabilities sum to 1)
    margin (m)  non-tie: -log σ(y·d - m) (+ label smoothing ε on that logit)
                tie:     -log σ(d - m) - log σ(-d - m)     (SoliReward)
    ce (scale)  softmax cross-entropy over (s_a, s_b) with a learnable logit scale t (LightRFT "HPS" loss):
                non-tie: -log σ(t·y·d)                     tie: -½ log σ(t·d) - ½ log σ(-t·d)

Pointwise (one video, absolute labels in [lo, hi]): `bce_pointwise` (target (label - lo) / (hi - lo), SoliReward's
BCE on absolute quality) and `mse_pointwise` (same target, squared error on σ(s)).

`LogitScale` is the CLIP-style learnable temperature: exp(log_scale), initialised at 1/0.07 and clamped at 100.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

PairwiseLoss = Literal["bt", "btt", "margin_bt", "ce"]
PointwiseLoss = Literal["bce", "mse", "bt"]
TiePolicy = Literal["keep", "drop"]
TIE_POLICIES: tuple[str, ...] = ("keep", "drop")

# pairwise labels -> sign of s_video1 - s_video2 the label asks for
LABEL_SIGN: dict[str, int] = {"1": 1, "2": -1, "tie": 0}


def _check(d: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> None:
    if d.shape != y.shape or d.shape != mask.shape:
        raise ValueError(f"d {tuple(d.shape)}, y {tuple(y.shape)} and mask {tuple(mask.shape)} must have one shape")


def _select(mask: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
    # where() rather than multiply: a masked entry may hold inf/nan from an extreme d and must not poison the sum
    return torch.where(mask, loss, torch.zeros_like(loss))


def _soft_tie(logit: torch.Tensor) -> torch.Tensor:
    return -0.5 * (F.logsigmoid(logit) + F.logsigmoid(-logit))


def bt(d: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Bradley–Terry, optionally label-smoothed (ε = label_smoothing); a tie is a ½/½ soft label."""
    _check(d, y, mask)
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    yd = y * d
    win = -(1.0 - label_smoothing) * F.logsigmoid(yd) - label_smoothing * F.logsigmoid(-yd)
    return _select(mask, torch.where(y == 0, _soft_tie(d), win))


def btt(d: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, k: float = 5.0) -> torch.Tensor:
    """Bradley–Terry with ties (Rao–Kupper, parameter k > 1), VideoAlign's formulas."""
    _check(d, y, mask)
    if k <= 1.0:
        raise ValueError(f"the Rao-Kupper parameter k must be > 1, got {k}")
    ln_k = math.log(k)
    win = -F.logsigmoid(y * d - ln_k)
    tie = -F.logsigmoid(d - ln_k) - F.logsigmoid(-d - ln_k) - math.log(k * k - 1.0)
    return _select(mask, torch.where(y == 0, tie, win))


def margin_bt(
    d: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, margin: float = 3.0, label_smoothing: float = 0.0
) -> torch.Tensor:
    """SoliReward's BT with a margin m: a win counts only beyond m; a tie pulls d into (-m, m) from both sides."""
    _check(d, y, mask)
    z = y * d - margin
    win = -(1.0 - label_smoothing) * F.logsigmoid(z) - label_smoothing * F.logsigmoid(-z)
    tie = -F.logsigmoid(d - margin) - F.logsigmoid(-d - margin)
    return _select(mask, torch.where(y == 0, tie, win))


def ce(d: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """Softmax cross-entropy over (s_a, s_b) scaled by `scale` (LightRFT); a tie is the ½/½ target."""
    _check(d, y, mask)
    z = d * scale
    return _select(mask, torch.where(y == 0, _soft_tie(z), -F.logsigmoid(y * z)))


def pointwise_target(labels: torch.Tensor, score_range: tuple[float, float]) -> torch.Tensor:
    """Absolute labels in [lo, hi] -> targets in [0, 1]."""
    lo, hi = score_range
    return ((labels - lo) / (hi - lo)).clamp(0.0, 1.0)


def bce_pointwise(scores: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """BCE with logits of the raw score against a target in [0, 1] (per entry; 0 where masked)."""
    _check(scores, target, mask)
    return _select(mask, F.binary_cross_entropy_with_logits(scores, target, reduction="none"))


def mse_pointwise(scores: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Squared error between σ(score) and a target in [0, 1]."""
    _check(scores, target, mask)
    return _select(mask, (torch.sigmoid(scores) - target) ** 2)


def masked_mean(loss: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the unmasked entries; 0 (still attached to the graph) when none is unmasked, so a batch without
    labelled pairs adds nothing but keeps every parameter in the backward pass (DDP needs that)."""
    n = mask.sum()
    if int(n) == 0:
        return loss.sum() * 0.0
    return loss.sum() / n


def apply_tie_policy(y: torch.Tensor, mask: torch.Tensor, policy: TiePolicy) -> torch.Tensor:
    """The mask with tie entries removed when policy == "drop" (DeScore); unchanged for "keep"."""
    if policy not in TIE_POLICIES:
        raise ValueError(f"tie policy must be one of {TIE_POLICIES}, got {policy!r}")
    return mask & (y != 0) if policy == "drop" else mask


def pairwise_correct(d: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(correct, counted) per dimension over non-tie labelled pairs: the head prefers the labelled video.
    A zero difference counts as wrong."""
    _check(d, y, mask)
    counted = mask & (y != 0)
    correct = counted & (torch.sign(d) == y)
    return correct.sum(0), counted.sum(0)


class LogitScale(nn.Module):
    """Learnable positive scale exp(log_scale) (CLIP's temperature), clamped at `max_scale`."""

    def __init__(self, init: float = 1.0 / 0.07, max_scale: float = 100.0) -> None:
        super().__init__()
        if init <= 0 or max_scale < init:
            raise ValueError(f"need 0 < init <= max_scale, got init={init}, max_scale={max_scale}")
        self.log_scale = nn.Parameter(torch.tensor(math.log(init)))
        self.max_log = math.log(max_scale)

    def forward(self) -> torch.Tensor:
        return self.log_scale.clamp(max=self.max_log).exp()


def pairwise_loss(
    kind: PairwiseLoss,
    d: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor,
    *,
    k: float = 5.0,
    margin: float = 3.0,
    label_smoothing: float = 0.0,
    scale: torch.Tensor | float = 1.0,
) -> torch.Tensor:
    """Dispatch by name; per-entry losses (use `masked_mean`)."""
    if kind == "bt":
        return bt(d, y, mask, label_smoothing)
    if kind == "btt":
        return btt(d, y, mask, k)
    if kind == "margin_bt":
        return margin_bt(d, y, mask, margin, label_smoothing)
    if kind == "ce":
        return ce(d, y, mask, scale)
    raise ValueError(f"unknown pairwise loss {kind!r}; use bt, btt, margin_bt or ce")
