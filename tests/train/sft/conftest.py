"""Fixtures for the training-stage tests: small index videos, pairwise items, and traces recorded by the real loop
with a recording scripted engine (so tests can compare training contexts with what the loop showed)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agentrm.config import EpisodeConfig
from agentrm.data.schema import Item
from agentrm.engines.base import Context
from agentrm.engines.scripted import ScriptedEngine, ScriptTurn
from agentrm.episode import run_episode
from agentrm.trace import Trace, TraceWriter
from agentrm.video import VideoPool
from agentrm.video.synthetic import write_index_video

FACTORS = {"qwen2_5_vl": 28, "qwen3_vl": 32}
GOOD_SCRIPT_VERDICTS = {"VQ": "1", "MQ": "2", "TA": "tie", "OA": "1"}
LABELS = [
    GOOD_SCRIPT_VERDICTS,
    {"VQ": "2", "MQ": "2", "TA": "1", "OA": "2"},
]


def tool(name: str, think: str = "look closer", **args: object) -> str:
    return f"<think>{think}</think>\n<tool_call>{json.dumps({'name': name, 'arguments': args})}</tool_call>"


def answer(verdicts: dict[str, object], n_reward: int = 2, think: str = "video 1 is sharper") -> str:
    return f"<think>{think}</think>\n<answer>{json.dumps(verdicts)}</answer>" + "<Reward>" * n_reward


def small_config(evict: bool = True) -> EpisodeConfig:
    """2 overview frames per video (few images keep CPU steps fast). With `evict` the window holds the overview
    + 2 frames, so the second tool result evicts the first."""
    cfg = EpisodeConfig()
    cfg.overview.frames_per_video = 2
    cfg.window.max_frames = 6 if evict else 24
    return cfg


def evicting_config() -> EpisodeConfig:
    return small_config(evict=True)


def script_for(verdicts: dict[str, object]) -> list[str]:
    return [tool("select_frames", video=1, frames=[10, 20]), tool("select_frames", video=2, frames=[5]),
            answer(verdicts)]


@dataclass
class Recorded:
    traces: list[Trace]
    contexts: dict[str, list[Context]] = field(default_factory=dict)  # sample id -> context of each turn


def record(items: list[Item], scripts: dict[str, list[str]], cfg: EpisodeConfig, factor: int,
           out: Path | None = None) -> Recorded:
    """Run the real loop over `items` with a scripted engine that keeps every context it was given."""
    rec = Recorded([])

    def respond(ctx: Context) -> ScriptTurn:
        rec.contexts.setdefault(ctx.sample_id, []).append(ctx)
        return ScriptTurn(scripts[ctx.sample_id][ctx.turn - 1])

    engine = ScriptedEngine(responder=respond, factor=factor)
    with VideoPool() as pool:
        for item in items:
            rec.traces.append(asyncio.run(run_episode(engine, item, cfg, pool)))
    if out is not None:
        with TraceWriter(out) as w:
            for t in rec.traces:
                w.write(t)
    return rec


@pytest.fixture(scope="session")
def sft_videos(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    d = tmp_path_factory.mktemp("sft-videos")
    paths = []
    for i in range(2):
        p = d / f"v{i}.mp4"
        write_index_video(p, num_frames=60, fps=10, size=(128, 72), gop=20)
        paths.append(str(p))
    return paths


def pair_items(videos: list[str], labels: list[dict[str, str]] = LABELS) -> list[Item]:
    return [Item(id=f"p{k}", mode="pairwise", prompt=f"a white square pattern {k}", videos=videos, labels=lab)
            for k, lab in enumerate(labels)]


@pytest.fixture(scope="session")
def pair_traces(sft_videos: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Per tiny model kind: a JSONL of 2 pairwise 3-turn traces (tool, tool with an eviction, answer)."""
    d = tmp_path_factory.mktemp("sft-traces")
    out = {}
    items = pair_items(sft_videos)
    for kind, factor in FACTORS.items():
        out[kind] = d / f"{kind}.jsonl"
        record(items, {i.id: script_for(i.labels) for i in items}, evicting_config(), factor, out[kind])
    return out
