"""Fixtures for the episode-loop tests: small index videos (each frame shows its own index) and a recording
scripted engine, so every test can check exactly which frames the model was shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrm.config import EpisodeConfig
from agentrm.data.schema import Item
from agentrm.engines.base import Context
from agentrm.engines.scripted import ScriptedEngine, ScriptTurn
from agentrm.video import VideoPool
from agentrm.video.synthetic import write_index_video


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("spine-videos")
    out = {}
    for name, n in (("short", 300), ("long", 1200)):
        out[name] = d / f"{name}.mp4"
        write_index_video(out[name], num_frames=n, fps=10, size=(256, 144), gop=50)
    out["corrupt"] = d / "corrupt.mp4"
    out["corrupt"].write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    return out


@pytest.fixture
def pool() -> VideoPool:
    return VideoPool()


@pytest.fixture
def pair(videos: dict[str, Path]) -> Item:
    return Item(id="p1", mode="pairwise", prompt="a white square pattern", videos=[str(videos["short"]),
                str(videos["long"])], labels={"VQ": "1", "MQ": "2", "TA": "tie", "OA": "1"})


@pytest.fixture
def cfg() -> EpisodeConfig:
    return EpisodeConfig()


class Recorder:
    """A scripted engine that keeps every context it was given."""

    def __init__(self, turns: list[str], rewards: list[list[float]] | None = None, **kw: object) -> None:
        self.contexts: list[Context] = []
        self.turns = turns
        self.rewards = rewards

        def respond(ctx: Context) -> ScriptTurn:
            self.contexts.append(ctx)
            if ctx.turn > len(turns):
                raise AssertionError(f"turn {ctx.turn} asked, script has {len(turns)}")
            last = ctx.turn == len(turns)
            return ScriptTurn(turns[ctx.turn - 1], rewards if last else None)

        self.engine = ScriptedEngine(responder=respond, **kw)  # type: ignore[arg-type]


def tool(name: str, think: str = "look", **args: object) -> str:
    import json

    return f"<think>{think}</think>\n<tool_call>{json.dumps({'name': name, 'arguments': args})}</tool_call>"


def answer(verdicts: dict[str, object], n_reward: int = 2) -> str:
    import json

    return f"<think>done</think>\n<answer>{json.dumps(verdicts)}</answer>" + "<Reward>" * n_reward


VERDICTS = {"VQ": "1", "MQ": "2", "TA": "tie", "OA": "1"}
