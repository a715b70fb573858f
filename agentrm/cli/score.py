"""`agentrm score`: judge items with a reward model and write one trace per item (resumable).

    agentrm score --model Qwen/Qwen2.5-VL-7B-Instruct --input bench.csv --video-root videos/ --out traces.jsonl
    agentrm score --model ckpt/ --input a.mp4 --input b.mp4 --prompt "a red ball bounces" --out t.jsonl
    agentrm score --config my.yaml --input items.jsonl --out t.jsonl episode.window.max_visual_tokens=1024

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


def run(args: argparse.Namespace) -> int:
    import asyncio

    from agentrm.cli.progress import score_with_progress
    from agentrm.engines import make_engine

    cfg = build_config(args)
    items = load_inputs(args, cfg.episode.mode)
    if items and items[0].mode != cfg.episode.mode:
        cfg.episode.mode = items[0].mode  # the data decides; mixing modes in one file is rejected by the loader
    engine = make_engine(cfg.engine, cfg.episode)
    summary = asyncio.run(score_with_progress(items, engine, cfg, args.out, progress=not args.no_progress))
    return 1 if summary.failed else 0
