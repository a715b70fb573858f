"""`agentrm demo [--out DIR]`: score synthetic videos with the embedded default model and show how to inspect them.

    agentrm demo                      # writes ./agentrm-demo/{videos,traces.jsonl}
    agentrm view agentrm-demo         # then look at the episodes
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="agentrm-demo", help="output directory (videos and traces.jsonl)")
    p.add_argument("--model", help="score with this model instead of the embedded default")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from agentrm.cli.progress import console, score_with_progress
    from agentrm.config import EngineConfig, ScoreConfig
    from agentrm.demo import default_model_dir, make_demo_items, make_synth_demo_items, synth_demo_setup
    from agentrm.engines import make_engine

    out = Path(args.out)
    trained = True
    if args.model:
        model = args.model
    else:
        model_dir, trained = default_model_dir()
        model = str(model_dir)
    if trained and not args.model:  # the packaged learning-proof model: its own task, settings and prompts
        cfg, prompt_dir, cue = synth_demo_setup(model_dir)
        items = make_synth_demo_items(out / "videos", cue)
        cfg.episode.prompt_dir = str(prompt_dir)
    else:
        items = make_demo_items(out / "videos")
        cfg = ScoreConfig(engine=EngineConfig(model=model, device="cpu"))
        cfg.episode.limits.max_new_tokens = 96
        cfg.episode.limits.max_turns = 4
    engine = make_engine(cfg.engine, cfg.episode)
    traces = out / "traces.jsonl"
    summary = asyncio.run(score_with_progress(items, engine, cfg, traces, progress=not args.no_progress))
    if not trained:
        console.print("[yellow]The embedded default is a tiny UNTRAINED Qwen2.5-VL (no trained model ships yet): "
                      "expect format errors and no rewards; the traces still show the loop at work.[/yellow]")
    console.print(f"Traces: {traces}\nInspect them with:  agentrm view {out}")
    return 1 if summary.failed else 0
