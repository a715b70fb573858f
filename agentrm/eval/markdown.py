"""report.md: the EvalReport as tables a person reads (report.json stays the machine-readable source)."""

from __future__ import annotations

import time

from agentrm.eval.schema import EvalReport, Metric, RunReport, TiesMetric


def format_pct(m: Metric | None) -> str:
    if m is None:
        return "–"
    if m.value is None:
        return "n/a"
    text = f"{100 * m.value:.1f}%"
    if m.ci is not None:
        text += f" [{100 * m.ci[0]:.1f}, {100 * m.ci[1]:.1f}]"
    return text


def _delta(m: Metric) -> str:
    if m.value is None:
        return "n/a"
    text = f"{100 * m.value:+.1f} pt"
    if m.ci is not None:
        text += f" [{100 * m.ci[0]:+.1f}, {100 * m.ci[1]:+.1f}]"
    return text


def format_eps(m: TiesMetric | None) -> str:
    if m is None:
        return "–"
    return f"{m.eps:.4g} ({'tuned' if m.eps_tuned else m.eps_source})"


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "–" if x is None else format(x, fmt)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out + [""]


def _summary(report: EvalReport) -> list[str]:
    od = report.settings.overall_dim
    rows = []
    for r in report.runs:
        d = r.dim(od) or (r.pairwise[0] if r.pairwise else None)
        if d is None:
            rows.append([r.name, r.policy or "–", r.kind, str(r.n_episodes), "–", "–", "–", "–", "–"])
            continue
        head_nt = d.margin_no_ties if r.primary == "margin" else d.verdict_no_ties
        head_t = d.margin_ties if r.primary == "margin" else d.verdict_ties
        missing = head_t.n_missing if head_t is not None else 0
        rows.append(
            [
                r.name,
                r.policy or "–",
                r.kind,
                str(r.n_episodes),
                f"{r.primary} ({d.dim})",
                format_pct(head_nt),
                format_pct(head_t),
                format_eps(d.margin_ties) if r.primary == "margin" else "–",
                str(missing),
            ]
        )
    header = ["run", "policy", "kind", "episodes", "primary", "acc w/o ties", "acc w/ ties", "ε", "no answer"]
    return [f"## Summary ({od})", "", *_table(header, rows)]


def _run(r: RunReport) -> list[str]:
    out = [f"## Run `{r.name}`", "", f"- source: `{r.source}` ({r.kind}), policy: {r.policy or '–'}"]
    out.append(
        f"- labelled episodes: {r.n_episodes}; unlabelled (left out): {r.n_unlabelled}; repeated ids: "
        f"{r.n_duplicates}; unreadable lines: {r.n_bad_lines}; labels differing from the benchmark: "
        f"{r.n_label_mismatches}"
    )
    if r.stats is not None:
        s = r.stats
        terms = ", ".join(f"{k} {v}" for k, v in sorted(s.terminations.items()))
        out.append(f"- terminations: {terms}; no verdict: {s.no_verdict}; no reward: {s.no_reward}")
        t, f = s.turns, s.frames_viewed
        out.append(
            f"- turns mean {_num(t['mean'], '.2f')} / median {_num(t['median'], '.1f')} / max "
            f"{_num(t['max'], '.0f')}; frames viewed mean {_num(f['mean'], '.1f')} / median "
            f"{_num(f['median'], '.1f')} / max {_num(f['max'], '.0f')}"
        )
    out.append("")
    if r.pairwise:
        header = [
            "dim",
            "pairs",
            "human ties",
            "margin w/o ties",
            "margin w/ ties",
            "ε",
            "verdict w/o ties",
            "verdict w/ ties",
            "agreement",
            "no reward / no verdict",
        ]
        rows = []
        for d in r.pairwise:
            nr = str(d.margin_ties.n_missing) if d.margin_ties else "–"
            nv = str(d.verdict_ties.n_missing) if d.verdict_ties else "–"
            rows.append(
                [
                    d.dim,
                    str(d.n_pairs),
                    str(d.n_tie_labels),
                    format_pct(d.margin_no_ties),
                    format_pct(d.margin_ties),
                    format_eps(d.margin_ties),
                    format_pct(d.verdict_no_ties),
                    format_pct(d.verdict_ties),
                    format_pct(d.agreement),
                    f"{nr} / {nv}",
                ]
            )
        out += ["### Pairwise accuracy (95% bootstrap CI)", "", *_table(header, rows)]
    if r.pointwise:
        header = [
            "dim",
            "n",
            "verdict Pearson",
            "verdict Spearman",
            "reward Pearson",
            "reward Spearman",
            "no verdict",
            "no reward",
        ]
        rows = [
            [
                p.dim,
                str(p.n),
                _num(p.verdict_pearson),
                _num(p.verdict_spearman),
                _num(p.reward_pearson),
                _num(p.reward_spearman),
                str(p.n_missing_verdict),
                str(p.n_missing_reward),
            ]
            for p in r.pointwise
        ]
        out += ["### Pointwise correlation with the labels", "", *_table(header, rows)]
    for title, buckets in (
        ("By video length (longest video)", r.by_length),
        ("By frames viewed", r.by_frames),
    ):
        if buckets:
            rows = [[b.label, str(b.accuracy.n), format_pct(b.accuracy)] for b in buckets]
            out += [
                f"### {title} — {r.bucket_dim}, {r.primary}, w/o ties",
                "",
                *_table(["bucket", "pairs", "accuracy"], rows),
            ]
    return out


def render_markdown(report: EvalReport) -> str:
    s = report.settings
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(report.created_at))
    lines = ["# agentrm evaluation report", "", f"- created: {when}"]
    if report.benchmark:
        lines.append(
            f"- benchmark: `{report.benchmark}` ({report.benchmark_format}, {report.benchmark_items} items, "
            f"{report.benchmark_skipped} bad rows skipped)"
        )
    else:
        lines.append("- labels: from the traces / scores files")
    eps = "tuned per run and dimension (Ties Matter, Alg. 1; smallest best ε)"
    if s.eps:
        eps = "fixed " + ", ".join(f"{k}={v:g}" for k, v in s.eps.items()) + " (others tuned)"
    elif s.eps_from:
        eps = f"from dev report `{s.eps_from}`"
    lines += [
        f"- tie threshold ε: {eps}",
        f"- CIs: {100 * (1 - s.alpha):.0f}% percentile bootstrap, {s.n_boot} resamples, seed {s.seed}",
        "- missing verdicts / rewards count as wrong (their number is in every table)",
        "",
    ]
    lines += _summary(report)
    for r in report.runs:
        lines += _run(r)
    if report.deltas:
        rows = [
            [
                d.run,
                d.dim,
                "w/o ties" if d.metric == "no_ties" else "w/ ties",
                f"{d.run_source} vs {d.baseline_source}",
                _delta(d.delta),
                str(d.delta.n),
            ]
            for d in report.deltas
        ]
        header = ["run", "dim", "metric", "sources", "Δ vs baseline [95% CI]", "common pairs"]
        lines += [f"## Runs vs baseline `{report.runs[0].name}` (paired)", "", *_table(header, rows)]
    if report.plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in report.plots] + [""]
    if report.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in report.notes] + [""]
    return "\n".join(lines)
