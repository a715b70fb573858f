"""`agentrm train grpo`: GRPO on verl with the agentic loop, composite rule rewards and an auxiliary BT loss.

    agentrm train grpo --config configs/grpo/qwen2_5_vl_7b.yaml                      train, then export
    agentrm train grpo --config configs/grpo/qwen2_5_vl_7b.yaml algo.n=4 --dry-run  print verl's composed config
    agentrm train grpo --config configs/grpo/qwen2_5_vl_7b.yaml --export-only       latest step -> <out>/final

One node: run it on the node (Ray starts locally). Multi-node: start a Ray cluster first (`ray start --head` on
one node, `ray start --address=<head>:6379` on the others), set cluster.nnodes, and run the command on the head
node (or with RAY_ADDRESS set). See docs/grpo.md. Needs the `verl` extra (pip install -e '.[verl]').
Exit codes: 0 done, 2 usage/config error.
"""

from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger("agentrm.train.grpo")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="YAML GRPOConfig (a path or a packaged name, e.g. grpo/tiny.yaml)")
    p.add_argument("--dry-run", action="store_true", help="compose + validate verl's full config and print it")
    p.add_argument("--reprepare", action="store_true", help="rebuild <output_dir>/verl/model from model.path")
    p.add_argument("--export-only", action="store_true", help="export the latest checkpoint; do not train")
    p.add_argument("--no-export", action="store_true", help="do not export an agentrm checkpoint after training")
    p.add_argument("overrides", nargs="*", help="config overrides key.path=value")


def register(sub: argparse._SubParsersAction) -> None:
    """Hook into `agentrm train`'s sub-commands: `train_grpo.register(sub)`; dispatch stage "grpo" to `run`."""
    text = "stage 3: GRPO on verl (agentic loop, rule rewards, auxiliary BT on the reward head)"
    add_arguments(sub.add_parser("grpo", help=text, description=text))


def run(args: argparse.Namespace) -> int:
    from agentrm.config import load_config
    from agentrm.train.grpo_config import GRPOConfig
    from agentrm.train.verl.launch import absolute, export_final, launch

    cfg = load_config(GRPOConfig, args.config, args.overrides)
    if args.export_only:
        log.info("exported: %s", export_final(absolute(cfg)))
        return 0
    out = launch(cfg, dry=args.dry_run, reprepare=args.reprepare, export=not args.no_export)
    if args.dry_run and out is not None:
        sys.stdout.write(out)  # the composed verl config is the output (pipe it to a file)
    elif out is not None:
        log.info("final agentrm checkpoint: %s", out)
    return 0
