"""Fixtures for the GRPO/verl tests: tiny index videos, labelled items, a prepared tiny model dir, and the CPU
platform shim verl's FSDP engine needs (verl has no CPU platform; this one is test-only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentrm.data.schema import Item
from agentrm.video.synthetic import write_index_video


@pytest.fixture(scope="session")
def grpo_videos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("grpo-videos")
    out = []
    for i, n in enumerate((40, 60)):
        p = d / f"v{i}.mp4"
        write_index_video(p, num_frames=n, fps=10, size=(128, 72), gop=20)
        out.append(p)
    return out


@pytest.fixture(scope="session")
def grpo_items(grpo_videos: list[Path]) -> list[Item]:
    v = [str(p) for p in grpo_videos]
    return [
        Item(id="pair-a", mode="pairwise", prompt="a cat", videos=[v[0], v[1]],
             labels={"VQ": "1", "MQ": "2", "TA": "tie", "OA": "1"}),
        Item(id="pair-b", mode="pairwise", prompt="a dog", videos=[v[1], v[0]],
             labels={"VQ": "2", "MQ": "2", "TA": "1", "OA": "2"}),
    ]


@pytest.fixture(scope="session")
def items_jsonl(tmp_path_factory: pytest.TempPathFactory, grpo_items: list[Item]) -> Path:
    p = tmp_path_factory.mktemp("grpo-data") / "items.jsonl"
    p.write_text("".join(json.dumps(i.model_dump(mode="json")) + "\n" for i in grpo_items))
    return p


@pytest.fixture(scope="session")
def prepared_dir(tmp_path_factory: pytest.TempPathFactory, tiny_qwen2_5_vl_dir: Path) -> Path:
    """The tiny Qwen2.5-VL prepared for GRPO the way the launcher does it (reward token, head, settings)."""
    from agentrm.config import EpisodeConfig
    from agentrm.train.grpo_config import AuxLossConfig
    from agentrm.train.grpo_prepare import prepare_model_dir

    out = tmp_path_factory.mktemp("grpo-model") / "model"
    return prepare_model_dir(str(tiny_qwen2_5_vl_dir), out, EpisodeConfig(), AuxLossConfig(coef=0.5))
