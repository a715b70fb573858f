"""`agentrm train`: the training stages.

    agentrm train cold-start --config configs/cold_start.yaml [key=value ...]     stage 1: SFT + head loss
    agentrm train rs-sample --config configs/rs_sample.yaml --input items.jsonl --out runs/rs [key=value ...]
    agentrm train sft --config configs/rs_sft.yaml [key=value ...]                 stage 2: SFT on kept traces
    agentrm train export --checkpoint runs/cold_start/final --out runs/merged      fold LoRA into the weights
    agentrm train grpo --config configs/grpo/...                                    stage 3 (agentrm.cli.train_grpo)

Multi-GPU: `torchrun --nproc_per_node N -m agentrm train cold-start ...` or
`accelerate launch --config_file configs/accelerate/fsdp.yaml -m agentrm train cold-start ...`.
Exit codes: 0 done, 1 rs-sample had failed samples, 2 usage/config/data error.
"""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("agentrm.train")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, help_text in (("cold-start", "stage 1: SFT on teacher traces + reward-head loss (cold start)"),
                            ("sft", "stage 2: the same recipe on rejection-sampled traces")):
        s = sub.add_parser(name, help=help_text, description=help_text)
        s.add_argument("--config", required=True, help="YAML TrainConfig (a path or a packaged name)")
        s.add_argument("overrides", nargs="*", help="config overrides key.path=value")
    s = sub.add_parser("rs-sample", help="sample K episodes per labelled item, keep the fully correct ones")
    s.add_argument("--config", help="YAML RSSampleConfig (default: packaged rs_sample.yaml)")
    s.add_argument("--input", required=True, help="labelled items: benchmark CSV or agentrm JSONL")
    s.add_argument("--out", required=True, help="output dir: samples.jsonl (resumable), kept.jsonl, stats.json")
    s.add_argument("--model", help="sets score.engine.model")
    s.add_argument("--engine", choices=["hf", "vllm", "scripted"], help="sets score.engine.kind")
    s.add_argument("--script", help="scripted engine: JSONL of model turns to replay")
    s.add_argument("--video-root", help="resolve relative video paths in the input against this dir")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("overrides", nargs="*", help="config overrides key.path=value")
    from agentrm.cli import train_grpo  # stage 3 lives in its own module (imports verl only when it runs)

    g = sub.add_parser("grpo", help="stage 3: GRPO on verl (see agentrm.cli.train_grpo)",
                       description=(train_grpo.__doc__ or "").split("\n")[0])
    train_grpo.add_arguments(g)
    s = sub.add_parser("export", help="merge a LoRA checkpoint into a full agentrm checkpoint")
    s.add_argument("--checkpoint", required=True, help="agentrm checkpoint dir (format lora)")
    s.add_argument("--out", required=True, help="output dir (format full)")
    s.add_argument("--dtype", default="auto", help="dtype to load and save in (auto, bfloat16, float32, ...)")


def _train(args: argparse.Namespace) -> int:
    from agentrm.config import load_config
    from agentrm.train_config import TrainConfig

    cfg = load_config(TrainConfig, args.config, args.overrides)
    from agentrm.train.cold_start import main

    final = main(cfg)
    log.info("final checkpoint: %s", final)
    return 0


def _rs_sample(args: argparse.Namespace) -> int:
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from agentrm.cli.progress import console, print_summary
    from agentrm.config import load_config
    from agentrm.data.loaders import load_items
    from agentrm.engines import make_engine
    from agentrm.train.rejection_sampling import SAMPLES, rs_sample
    from agentrm.train_config import RSSampleConfig

    overrides = list(args.overrides)
    for flag, key in (("model", "score.engine.model"), ("engine", "score.engine.kind"),
                      ("script", "score.engine.script")):
        if getattr(args, flag):
            overrides.insert(0, f"{key}={getattr(args, flag)}")
    if args.script and not args.engine:
        overrides.insert(0, "score.engine.kind=scripted")
    cfg = load_config(RSSampleConfig, args.config or "rs_sample.yaml", overrides)
    items = list(load_items(args.input, video_root=args.video_root).items)
    if items:
        cfg.score.episode.mode = items[0].mode
    engine = make_engine(cfg.score.engine, cfg.score.episode)
    total = len(items) * cfg.k
    with Progress(TextColumn("rs-sample"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=console, disable=args.no_progress) as bar:
        task = bar.add_task("", total=total)
        summary, stats = asyncio.run(rs_sample(
            items, engine, cfg, args.out,
            on_done=lambda t: bar.update(task, advance=1, description=f"{t.id}: {t.termination}")))
        bar.update(task, completed=total)
    print_summary(summary, f"{args.out}/{SAMPLES}")
    console.print(f"kept {stats['accepted']} of {stats['samples']} samples ({stats['acceptance']:.1%}); "
                  f"{len(stats['zero_accepted'])} item(s) with none kept; see {args.out}/stats.json")
    return 1 if summary.failed else 0


def _export(args: argparse.Namespace) -> int:
    from agentrm.train.model import export_merged

    out = export_merged(args.checkpoint, args.out, args.dtype)
    log.info("merged checkpoint: %s", out)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.stage in ("cold-start", "sft"):
        return _train(args)
    if args.stage == "rs-sample":
        return _rs_sample(args)
    if args.stage == "grpo":
        from agentrm.cli import train_grpo

        return int(train_grpo.run(args))
    return _export(args)
