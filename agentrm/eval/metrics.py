"""Preference metrics of a reward model, as pure functions over numpy arrays.

Why these and not sklearn's: the protocol of VideoAlign / VideoGen-RewardBench (see ANCHORS.md) needs two
accuracies that no library ships, and the choices inside them change reported numbers by points:

- **accuracy without ties**: pairs the humans tied are dropped; a pair is right when the model's preference
  has the human's sign. A zero margin or a missing score is *wrong* (VideoAlign counts `m == 0` as
  discordant too).
- **accuracy with ties** ("Ties Matter", arXiv 2305.14324, Algorithm 1): predict a tie when |m| <= eps,
  otherwise the sign of m; 3-class accuracy over every pair. When eps is not given it is tuned: the
  candidates are 0 and every observed |m|, and the best accuracy wins; among equally good candidates the
  **smallest** eps is taken (the least tie-happy threshold, deterministic). Tuning on the test set flatters
  the number, so a fixed eps (chosen on a dev split) can be passed instead; the function says which was
  used.

Codes: a label, verdict or prediction is +1 (video 1 better), -1 (video 2 better), 0 (tie) — VideoAlign's
A=1, B=-1, same=0. `NO_ANSWER` marks a missing verdict; a missing margin is NaN. Missing answers are never
dropped: they count as wrong in every accuracy and callers report how many there were.

Bootstrap CIs resample items with a fixed seed (numpy PCG64), `n_boot` = 1000 by default, percentile
intervals. The tuned-eps accuracy is re-tuned inside every resample, so its interval includes the optimism
of tuning.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

NO_ANSWER = 9
_NAMES = {"1": 1, "2": -1, "tie": 0}
_CODES = {1: "1", -1: "2", 0: "tie", NO_ANSWER: None}
_FAST: dict[str | None, int] = {"1": 1, "2": -1, "tie": 0, None: NO_ANSWER}

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
CodeArray = NDArray[np.int8]


def encode(values: Iterable[str | None] | ArrayLike, allow_missing: bool = True) -> CodeArray:
    """'1' / '2' / 'tie' (None = no answer) -> codes +1 / -1 / 0 (NO_ANSWER); int arrays are codes."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        codes = values.astype(np.int8).reshape(-1)
        bad = ~np.isin(codes, [1, -1, 0, NO_ANSWER])
        if bad.any():
            raise ValueError(f"unknown preference code {codes[bad][0]}: codes are 1 / -1 / 0 (or NO_ANSWER)")
        if not allow_missing and (codes == NO_ANSWER).any():
            raise ValueError("labels must not contain NO_ANSWER")
        return codes
    seq: list[Any] = values.reshape(-1).tolist() if isinstance(values, np.ndarray) else list(values)  # type: ignore[arg-type]
    try:
        codes = np.fromiter((_FAST[v] for v in seq), dtype=np.int8, count=len(seq))
        if allow_missing or not (codes == NO_ANSWER).any():
            return codes
    except (KeyError, TypeError):
        pass  # fall through to the loop below, which names the bad value
    arr = np.asarray(seq, dtype=object).reshape(-1)
    out = np.empty(arr.shape, dtype=np.int8)
    for i, v in enumerate(arr.tolist()):
        if v is None:
            if not allow_missing:
                raise ValueError("a label is missing (None); labels must be '1', '2' or 'tie'")
            out[i] = NO_ANSWER
        elif isinstance(v, str):
            if v not in _NAMES:
                raise ValueError(f"unknown preference {v!r}: use '1', '2' or 'tie'")
            out[i] = _NAMES[v]
        elif isinstance(v, int | np.integer) and int(v) in _CODES:
            out[i] = int(v)
        else:
            raise ValueError(f"unknown preference {v!r}: use '1', '2', 'tie' or the codes 1 / -1 / 0")
    if not allow_missing and (out == NO_ANSWER).any():
        raise ValueError("labels must not contain NO_ANSWER")
    return out


def decode(code: int) -> str | None:
    return _CODES[int(code)]


def _margins(margins: ArrayLike) -> FloatArray:
    m = np.asarray(margins, dtype=np.float64).reshape(-1)
    return m


def _labels(labels: ArrayLike | Sequence[str]) -> CodeArray:
    return encode(labels, allow_missing=False)


def margin_predictions(margins: ArrayLike, eps: float = 0.0) -> CodeArray:
    """3-way prediction from margins: tie when |m| <= eps, else the sign; NaN -> NO_ANSWER."""
    m = _margins(margins)
    out = np.full(m.shape, NO_ANSWER, dtype=np.int8)
    ok = np.isfinite(m)
    out[ok] = np.where(np.abs(m[ok]) <= eps, 0, np.sign(m[ok])).astype(np.int8)
    return out


# ---- accuracy without ties ----


def correct_without_ties(margins: ArrayLike, labels: ArrayLike | Sequence[str]) -> BoolArray:
    """Per non-tie pair: does sign(m) equal the label? Zero and NaN margins are wrong; tie labels dropped."""
    m, y = _margins(margins), _labels(labels)
    keep = y != 0
    with np.errstate(invalid="ignore"):
        return np.asarray(np.sign(m[keep]) == y[keep], dtype=bool)


def accuracy_without_ties(margins: ArrayLike, labels: ArrayLike | Sequence[str]) -> float:
    """Accuracy over the pairs humans did not tie (NaN when every pair is a tie)."""
    c = correct_without_ties(margins, labels)
    return float(c.mean()) if c.size else float("nan")


# ---- accuracy with ties (Ties Matter, Algorithm 1) ----


def correct_with_ties(margins: ArrayLike, labels: ArrayLike | Sequence[str], eps: float) -> BoolArray:
    """Per pair, 3-class: tie predicted when |m| <= eps. NaN margins are wrong whatever the label."""
    pred = margin_predictions(margins, eps)
    return np.asarray(pred == _labels(labels), dtype=bool)


def _sweep_parts(m: FloatArray, y: CodeArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Sorted |m| of the scored pairs, their tie / correct-non-tie indicators, and the candidate epsilons."""
    ok = np.isfinite(m)
    a = np.abs(m[ok])
    order = np.argsort(a, kind="stable")
    a = a[order]
    tie = (y[ok] == 0)[order].astype(np.float64)
    ntc = ((y[ok] != 0) & (np.sign(m[ok]) == y[ok]))[order].astype(np.float64)
    cand = np.unique(np.concatenate([[0.0], a]))
    return a, tie, ntc, cand


def accuracy_with_ties(
    margins: ArrayLike, labels: ArrayLike | Sequence[str], eps: float | None = None
) -> tuple[float, float, bool]:
    """(3-class accuracy, eps used, tuned?). eps=None tunes eps on these pairs (candidates 0 and every |m|;
    the smallest eps among the best). NaN margins are wrong. NaN accuracy when there are no pairs."""
    m, y = _margins(margins), _labels(labels)
    if m.shape != y.shape:
        raise ValueError(f"margins ({m.size}) and labels ({y.size}) differ in length")
    n = m.size
    if eps is not None:
        c = correct_with_ties(m, y, eps)
        return (float(c.mean()) if n else float("nan")), float(eps), False
    if n == 0:
        return float("nan"), 0.0, True
    a, tie, ntc, cand = _sweep_parts(m, y)
    k = np.searchsorted(a, cand, side="right")  # pairs with |m| <= eps
    ct = np.concatenate([[0.0], np.cumsum(tie)])
    cn = np.concatenate([[0.0], np.cumsum(ntc)])
    acc = (ct[k] + cn[-1] - cn[k]) / n
    best = int(np.argmax(acc))  # first maximum = smallest eps, candidates being sorted
    return float(acc[best]), float(cand[best]), True


# ---- verdicts ----


def verdict_correct(
    verdicts: ArrayLike | Sequence[str | None], labels: ArrayLike | Sequence[str], ties: bool
) -> BoolArray:
    """Per pair: verdict == label. ties=False drops pairs humans tied (a 'tie' verdict on the rest is wrong).
    A missing verdict (None / NO_ANSWER) is wrong."""
    v, y = encode(verdicts), _labels(labels)
    if v.shape != y.shape:
        raise ValueError(f"verdicts ({v.size}) and labels ({y.size}) differ in length")
    keep = np.ones(y.shape, bool) if ties else y != 0
    return np.asarray(v[keep] == y[keep], dtype=bool)


def verdict_accuracy(
    verdicts: ArrayLike | Sequence[str | None], labels: ArrayLike | Sequence[str], ties: bool = False
) -> float:
    c = verdict_correct(verdicts, labels, ties)
    return float(c.mean()) if c.size else float("nan")


def agreement_flags(
    verdicts: ArrayLike | Sequence[str | None], margins: ArrayLike, eps: float = 0.0
) -> BoolArray:
    """Over episodes with a verdict and a margin: does the verdict equal the margin's 3-way prediction?"""
    v = encode(verdicts)
    p = margin_predictions(margins, eps)
    both = (v != NO_ANSWER) & (p != NO_ANSWER)
    return np.asarray(v[both] == p[both], dtype=bool)


def agreement(
    verdicts: ArrayLike | Sequence[str | None], margins: ArrayLike, eps: float = 0.0
) -> tuple[float, int]:
    """(fraction of agreeing episodes, number of episodes that have both)."""
    f = agreement_flags(verdicts, margins, eps)
    return (float(f.mean()) if f.size else float("nan")), int(f.size)


# ---- pointwise ----


def _rank(x: FloatArray) -> FloatArray:
    """Average ranks (ties share the mean rank), as scipy.stats.rankdata(method='average')."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.arange(1, x.size + 1, dtype=np.float64)
    _, inv = np.unique(x, return_inverse=True)
    sums = np.bincount(inv, weights=ranks)
    counts = np.bincount(inv)
    return np.asarray(sums[inv] / counts[inv], dtype=np.float64)


def pearson(x: ArrayLike, y: ArrayLike) -> float:
    """Pearson r over pairs where both are finite; NaN when fewer than 2 pairs or a constant side."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    return pearson(_rank(a[ok]), _rank(b[ok]))


# ---- bootstrap ----


def _resample_counts(
    n: int, n_boot: int, seed: int, chunk: int = 64, dtype: type[np.floating[Any]] = np.float64
) -> Iterator[NDArray[Any]]:
    """Chunks of bootstrap weight rows: row b counts how often each of the n items is drawn in resample b."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_boot:
        c = min(chunk, n_boot - done)
        idx = rng.integers(0, n, size=(c, n)) + (np.arange(c)[:, None] * n)
        yield np.bincount(idx.ravel(), minlength=c * n).reshape(c, n).astype(dtype)
        done += c


def _interval(stats: FloatArray, alpha: float) -> tuple[float, float]:
    lo, hi = np.percentile(stats, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def bootstrap_ci(
    values: ArrayLike, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float]:
    """Percentile CI of the mean of `values` (e.g. 0/1 correctness, or paired differences of two runs)."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0:
        return float("nan"), float("nan")
    levels, counts = np.unique(x, return_counts=True)
    if levels.size <= 16:
        # Few distinct values (flags, paired differences): how often each is drawn in a resample is exactly
        # Multinomial(n, counts / n): draw those counts instead of n indices (same distribution, O(levels)).
        draws = np.random.default_rng(seed).multinomial(x.size, counts / x.size, size=n_boot)
        return _interval(draws @ levels / x.size, alpha)
    stats = np.concatenate([w @ x / x.size for w in _resample_counts(x.size, n_boot, seed)])
    return _interval(stats, alpha)


def bootstrap_ci_with_ties(
    margins: ArrayLike,
    labels: ArrayLike | Sequence[str],
    eps: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """CI of `accuracy_with_ties`. With eps=None every resample re-tunes eps (the interval carries the
    tuning); with a fixed eps it is the CI of a mean of correctness flags."""
    m, y = _margins(margins), _labels(labels)
    if eps is not None:
        return bootstrap_ci(correct_with_ties(m, y, eps), n_boot, seed, alpha)
    n = m.size
    if n == 0:
        return float("nan"), float("nan")
    a, tie, ntc, cand = _sweep_parts(m, y)
    k = np.searchsorted(a, cand, side="right")  # per candidate: pairs with |m| <= eps, in sorted order
    # Items are exchangeable, so resample positions of the sorted order directly; unscored pairs sit after the
    # scored ones and are wrong whatever eps. acc(eps_k) = (#ntc + sum_{pos < k} w * (tie - ntc)) / n.
    # float32 is exact here: counts and their partial sums stay below 2**24 for any benchmark size we meet.
    gain = np.zeros(n, dtype=np.float32)
    gain[: a.size] = tie - ntc
    ntc_full = np.zeros(n, dtype=np.float32)
    ntc_full[: a.size] = ntc
    ends = k[k > 0] - 1  # last sorted position covered by each candidate; k == 0 is the empty prefix (gain 0)
    stats = []
    for w in _resample_counts(n, n_boot, seed, dtype=np.float32):
        cs = np.cumsum(w * gain, axis=1)
        best = cs[:, ends].max(axis=1) if ends.size else np.zeros(w.shape[0], dtype=np.float32)
        if ends.size < k.size:
            best = np.maximum(best, 0.0)
        # The full sample's candidates give the same maximum as the resample's own: accuracy is a step
        # function of eps that only changes at |m| values present in the resample.
        stats.append((w @ ntc_full + best).astype(np.float64) / n)
    return _interval(np.concatenate(stats), alpha)


def summarize(values: Any) -> dict[str, float]:
    """Mean / median / max of a numeric sequence (empty -> NaNs), for episode statistics."""
    x = np.asarray(list(values), dtype=np.float64)
    if x.size == 0:
        return {"mean": float("nan"), "median": float("nan"), "max": float("nan")}
    return {"mean": float(x.mean()), "median": float(np.median(x)), "max": float(x.max())}
