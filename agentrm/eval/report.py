"""The evaluation report: metrics per run and dimension, episode statistics, buckets, run-vs-run deltas.

    report, runs = evaluate(traces=["run.jsonl", "uniform.jsonl"], benchmark="bench.csv")
    write_report(report, runs, "report/")   # report.json (EvalReport), report.md, *.png

What is measured, per run and per labelled dimension (the overall one is `settings.overall_dim`, OA):
- `margin_*` from head rewards (margin = reward(video 1) - reward(video 2)), when the run has rewards;
  `verdict_*` from the model's written verdicts, when it has verdicts; both when both exist, plus their
  agreement (verdict == the margin's 3-way prediction at the eps used for the margin).
- `*_no_ties` drops pairs humans tied; `*_ties` is 3-class. The margin's tie threshold is tuned on the
  evaluated pairs (Ties Matter, Alg. 1) unless a fixed eps is given (`settings.eps`, or `eps_from` = a report
  made on a dev split); every TiesMetric says which eps it used and where it came from.
- Missing verdicts / rewards (format failure, a limit, a video error) count as wrong; `n_missing` says how
  many. Episodes with no label at all are left out and counted (`n_unlabelled`).
- A run is measured on the labelled dimensions it judges (trace `inputs.dims`, or the scores' columns): a
  model that only scores OA is not marked wrong on VQ; the skipped dimensions are listed in the notes.
- The run's `primary` source (margin if it has rewards, else verdict) drives the buckets (by video length,
  by frames viewed) and the deltas against the first run (baseline), which are computed on the ids both
  runs evaluated, with paired bootstrap CIs. The with-ties delta uses each run's eps as fixed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from agentrm.data.loaders import load_items
from agentrm.errors import DataError
from agentrm.eval import metrics as M
from agentrm.eval.runs import Episode, Run, attach_labels, load_scores_run, load_trace_run
from agentrm.eval.schema import (
    BucketReport,
    DeltaReport,
    EpisodeStats,
    EvalReport,
    EvalSettings,
    Metric,
    PairDimReport,
    PointDimReport,
    RunReport,
    Source,
    TiesMetric,
)

# ---- helpers ----


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _metric(correct: np.ndarray, n_missing: int, s: EvalSettings) -> Metric:
    """Mean of 0/1 flags with its bootstrap CI."""
    if not correct.size:
        return Metric(value=None, n=0, n_missing=n_missing)
    ci = M.bootstrap_ci(correct, s.n_boot, s.seed, s.alpha) if s.n_boot else None
    return Metric(value=float(correct.mean()), ci=ci, n=int(correct.size), n_missing=n_missing)


def _verdict_or_none(v: str | float | None) -> str | None:
    return v if isinstance(v, str) and v in ("1", "2", "tie") else None


def _pair_arrays(run: Run, dim: str) -> tuple[list[Episode], np.ndarray, np.ndarray, np.ndarray]:
    """(episodes labelled on dim, label codes, margins, verdict codes), computed once per run and dim."""
    key = f"pair:{dim}"
    if key not in run.cache:
        eps = [e for e in run.episodes if e.mode == "pairwise" and dim in e.labels]
        y = M.encode([e.labels[dim] for e in eps], allow_missing=False)
        m = np.array([e.margin(dim) for e in eps], dtype=np.float64)
        v = M.encode([_verdict_or_none(e.verdict(dim)) for e in eps])
        run.cache[key] = (eps, y, m, v)
    out: tuple[list[Episode], np.ndarray, np.ndarray, np.ndarray] = run.cache[key]
    return out


class _EpsResolver:
    """Fixed eps per (run, dim) from settings.eps or a dev report; None = tune."""

    def __init__(self, s: EvalSettings) -> None:
        self.fixed = dict(s.eps or {})
        self.dev: EvalReport | None = None
        self.dev_path = s.eps_from
        if s.eps_from:
            path = Path(s.eps_from)
            if not path.is_file():
                raise DataError(f"--eps-from {path}: file not found (give a report.json made on a dev split)")
            self.dev = EvalReport.model_validate_json(path.read_text())

    def __call__(self, run: str, dim: str) -> tuple[float | None, str]:
        for key in (dim, "*"):
            if key in self.fixed:
                return self.fixed[key], "fixed by --eps"
        if self.dev is not None and self.dev.runs:
            dev_run = next((r for r in self.dev.runs if r.name == run), self.dev.runs[0])
            d = dev_run.dim(dim)
            if d is not None and d.margin_ties is not None:
                return d.margin_ties.eps, f"dev report {self.dev_path}, run {dev_run.name}"
        return None, "tuned on the evaluated pairs"


def _pair_dim(run: Run, dim: str, s: EvalSettings, eps_for: _EpsResolver) -> PairDimReport:
    _, y, m, v = _pair_arrays(run, dim)
    rep = PairDimReport(dim=dim, n_pairs=int(y.size), n_tie_labels=int((y == 0).sum()))
    nt = y != 0
    eps_used = 0.0
    if run.has_rewards:
        rep.margin_no_ties = _metric(M.correct_without_ties(m, y), int(np.isnan(m[nt]).sum()), s)
        fixed, where = eps_for(run.name, dim)
        acc, eps_used, tuned = M.accuracy_with_ties(m, y, fixed)
        ci = M.bootstrap_ci_with_ties(m, y, fixed, s.n_boot, s.seed, s.alpha) if s.n_boot and y.size else None
        rep.margin_ties = TiesMetric(
            value=_num(acc),
            ci=ci,
            n=int(y.size),
            n_missing=int(np.isnan(m).sum()),
            eps=eps_used,
            eps_tuned=tuned,
            eps_source=where,
        )
    if run.has_verdicts:
        missing = v == M.NO_ANSWER
        rep.verdict_no_ties = _metric(M.verdict_correct(v, y, ties=False), int(missing[nt].sum()), s)
        rep.verdict_ties = _metric(M.verdict_correct(v, y, ties=True), int(missing.sum()), s)
    if run.has_rewards and run.has_verdicts:
        rep.agreement = _metric(M.agreement_flags(v, m, eps_used), 0, s)
    return rep


def _point_dim(run: Run, dim: str) -> PointDimReport:
    eps = [e for e in run.episodes if e.mode == "pointwise" and dim in e.labels]
    y = np.array([float(e.labels[dim]) for e in eps], dtype=np.float64)
    v = np.array(
        [x if isinstance(x := e.verdict(dim), int | float) else math.nan for e in eps], dtype=np.float64
    )
    r = np.array([e.reward(dim) for e in eps], dtype=np.float64)
    rep = PointDimReport(
        dim=dim, n=len(eps), n_missing_verdict=int(np.isnan(v).sum()), n_missing_reward=int(np.isnan(r).sum())
    )
    if run.has_verdicts:
        rep.verdict_pearson, rep.verdict_spearman = _num(M.pearson(v, y)), _num(M.spearman(v, y))
    if run.has_rewards:
        rep.reward_pearson, rep.reward_spearman = _num(M.pearson(r, y)), _num(M.spearman(r, y))
    return rep


def _correct_map(run: Run, rep: RunReport, dim: str, ties: bool) -> dict[str, bool]:
    """id -> is the run's primary answer right (no-ties: only non-tie pairs)."""
    eps, y, m, v = _pair_arrays(run, dim)
    d = rep.dim(dim)
    if rep.primary == "margin":
        eps_used = d.margin_ties.eps if d is not None and d.margin_ties is not None else 0.0
        pred = M.margin_predictions(m, eps_used if ties else 0.0)
    else:
        pred = v
    ok = pred == y
    return {e.id: bool(c) for e, c, yy in zip(eps, ok, y, strict=True) if ties or yy != 0}


def _edges_labels(edges: Sequence[float], unit: str, integer: bool) -> list[str]:
    def f(x: float) -> str:
        return f"{int(x)}" if float(x).is_integer() else f"{x:g}"

    if integer:
        out = ["0" if edges[0] == 1 else f"0–{f(edges[0] - 1)}"]
        out += [f(a) if b - 1 == a else f"{f(a)}–{f(b - 1)}" for a, b in zip(edges, edges[1:], strict=False)]
    else:
        out = [f"<{f(edges[0])}{unit}"] + [
            f"{f(a)}–{f(b)}{unit}" for a, b in zip(edges, edges[1:], strict=False)
        ]
    return out + [f"≥{f(edges[-1])}{unit}"]


def _buckets(
    run: Run,
    rep: RunReport,
    s: EvalSettings,
    key: Callable[[Episode], float | None],
    edges: Sequence[float],
    unit: str,
    integer: bool,
) -> list[BucketReport]:
    dim = s.overall_dim if rep.dim(s.overall_dim) else (rep.pairwise[0].dim if rep.pairwise else None)
    if dim is None or rep.primary is None or run.kind != "traces":
        return []
    rep.bucket_dim = dim
    correct = _correct_map(run, rep, dim, ties=False)
    labels = [*_edges_labels(edges, unit, integer), "unknown"]
    groups: dict[str, list[bool]] = {lab: [] for lab in labels}
    for e in run.episodes:
        if e.id not in correct:
            continue
        x = key(e)
        lab = "unknown" if x is None else labels[int(np.searchsorted(np.asarray(edges), x, side="right"))]
        groups[lab].append(correct[e.id])
    return [
        BucketReport(label=lab, accuracy=_metric(np.array(g, dtype=bool), 0, s))
        for lab, g in groups.items()
        if g or lab != "unknown"
    ]


def _stats(run: Run) -> EpisodeStats | None:
    if run.kind != "traces":
        return None
    eps = run.episodes
    summarize = M.summarize
    return EpisodeStats(
        n=len(eps),
        terminations=dict(Counter(e.termination or "none" for e in eps)),
        no_verdict=sum(1 for e in eps if not e.verdicts),
        no_reward=sum(1 for e in eps if not e.rewards),
        turns={k: _num(v) for k, v in summarize(e.num_turns for e in eps if e.num_turns is not None).items()},
        frames_viewed={
            k: _num(v)
            for k, v in summarize(e.frames_viewed for e in eps if e.frames_viewed is not None).items()
        },
    )


def run_report(run: Run, s: EvalSettings, eps_for: _EpsResolver, step: Callable[[str], None]) -> RunReport:
    primary: Source | None = "margin" if run.has_rewards else "verdict" if run.has_verdicts else None
    rep = RunReport(
        name=run.name,
        source=run.source,
        kind=run.kind,
        policy=run.policy,
        n_episodes=len(run.episodes),
        n_unlabelled=run.unlabelled,
        n_duplicates=run.duplicates,
        n_bad_lines=len(run.bad_lines),
        n_label_mismatches=run.label_mismatches,
        primary=primary,
        stats=_stats(run),
    )
    pair_eps = [e for e in run.episodes if e.mode == "pairwise"]
    for dim in run.dims():
        step(f"{run.name}: {dim}")
        if any(dim in e.labels for e in pair_eps):
            rep.pairwise.append(_pair_dim(run, dim, s, eps_for))
        if any(dim in e.labels for e in run.episodes if e.mode == "pointwise"):
            rep.pointwise.append(_point_dim(run, dim))
    rep.by_length = _buckets(run, rep, s, lambda e: e.duration_s, s.length_buckets_s, "s", integer=False)
    rep.by_frames = _buckets(
        run,
        rep,
        s,
        lambda e: None if e.frames_viewed is None else float(e.frames_viewed),
        s.frames_bins,
        "",
        True,
    )
    return rep


def run_deltas(runs: Sequence[Run], reports: Sequence[RunReport], s: EvalSettings) -> list[DeltaReport]:
    """Every run against the first one, on the ids both evaluated, per shared dimension, paired bootstrap."""
    out: list[DeltaReport] = []
    base_run, base = runs[0], reports[0]
    for run, rep in zip(runs[1:], reports[1:], strict=True):
        if rep.primary is None or base.primary is None:
            continue
        for d in rep.pairwise:
            if base.dim(d.dim) is None:
                continue
            for ties in (False, True):
                a, b = _correct_map(run, rep, d.dim, ties), _correct_map(base_run, base, d.dim, ties)
                common = sorted(set(a) & set(b))
                if not common:
                    continue  # no shared pairs (e.g. runs on different benchmarks): nothing to compare
                diff = np.array([float(a[i]) - float(b[i]) for i in common], dtype=np.float64)
                ci = M.bootstrap_ci(diff, s.n_boot, s.seed, s.alpha) if diff.size and s.n_boot else None
                metric = Metric(value=float(diff.mean()) if diff.size else None, ci=ci, n=int(diff.size))
                out.append(
                    DeltaReport(
                        run=rep.name,
                        baseline=base.name,
                        dim=d.dim,
                        metric="ties" if ties else "no_ties",
                        run_source=rep.primary,
                        baseline_source=base.primary,
                        delta=metric,
                    )
                )
    return out


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[str], None]]:
    if not enabled:
        yield lambda desc: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True) as prog:
        task = prog.add_task("evaluating", total=total)

        def step(desc: str) -> None:
            prog.update(task, advance=1, description=desc)

        yield step


def _unique_names(runs: list[Run]) -> None:
    """Runs are named by file stem; colliding stems get their folder (agentic/traces), then -2, -3."""
    stems = Counter(r.name for r in runs)
    for run in runs:
        if stems[run.name] > 1:
            run.name = f"{Path(run.source).parent.name}/{run.name}"
    seen: Counter[str] = Counter()
    for run in runs:
        seen[run.name] += 1
        if seen[run.name] > 1:
            run.name = f"{run.name}-{seen[run.name]}"


def build_report(runs: list[Run], settings: EvalSettings, progress: bool = False) -> EvalReport:
    """Metrics for runs whose episodes already carry labels (see `evaluate` for loading)."""
    if not runs:
        raise DataError("nothing to evaluate: give at least one --traces or --scores file")
    _unique_names(runs)
    eps_for = _EpsResolver(settings)
    reports = []
    with _progress(progress, sum(len(r.dims()) for r in runs)) as step:
        for run in runs:
            reports.append(run_report(run, settings, eps_for, step))
    notes = []
    for run in runs:
        if not run.episodes:
            notes.append(f"run {run.name}: no labelled episodes (check the ids against --benchmark)")
        skipped = [d for d in run.labelled_dims() if d not in run.dims()]
        if skipped:
            notes.append(
                f"run {run.name}: labels of {', '.join(skipped)} not evaluated (the run does not judge them)"
            )
        if run.bad_lines:
            notes.append(
                f"run {run.name}: {len(run.bad_lines)} unreadable line(s), first: {run.bad_lines[0]}"
            )
    return EvalReport(
        settings=settings, runs=reports, deltas=run_deltas(runs, reports, settings), notes=notes
    )


def evaluate(
    traces: Sequence[str | Path] = (),
    scores: Sequence[str | Path] = (),
    benchmark: str | Path | None = None,
    benchmark_format: str = "auto",
    settings: EvalSettings | None = None,
    strict: bool = False,
    progress: bool = False,
) -> tuple[EvalReport, list[Run]]:
    """Load runs (+ benchmark labels) and build the report; the runs are returned for the plots."""
    s = settings or EvalSettings()
    items = None
    loaded = None
    if benchmark is not None:
        loaded = load_items(benchmark, benchmark_format, strict=strict, check_videos=False)
        items = loaded.items
    runs = [load_trace_run(p) for p in traces] + [
        load_scores_run(p, overall_dim=s.overall_dim, strict=strict) for p in scores
    ]
    for run in runs:
        attach_labels(run, items)
    report = build_report(runs, s, progress)
    if loaded is not None:
        report.benchmark, report.benchmark_format = str(benchmark), loaded.format
        report.benchmark_items, report.benchmark_skipped = len(loaded.items), len(loaded.skipped)
        if loaded.skipped:
            report.notes.append(
                f"benchmark: {len(loaded.skipped)} bad row(s) skipped, first: {loaded.skipped[0]}"
            )
    return report, runs


def write_report(report: EvalReport, runs: Sequence[Run], out_dir: str | Path) -> list[Path]:
    """Write report.json, report.md and the PNG plots into out_dir; returns the written paths."""
    from agentrm.eval.markdown import render_markdown
    from agentrm.eval.plots import write_plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(report, runs, out)
    report.plots = [p.name for p in plots]
    (out / "report.json").write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(render_markdown(report), encoding="utf-8")
    return [out / "report.json", out / "report.md", *plots]
