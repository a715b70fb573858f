"""Shared fixtures. Tests run on one thread: on these shared cores a tiny model step is ~30x faster that way."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile

import pytest
import torch

torch.set_num_threads(1)
# keep packet indexes, thumbnails and tiny models of test runs out of the user's ~/.cache
os.environ.setdefault("AGENTRM_CACHE", tempfile.mkdtemp(prefix="agentrm-test-cache-"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    has_gpu = torch.cuda.is_available()
    has_verl = importlib.util.find_spec("verl") is not None
    has_ray = importlib.util.find_spec("ray") is not None
    has_browser = importlib.util.find_spec("playwright") is not None and shutil.which("chromium") is not None
    reasons = {
        "gpu": (has_gpu, "needs a CUDA GPU"),
        "verl": (has_verl, "needs verl (pip install -e '.[verl]')"),
        "ray": (has_ray, "needs ray (pip install -e '.[ray]')"),
        "browser": (has_browser, "needs Debian chromium + playwright"),
        "slow": (config.getoption("--runslow"), "slow: run with --runslow"),
    }
    for item in items:
        for marker, (ok, why) in reasons.items():
            if marker in item.keywords and not ok:
                item.add_marker(pytest.mark.skip(reason=why))


# ---- tiny offline Qwen-VL checkpoints (agentrm.testing.tiny), built once per session ----

from pathlib import Path  # noqa: E402  (appended section; the imports above belong to the lead)


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both tiny checkpoints ({"qwen2_5_vl": dir, "qwen3_vl": dir}), built into a session tmp dir (~0.5 s)."""
    from agentrm.testing import TINY_KINDS, build_tiny_model

    root = tmp_path_factory.mktemp("tiny-models")
    return {kind: build_tiny_model(kind, root / kind) for kind in TINY_KINDS}


@pytest.fixture(scope="session", params=["qwen2_5_vl", "qwen3_vl"])
def tiny_model_dir(request: pytest.FixtureRequest, tiny_model_dirs: dict[str, Path]) -> Path:
    """A tiny checkpoint dir; tests using it run once per model family. Read-only: copy it to change it."""
    return tiny_model_dirs[request.param]


@pytest.fixture(scope="session")
def tiny_qwen2_5_vl_dir(tiny_model_dirs: dict[str, Path]) -> Path:
    return tiny_model_dirs["qwen2_5_vl"]


@pytest.fixture(scope="session")
def tiny_qwen3_vl_dir(tiny_model_dirs: dict[str, Path]) -> Path:
    return tiny_model_dirs["qwen3_vl"]
