"""PNG plots of an evaluation report (matplotlib, Agg backend: no display needed, safe in CI and on servers).

One file per question a reader asks of a run:
- `reward_hist.png` — do head rewards separate the chosen video from the rejected one? (per dimension,
  pairs humans did not tie; runs with rewards only)
- `accuracy_by_length.png` — does accuracy hold up on long videos? (overall dimension, primary source)
- `episode_stats.png` — how many frames and turns do episodes use? (trace runs only)
- `accuracy_vs_frames.png` — does looking at more frames go with being right?
- `run_deltas.png` — each run minus the first (baseline), per dimension, with paired bootstrap 95% CIs.

A plot with nothing to show is not written (and not listed in the report).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agentrm.eval.runs import Run
from agentrm.eval.schema import BucketReport, EvalReport, Metric

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def _reward_hist(report: EvalReport, runs: Sequence[Run], out: Path) -> Path | None:
    rows = []
    for run in runs:
        if not run.has_rewards:
            continue
        for dim in run.dims():
            chosen, rejected = [], []
            for e in run.episodes:
                lab = e.labels.get(dim)
                m = e.margin(dim)
                if e.mode != "pairwise" or lab not in ("1", "2") or not np.isfinite(m) or e.rewards is None:
                    continue
                c, r = (0, 1) if lab == "1" else (1, 0)
                chosen.append(e.rewards[c][dim])
                rejected.append(e.rewards[r][dim])
            if chosen:
                rows.append((run.name, dim, chosen, rejected))
    if not rows:
        return None
    plt = _pyplot()
    ncols = min(4, len(rows))
    nrows = (len(rows) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3 * nrows), squeeze=False)
    for ax, (name, dim, chosen, rejected) in zip(axes.flat, rows, strict=False):
        bins = np.histogram_bin_edges(np.concatenate([chosen, rejected]), bins=20)
        ax.hist(chosen, bins=bins, alpha=0.6, label="chosen")
        ax.hist(rejected, bins=bins, alpha=0.6, label="rejected")
        ax.set_title(f"{name} · {dim} (n={len(chosen)})", fontsize=9)
        ax.set_xlabel("reward")
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(rows) :]:
        ax.axis("off")
    return _save(fig, out / "reward_hist.png")


def _err(m: Metric | None) -> tuple[float, float]:
    """(below, above) error-bar lengths of a metric's CI; zero without one."""
    if m is None or m.ci is None or m.value is None:
        return 0.0, 0.0
    return max(0.0, m.value - m.ci[0]), max(0.0, m.ci[1] - m.value)


def _bucket_bars(
    report: EvalReport, attr: str, title: str, xlabel: str, path: Path, line: bool = False
) -> Path | None:
    series: list[tuple[str, list[BucketReport]]] = [
        (r.name, getattr(r, attr)) for r in report.runs if any(b.accuracy.n for b in getattr(r, attr))
    ]
    if not series:
        return None
    plt = _pyplot()
    labels = list(dict.fromkeys(b.label for _, buckets in series for b in buckets))
    x = np.arange(len(labels))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(labels) * max(1, len(series) / 2)), 4))
    for i, (name, buckets) in enumerate(series):
        by = {b.label: b.accuracy for b in buckets}
        vals = np.array([by[k].value if k in by and by[k].value is not None else np.nan for k in labels])
        err = np.nan_to_num(np.array([_err(by.get(k)) for k in labels]).T)
        if line:
            ax.errorbar(x, vals, yerr=err, marker="o", capsize=3, label=name)
        else:
            ax.bar(
                x + (i - (len(series) - 1) / 2) * width,
                np.nan_to_num(vals),
                width,
                yerr=err,
                capsize=3,
                label=name,
            )
        for xi, k in zip(x, labels, strict=True):
            if k in by and by[k].n:
                ax.annotate(
                    f"n={by[k].n}", (xi, 0.02), ha="center", fontsize=7, rotation=90 if len(series) > 2 else 0
                )
    ax.set_xticks(x, labels)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy (w/o ties)")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _episode_stats(runs: Sequence[Run], out: Path) -> Path | None:
    traced = [r for r in runs if r.kind == "traces" and r.episodes]
    if not traced:
        return None
    plt = _pyplot()
    fig, (ax_f, ax_t) = plt.subplots(1, 2, figsize=(10, 3.5))
    for run in traced:
        frames = [e.frames_viewed for e in run.episodes if e.frames_viewed is not None]
        turns = [e.num_turns for e in run.episodes if e.num_turns is not None]
        if frames:
            ax_f.hist(frames, bins=np.arange(0, max(frames) + 2) - 0.5, alpha=0.5, label=run.name)
        if turns:
            ax_t.hist(turns, bins=np.arange(0, max(turns) + 2) - 0.5, alpha=0.5, label=run.name)
    ax_f.set_title("frames viewed per episode (tools, overview excluded)")
    ax_f.set_xlabel("frames")
    ax_t.set_title("turns per episode")
    ax_t.set_xlabel("turns")
    for ax in (ax_f, ax_t):
        ax.set_ylabel("episodes")
        ax.legend(fontsize=8)
    return _save(fig, out / "episode_stats.png")


def _deltas(report: EvalReport, out: Path) -> Path | None:
    rows = [d for d in report.deltas if d.delta.value is not None]
    if not rows:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), squeeze=False)
    for ax, metric in zip(axes.flat, ("no_ties", "ties"), strict=True):
        sel = [d for d in rows if d.metric == metric]
        names = [f"{d.run}\n{d.dim}" for d in sel]
        vals = np.array([d.delta.value for d in sel], dtype=float)
        colors = ["tab:green" if v >= 0 else "tab:red" for v in vals]
        ax.bar(
            np.arange(len(sel)),
            vals,
            yerr=np.array([_err(d.delta) for d in sel]).T.reshape(2, -1),
            capsize=3,
            color=colors,
        )
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(np.arange(len(sel)), names, fontsize=7)
        ax.set_ylabel("Δ accuracy vs baseline")
        ax.set_title(f"{'without' if metric == 'no_ties' else 'with'} ties — baseline {report.runs[0].name}")
    return _save(fig, out / "run_deltas.png")


def write_plots(report: EvalReport, runs: Sequence[Run], out: Path) -> list[Path]:
    """Write every plot that has data; returns their paths."""
    od = report.settings.overall_dim
    made = [
        _reward_hist(report, runs, out),
        _bucket_bars(
            report,
            "by_length",
            f"accuracy by video length ({od})",
            "longest video",
            out / "accuracy_by_length.png",
        ),
        _episode_stats(runs, out),
        _bucket_bars(
            report,
            "by_frames",
            f"accuracy vs frames viewed ({od})",
            "frames viewed",
            out / "accuracy_vs_frames.png",
            line=True,
        ),
        _deltas(report, out) if len(report.runs) > 1 else None,
    ]
    return [p for p in made if p is not None]
