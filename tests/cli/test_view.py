"""`agentrm view`: arguments, and the refusals that happen before anything is served."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from agentrm.cli import COMMANDS, view
from agentrm.errors import AgentrmError


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    view.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_registered_with_local_defaults() -> None:
    assert COMMANDS["view"][0] == "agentrm.cli.view"
    args = parse("traces/")
    assert (args.host, args.port, args.no_browser, args.allow_remote) == ("127.0.0.1", 8765, False, False)


def test_remote_host_without_flag_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    with pytest.raises(AgentrmError, match="--allow-remote"):
        view.run(parse(str(tmp_path), "--host", "0.0.0.0", "--no-browser"))


def test_missing_trace_path_names_it(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    missing = tmp_path / "nope"
    with pytest.raises(AgentrmError, match="nope: no such trace file or directory"):
        view.run(parse(str(missing), "--no-browser", "--cache-dir", str(tmp_path / "cache")))
