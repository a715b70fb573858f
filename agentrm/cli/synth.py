"""`agentrm synth`: the synthetic long-video preference task and the learning-proof experiment.

    agentrm synth generate --out synth/ [--train 160 --dev 20 --test 60 --seed 0]   videos, items, teacher traces
    agentrm synth experiment --out docs/learning_proof --work runs/learning_proof [--ship]   the experiment (~1 h)
    agentrm synth seeds runs/s0_report runs/s1_report ... [--out docs/learning_proof/SEEDS.md]   gaps over seeds
    agentrm synth study --out runs/study --kinds reading --steps 600 [--vision-steps 1000]   stage-0 curves

See agentrm.synth.scenes for the task design and agentrm.synth.experiment for the experiment.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from agentrm.synth.experiment import Plan

    sub = p.add_subparsers(dest="synth_command", required=True, metavar="ACTION")
    g = sub.add_parser("generate", help="write videos, pairwise/pointwise items and teacher traces per split")
    g.add_argument("--out", required=True, help="output directory")
    g.add_argument("--train", type=int, default=160, help="training pairs")
    g.add_argument("--dev", type=int, default=20, help="dev pairs")
    g.add_argument("--test", type=int, default=60, help="held-out test pairs")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--min-s", type=float, default=60.0, help="shortest video (seconds)")
    g.add_argument("--max-s", type=float, default=300.0, help="longest video (seconds)")
    g.add_argument("--workers", type=int, default=2, help="rendering processes")
    g.add_argument("--no-teacher", action="store_true", help="skip the teacher traces")
    e = sub.add_parser("experiment", help="train agentic + same-budget uniform models, evaluate, write the report")
    e.add_argument("--out", default="docs/learning_proof", help="report directory (markdown, PNGs, report.json)")
    e.add_argument("--work", default="runs/learning_proof", help="working directory (data, checkpoints, traces)")
    e.add_argument("--quick", action="store_true", help="a few-minute smoke run (tiny sizes), not the real result")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--ship", action="store_true", help="package the better agentic model (cold start or RS-SFT, "
                   "by OA on videos >= 2 min) as agentrm demo's default")
    e.add_argument("--train", type=int, help=f"training pairs (default: the plan's {Plan.train})")
    e.add_argument("--cold-epochs", type=float, help=f"cold-start epochs (default: the plan's {Plan.cold_epochs})")
    sd = sub.add_parser("seeds", help="the agentic-vs-uniform OA gap of several experiment runs, and pooled")
    sd.add_argument("reports", nargs="+", help="report directories (--out of agentrm synth experiment)")
    sd.add_argument("--out", help="also write a markdown file: the table, what it measures, how to reproduce it")
    st = sub.add_parser("study", help="train a fresh model on stage-0 kinds; curve of teacher-forced accuracy")
    st.add_argument("--out", required=True, help="output directory (curve.jsonl, the study's base model)")
    st.add_argument("--kinds", default="scanning,induction", help="comma-separated stage-0 kinds")
    st.add_argument("--steps", type=int, default=1200)
    st.add_argument("--eval-every", type=int, default=100)
    st.add_argument("--cue", choices=("dim", "tint"), default="tint")
    st.add_argument("--lr", type=float, default=1e-3)
    st.add_argument("--vision-steps", type=int, default=0, help="vision warm-up steps before the kinds")
    st.add_argument("--seed", type=int, default=0)


def _generate(args: argparse.Namespace) -> int:
    import asyncio

    from agentrm.cli.progress import console
    from agentrm.synth.generate import generate, write_teacher_traces

    sizes = {"train": args.train, "dev": args.dev, "test": args.test}
    generate(args.out, sizes, seed=args.seed, min_s=args.min_s, max_s=args.max_s, workers=args.workers)
    bad_total = 0
    if not args.no_teacher:
        for split, n in sizes.items():
            if n == 0:
                continue
            for policy in ("agentic", "uniform"):
                path, bad = asyncio.run(write_teacher_traces(args.out, split, policy))
                if policy == "agentic":
                    bad_total += len(bad)
                console.print(f"{policy} teacher traces: {path}"
                              + (f" ({len(bad)} contradict their labels)" if bad and policy == "agentic" else ""))
    console.print(f"Items: {args.out}/{{train,dev,test}}.jsonl; episode settings: {args.out}/episode.yaml")
    return 1 if bad_total else 0


def _study(args: argparse.Namespace) -> int:
    import torch

    from agentrm.cli.progress import console
    from agentrm.synth.pretrain import KINDS
    from agentrm.synth.study import run_study

    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        console.print(f"--kinds: unknown {unknown or 'none given'}; choose from {', '.join(KINDS)}")
        return 2
    torch.set_num_threads(1)
    rows = run_study(args.out, kinds, args.steps, args.eval_every, lr=args.lr, seed=args.seed, cue=args.cue,
                     vision_steps=args.vision_steps)
    for row in rows:
        console.print("  ".join(f"{k} {v}" for k, v in row.items()))
    console.print(f"Curve: {args.out}/curve.jsonl")
    return 0


def _seeds(args: argparse.Namespace) -> int:
    from pathlib import Path

    from agentrm.cli.progress import console
    from agentrm.synth.report import seeds_report, seeds_table

    reports = [Path(r) for r in args.reports]
    try:
        table = seeds_table(reports)
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    console.print(table, markup=False, soft_wrap=True)
    if args.out:
        Path(args.out).write_text(seeds_report(reports, table), encoding="utf-8")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.synth_command == "generate":
        return _generate(args)
    if args.synth_command == "seeds":
        return _seeds(args)
    if args.synth_command == "study":
        return _study(args)
    from agentrm.synth.experiment import run_experiment

    sizes = {k: v for k, v in (("train", args.train), ("cold_epochs", args.cold_epochs)) if v is not None}
    return run_experiment(out=args.out, work=args.work, quick=args.quick, seed=args.seed, ship=args.ship, **sizes)
