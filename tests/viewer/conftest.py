"""A small but realistic trace folder (agentrm.viewer.synth.write_demo): two index videos, two runs of
pairwise traces (right, wrong, unanswered, tool and parse errors, evicted window groups), one corrupt line in
run_a and a torn last line in run_b. Built once per session; each test gets a private copy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agentrm.viewer.synth import write_demo


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("viewer-demo")
    write_demo(root)
    return root


@pytest.fixture
def trace_dir(demo_root: Path, tmp_path: Path) -> Path:
    """A private copy of the demo's traces folder (tests append to, rewrite and corrupt the files)."""
    shutil.copytree(demo_root, tmp_path / "data")
    return tmp_path / "data" / "traces"


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"
