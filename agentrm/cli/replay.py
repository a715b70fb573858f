"""`agentrm replay --script turns.jsonl --input ... --out ...`: run the loop with the scripted engine.

The script is a JSONL of model turns ({"sample_id", "text", "rewards"?}) or a traces JSONL from an earlier run (its
model turns are replayed), so prompts, window and limits can be debugged without a model. Same options as `score`.
"""

from __future__ import annotations

import argparse

from agentrm.cli import score


def add_arguments(p: argparse.ArgumentParser) -> None:
    score.add_arguments(p)
    p.set_defaults(engine="scripted")


def run(args: argparse.Namespace) -> int:
    if not args.script:
        from agentrm.errors import ConfigError

        raise ConfigError("agentrm replay needs --script (a JSONL of model turns or of traces)")
    args.engine = "scripted"
    return score.run(args)
