"""`agentrm score`: judge items with a reward model and write one trace per item (resumable).

    agentrm score --model Qwen/Qwen2.5-VL-7B-Instruct --input bench.csv --video-root videos/ --out traces.jsonl
    agentrm score --model ckpt/ --input a.mp4 --input b.mp4 --prompt "a red ball bounces" --out t.jsonl
    agentrm score --config my.yaml --input items.jsonl --out t.jsonl episode.window.max_visual_tokens=1024
    agentrm score --ray --num-workers 8 --gpus-per-worker 1 --model ckpt/ --input items.jsonl --out t.jsonl

--ray shards the episodes across a pool of Ray engine actors (agentrm.distributed): a local Ray on this machine, or
a running cluster with --address; same output file, same resume, a dead worker's samples are retried elsewhere.

Inputs are video files (with --prompt: two make one pairwise item, each one pointwise item), a benchmark CSV, or
agentrm JSONL. Exit code: 0 when every sample was scored, 1 when any sample failed (video or engine error; recorded
in its trace), 2 on a usage/config error.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentrm.config import ScoreConfig
    from agentrm.data.schema import Item
    from agentrm.distributed import RayConfig

VIDEO_EXTS = {".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".gif"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="hub id or local dir (agentrm checkpoint or plain Qwen-VL); sets engine.model")
    p.add_argument("--input", action="append", required=True, help="video file(s), benchmark CSV or JSONL")
    p.add_argument("--out", required=True, help="traces JSONL (appended; finished ids are skipped on re-run)")
    p.add_argument("--mode", choices=["pairwise", "pointwise"], help="sets episode.mode")
    p.add_argument("--prompt", help="the text prompt, when --input names video files")
    p.add_argument("--video-root", help="resolve relative video paths in CSV/JSONL against this directory")
    p.add_argument("--format", default="auto", help="input format for CSV/JSONL (auto-detected by default)")
    p.add_argument("--strict", action="store_true", help="a bad input row is fatal (default: skipped, counted)")
    p.add_argument("--policy", choices=["agentic", "uniform"], help="uniform = same-budget non-agentic baseline")
    p.add_argument("--engine", choices=["hf", "vllm", "scripted"], help="sets engine.kind")
    p.add_argument("--script", help="scripted engine: JSONL of model turns to replay")
    p.add_argument("--config", help="YAML ScoreConfig (a path, or a packaged name like score/default.yaml)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", help="config overrides key.path=value")
    g = p.add_argument_group("scale out on Ray (pip install 'agentrm[ray]')")
    g.add_argument("--ray", action="store_true", help="run episodes on a pool of Ray engine actors")
    g.add_argument("--address", help="Ray cluster: auto (the cluster of this node) or ray://head:10001; "
                   "default: start a local Ray")
    g.add_argument("--num-workers", type=int, help="engine actors (default: as many as the cluster's GPUs or CPUs fit)")
    g.add_argument("--gpus-per-worker", type=float, help="GPUs per engine actor (default 0: CPU engines)")
    g.add_argument("--cpus-per-worker", type=float, help="CPUs per engine actor (default 1; also its torch threads)")
    g.add_argument("--max-attempts", type=int,
                   help="worker deaths a sample may be in flight for before it is recorded as failed (default 3)")


def build_config(args: argparse.Namespace) -> ScoreConfig:
    from agentrm.config import ScoreConfig, load_config

    overrides = list(args.overrides)
    for flag, key in (("model", "engine.model"), ("mode", "episode.mode"), ("policy", "policy"),
                      ("engine", "engine.kind"), ("script", "engine.script")):
        value = getattr(args, flag, None)
        if value:
            overrides.insert(0, f"{key}={value}")
    if getattr(args, "script", None) and not getattr(args, "engine", None):
        overrides.insert(0, "engine.kind=scripted")
    return load_config(ScoreConfig, args.config, overrides)


def load_inputs(args: argparse.Namespace, mode: str) -> list[Item]:
    """Items from the --input arguments (video files, or one CSV/JSONL)."""
    from agentrm.data.schema import Item
    from agentrm.errors import ConfigError

    paths = [Path(p) for p in args.input]
    if all(p.suffix.lower() in VIDEO_EXTS or p.is_dir() for p in paths):
        if not args.prompt:
            raise ConfigError("--input names video files: give the text prompt with --prompt")
        if mode == "pairwise":
            if len(paths) != 2:
                raise ConfigError(f"pairwise mode with video files needs exactly 2 --input videos, got {len(paths)}")
            return [Item(id=f"{paths[0].stem}-vs-{paths[1].stem}", mode="pairwise", prompt=args.prompt,
                         videos=[str(p) for p in paths])]
        return [Item(id=p.stem, mode="pointwise", prompt=args.prompt, videos=[str(p)]) for p in paths]
    if len(paths) != 1:
        raise ConfigError("give one CSV/JSONL --input (or only video files)")
    from agentrm.data.loaders import load_items

    result = load_items(paths[0], format=args.format, video_root=args.video_root, strict=args.strict)
    for problem in result.skipped:
        logging.getLogger("agentrm.score").warning("skipped %s", problem)
    return list(result.items)


RAY_FLAGS = ("address", "num_workers", "gpus_per_worker", "cpus_per_worker", "max_attempts")  # = RayConfig fields


def build_ray_config(args: argparse.Namespace) -> RayConfig | None:
    """The RayConfig from the --ray flags; None without --ray (Ray flags without it are an error)."""
    from agentrm.errors import ConfigError

    given = {flag: getattr(args, flag) for flag in RAY_FLAGS if getattr(args, flag, None) is not None}
    if not getattr(args, "ray", False):
        if given:
            names = ", ".join("--" + f.replace("_", "-") for f in given)
            raise ConfigError(f"{names}: Ray options, used only with --ray (add --ray to score on a Ray cluster)")
        return None
    from pydantic import ValidationError

    from agentrm.config import format_validation_error
    from agentrm.distributed import RayConfig

    try:
        return RayConfig.model_validate(given)
    except ValidationError as err:
        raise ConfigError(format_validation_error(RayConfig, err, "--ray flags")) from None


def run(args: argparse.Namespace) -> int:
    import asyncio

    from agentrm.cli.progress import print_summary, progress_bar, score_with_progress
    from agentrm.engines import make_engine

    cfg = build_config(args)
    ray_cfg = build_ray_config(args)
    items = load_inputs(args, cfg.episode.mode)
    if items and items[0].mode != cfg.episode.mode:
        cfg.episode.mode = items[0].mode  # the data decides; mixing modes in one file is rejected by the loader
    if ray_cfg is not None:  # each Ray worker builds its own engine; this process only schedules and writes
        from agentrm.distributed import score_items_ray

        with progress_bar(len(items), not args.no_progress) as done:
            ray_summary = score_items_ray(items, cfg, args.out, ray_cfg, on_done=done)
        print_summary(ray_summary, args.out)
        return 1 if ray_summary.failed else 0
    engine = make_engine(cfg.engine, cfg.episode)
    summary = asyncio.run(score_with_progress(items, engine, cfg, args.out, progress=not args.no_progress))
    return 1 if summary.failed else 0
