"""`agentrm eval`: accuracy of one or more runs against human preferences, as report.json / report.md / PNGs.

    agentrm eval --traces out/agentic.jsonl --traces out/uniform.jsonl --benchmark bench.csv --out report/
    agentrm eval --scores videoreward_scores.csv --benchmark bench.csv --out report/   # any reward model
    agentrm eval --traces test.jsonl --eps-from report_dev/report.json --out report_test/  # eps from dev

The first run given is the baseline of the run-vs-run deltas. Labels come from `--benchmark` (joined by sample
id) or, without it, from the traces / scores files themselves. See agentrm.eval.report for what is measured.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

log = logging.getLogger(__name__)


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, e.g. 60,120,300; got {text!r}"
        ) from None


def _eps_arg(text: str) -> dict[str, float]:
    """'0.1' (every dimension) or 'VQ=0.1,OA=0.2'."""
    try:
        if "=" not in text:
            return {"*": float(text)}
        pairs = (part.split("=", 1) for part in text.split(",") if part.strip())
        return {k.strip(): float(v) for k, v in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(f"--eps takes a number or DIM=number,...; got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    runs = parser.add_argument_group("runs (at least one; the first is the baseline)")
    runs.add_argument(
        "--traces", action="append", default=[], metavar="JSONL", help="a run's traces (repeatable)"
    )
    runs.add_argument(
        "--scores",
        action="append",
        default=[],
        metavar="CSV",
        help="another reward model's scores: id, label(s) A/B/tie, score_A, score_B or per-dimension columns",
    )
    parser.add_argument(
        "--benchmark", metavar="FILE", help="labels by sample id (CSV / JSONL / JSON, any format)"
    )
    parser.add_argument(
        "--format",
        default="auto",
        help="benchmark format: auto, videogen_rewardbench, genai_bench, mj_bench_video or agentrm",
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="report folder (report.json, report.md, PNGs)"
    )
    parser.add_argument("--strict", action="store_true", help="a bad benchmark / scores row is fatal")
    tie = parser.add_mutually_exclusive_group()
    tie.add_argument("--eps", type=_eps_arg, help="fixed tie threshold: 0.1 or VQ=0.1,OA=0.2 (default tuned)")
    tie.add_argument("--eps-from", metavar="REPORT", help="use the eps of a report.json made on a dev split")
    parser.add_argument("--overall-dim", default="OA", help="overall dimension (default OA)")
    parser.add_argument(
        "--length-buckets",
        type=_floats,
        default=[60.0, 120.0, 300.0],
        metavar="S,S,...",
        help="video-length bucket edges in seconds (default 60,120,300)",
    )
    parser.add_argument(
        "--frames-bins",
        type=_floats,
        default=[1, 9, 17, 25, 33, 49],
        metavar="N,N,...",
        help="frames-viewed bin edges (default 1,9,17,25,33,49)",
    )
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (0 = no CIs)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _settings(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from agentrm.config import format_validation_error
    from agentrm.errors import ConfigError
    from agentrm.eval.report import EvalSettings

    data = {
        "overall_dim": args.overall_dim,
        "length_buckets_s": args.length_buckets,
        "frames_bins": [int(x) for x in args.frames_bins],
        "n_boot": args.n_boot,
        "seed": args.seed,
        "eps": args.eps,
        "eps_from": args.eps_from,
    }
    try:
        return EvalSettings.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(EvalSettings, err, "agentrm eval arguments")) from None


def _print_summary(report: Any, paths: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from agentrm.eval.markdown import format_eps, format_pct

    od = report.settings.overall_dim
    table = Table(title=f"agentrm eval — {od}")
    for col in ("run", "policy", "episodes", "primary", "acc w/o ties", "acc w/ ties", "ε", "no answer"):
        table.add_column(col, overflow="fold")
    for r in report.runs:
        d = r.dim(od)
        if d is None:
            table.add_row(r.name, r.policy or "–", str(r.n_episodes), "–", "–", "–", "–", "–")
            continue
        nt = d.margin_no_ties if r.primary == "margin" else d.verdict_no_ties
        t = d.margin_ties if r.primary == "margin" else d.verdict_ties
        eps = format_eps(d.margin_ties) if r.primary == "margin" else "–"
        missing = str(t.n_missing) if t is not None else "–"
        cells = [r.name, r.policy or "–", str(r.n_episodes), str(r.primary), format_pct(nt), format_pct(t)]
        table.add_row(*cells, eps, missing)
    console = Console()
    console.print(table)
    for note in report.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    console.print(f"wrote {', '.join(str(p) for p in paths)}")


def run(args: argparse.Namespace) -> int:
    from agentrm.errors import DataError
    from agentrm.eval.report import evaluate, write_report

    if not args.traces and not args.scores:
        raise DataError("agentrm eval needs at least one --traces JSONL or --scores CSV")
    settings = _settings(args)
    report, runs = evaluate(
        traces=args.traces,
        scores=args.scores,
        benchmark=args.benchmark,
        benchmark_format=args.format,
        settings=settings,
        strict=args.strict,
        progress=not args.no_progress,
    )
    paths = write_report(report, runs, args.out)
    _print_summary(report, paths)
    return 0
