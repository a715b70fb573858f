"""`agentrm view TRACES`: browse agentic traces in a local web viewer (runs, samples, episodes, pairs, diffs).

    agentrm view out/traces                 # a folder of .jsonl runs (searched recursively)
    agentrm view out/traces/run.jsonl       # or one file
    agentrm view out/traces --port 9000 --no-browser

Binds 127.0.0.1 by default; another host needs --allow-remote (there is no authentication). Needs the `viewer`
extra (pip install -e '.[viewer]'). fastapi and uvicorn are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import importlib.util

from agentrm.errors import AgentrmError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="a trace .jsonl file, or a folder of them (each file is one run)")
    parser.add_argument("--port", type=int, default=8765, help="port to serve on; the next free one if taken")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    parser.add_argument(
        "--allow-remote", action="store_true", help="required with a non-loopback --host (no authentication!)"
    )
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    parser.add_argument(
        "--cache-dir", default=None, help="index + thumbnail cache (default: $AGENTRM_CACHE or ~/.cache)"
    )


def run(args: argparse.Namespace) -> int:
    missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise AgentrmError(f"agentrm view needs {', '.join(missing)}: pip install -e '.[viewer]'")
    from rich.console import Console

    from agentrm.viewer.server import serve

    console = Console(stderr=True, highlight=False)
    return serve(
        args.path,
        host=args.host,
        port=args.port,
        open_browser=not args.no_browser,
        allow_remote=args.allow_remote,
        cache_dir=args.cache_dir,
        announce=lambda line: console.print(line, markup=False),
    )
