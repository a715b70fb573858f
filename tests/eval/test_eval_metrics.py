"""Metrics against hand-computed values, edge cases (all ties, no ties, missing answers) and a brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agentrm.eval import metrics as M

NAN = float("nan")


def test_accuracy_without_ties_by_hand() -> None:
    # pair:      right  wrong  wrong  right   (sign(m) vs label)
    m = [1.0, -2.0, 0.5, -0.1]
    y = ["1", "1", "2", "2"]
    assert M.accuracy_without_ties(m, y) == 0.5


def test_zero_and_missing_margins_are_wrong_and_ties_dropped() -> None:
    m = [0.0, NAN, 3.0, 1.0]
    y = ["1", "2", "1", "tie"]
    assert M.correct_without_ties(m, y).tolist() == [False, False, True]  # the tie pair is dropped
    assert M.accuracy_without_ties(m, y) == pytest.approx(1 / 3)


def test_all_ties() -> None:
    m = [0.0, 0.2, 0.5]
    y = ["tie", "tie", "tie"]
    assert math.isnan(M.accuracy_without_ties(m, y))
    assert M.accuracy_with_ties(m, y) == (1.0, 0.5, True)  # every pair a tie needs eps = max |m|
    assert M.accuracy_with_ties([0.0, 0.0], ["tie", "tie"]) == (1.0, 0.0, True)
    assert M.accuracy_with_ties(m, y, eps=0.2) == (pytest.approx(2 / 3), 0.2, False)


def test_no_ties_tunes_to_the_smallest_eps() -> None:
    m = [1.0, -1.0, 2.0]
    y = ["1", "2", "2"]
    acc, eps, tuned = M.accuracy_with_ties(m, y)
    assert (acc, eps, tuned) == (pytest.approx(2 / 3), 0.0, True)  # any eps > 0 only loses
    assert M.accuracy_without_ties(m, y) == pytest.approx(2 / 3)


def test_ties_matter_sweep_by_hand() -> None:
    m = [0.1, -0.3, 0.6, -0.8, 0.05, 0.4]
    y = ["tie", "2", "1", "2", "tie", "tie"]
    # eps:  0 -> 3/6, .05 -> 4/6, .1 -> 5/6, .3 -> 4/6, .4 -> 5/6, .6 -> 4/6, .8 -> 3/6
    acc, eps, tuned = M.accuracy_with_ties(m, y)
    assert acc == pytest.approx(5 / 6) and eps == 0.1 and tuned  # .1 and .4 tie: the smallest wins
    assert M.accuracy_with_ties(m, y, eps=0.4)[:2] == (pytest.approx(5 / 6), 0.4)
    assert M.accuracy_with_ties(m, y, eps=0.3)[0] == pytest.approx(4 / 6)
    assert M.accuracy_with_ties(m, y, eps=0.0)[0] == pytest.approx(3 / 6)
    # a pair without a score is wrong whatever the threshold, even when humans tied it
    acc, eps, _ = M.accuracy_with_ties([*m, NAN], [*y, "tie"])
    assert acc == pytest.approx(5 / 7) and eps == 0.1


def _brute_force(m: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Ties Matter Alg. 1 written plainly: try eps = 0 and every |m|, keep the first best."""
    best, best_eps = -1.0, 0.0
    for eps in sorted({0.0, *np.abs(m[np.isfinite(m)]).tolist()}):
        ok = 0
        for mi, yi in zip(m, y, strict=True):
            if not np.isfinite(mi):
                continue
            pred = 0 if abs(mi) <= eps else (1 if mi > 0 else -1)
            ok += pred == yi
        if ok / len(m) > best:
            best, best_eps = ok / len(m), eps
    return best, best_eps


@pytest.mark.parametrize("seed", range(5))
def test_sweep_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 60
    y = rng.choice([1, -1, 0], size=n, p=[0.4, 0.4, 0.2]).astype(np.int8)
    m = np.round(rng.normal(size=n) + 0.8 * y, 1)  # rounding makes repeated |m| values
    m[rng.choice(n, 3, replace=False)] = np.nan
    acc, eps, tuned = M.accuracy_with_ties(m, y)
    assert (acc, eps) == pytest.approx(_brute_force(m, y)) and tuned


def test_verdict_accuracy_and_missing() -> None:
    v = ["1", "2", "tie", None]
    y = ["1", "1", "tie", "2"]
    assert M.verdict_accuracy(v, y) == pytest.approx(1 / 3)  # non-tie pairs 1, 2, 4: right, wrong, missing
    assert M.verdict_accuracy(v, y, ties=True) == 0.5
    assert M.verdict_correct(["tie"], ["1"], ties=False).tolist() == [False]  # a tie verdict on a preference
    assert math.isnan(M.verdict_accuracy(["1"], ["tie"]))


def test_agreement() -> None:
    v = ["1", "2", "tie", None]
    m = [0.5, 0.2, 0.0, 1.0]
    assert M.agreement(v, m) == (pytest.approx(2 / 3), 3)  # the missing verdict is not compared
    assert M.agreement(v, m, eps=0.3) == (pytest.approx(2 / 3), 3)  # .2 becomes a tie: still wrong vs '2'
    assert M.agreement(["1"], [NAN]) == (pytest.approx(NAN, nan_ok=True), 0)


def test_encode_rejects_unknown_values() -> None:
    assert M.encode(["1", "2", "tie", None]).tolist() == [1, -1, 0, M.NO_ANSWER]
    assert M.encode(np.array([1, -1, 0])).tolist() == [1, -1, 0]
    with pytest.raises(ValueError, match="unknown preference 'A'"):
        M.encode(["A"])
    with pytest.raises(ValueError, match="unknown preference code 2"):
        M.encode(np.array([2]))
    with pytest.raises(ValueError, match="missing"):
        M.accuracy_without_ties([1.0], [None])  # type: ignore[arg-type]


def test_bootstrap_ci() -> None:
    flags = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1] * 10, dtype=float)
    lo, hi = M.bootstrap_ci(flags, n_boot=500, seed=0)
    assert lo < flags.mean() < hi and lo > 0.5 and hi < 0.85
    assert M.bootstrap_ci(flags, n_boot=500, seed=0) == (lo, hi)  # fixed seed: reproducible
    assert M.bootstrap_ci(np.ones(20), n_boot=200) == (1.0, 1.0)
    assert all(math.isnan(x) for x in M.bootstrap_ci([]))
    wide = M.bootstrap_ci(flags[:10], n_boot=500)
    assert wide[1] - wide[0] > hi - lo  # fewer items, wider interval


def test_bootstrap_with_ties() -> None:
    rng = np.random.default_rng(1)
    y = rng.choice([1, -1, 0], size=200).astype(np.int8)
    m = rng.normal(size=200) + y
    acc, eps, _ = M.accuracy_with_ties(m, y)
    lo, hi = M.bootstrap_ci_with_ties(m, y, n_boot=300)
    assert lo <= acc <= hi + 0.02 and hi - lo < 0.2
    # a fixed eps is the CI of the correctness flags
    fixed = M.bootstrap_ci_with_ties(m, y, eps=eps, n_boot=300)
    assert fixed == M.bootstrap_ci(M.correct_with_ties(m, y, eps), n_boot=300)
    # missing margins pull the whole interval down
    m2 = m.copy()
    m2[:50] = np.nan
    assert M.bootstrap_ci_with_ties(m2, y, n_boot=300)[1] < lo


def test_pointwise_correlations() -> None:
    assert M.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert M.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert M.spearman([1, 2, 2, 3], [1, 2, 2, 3]) == pytest.approx(1.0)  # tied ranks
    assert math.isnan(M.pearson([1, NAN], [2, 3]))  # fewer than 2 finite pairs
