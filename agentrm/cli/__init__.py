"""`agentrm` command line. Each sub-command is one module here exposing `add_arguments(parser)`; its
`run(args) -> int` returns the exit code. Keeping commands in their own modules keeps imports lazy: `agentrm frames`
does not import torch."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from agentrm.errors import AgentrmError

# (sub-command module, one-line help). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("agentrm.cli.demo", "score synthetic videos with the embedded default model; print how to view them"),
    "score": ("agentrm.cli.score", "judge videos/benchmarks with a reward model; one trace per sample (resumable)"),
    "replay": ("agentrm.cli.replay", "run the loop with scripted model turns (a script or earlier traces)"),
    "frames": ("agentrm.cli.frames", "print a video's metadata and write chosen frames as PNG"),
    "view": ("agentrm.cli.view", "browse traces in a local web viewer (runs, samples, episodes, pairs)"),
    "eval": ("agentrm.cli.eval", "accuracy of runs or scores vs human labels: report.json, .md, plots"),
    "synth": ("agentrm.cli.synth", "synthetic long-video preference task: data, teacher traces, learning proof"),
    "train": ("agentrm.cli.train", "training stages: cold-start, rs-sample, sft, export (LoRA merge)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentrm", description=__doc__.split(".")[0] if __doc__ else None)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args))
    except AgentrmError as exc:
        logging.getLogger("agentrm").error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
