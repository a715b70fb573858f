"""Every prompt template renders (StrictUndefined: a missing variable fails), and tool schemas come from types."""

from __future__ import annotations

from importlib import resources

import pytest

from agentrm.config import EpisodeConfig
from agentrm.errors import ConfigError
from agentrm.prompting import TEMPLATES, Prompts
from agentrm.render import answer_example, reward_tokens
from agentrm.tooling import get_tools, tool_schema
from agentrm.trace import FrameRef, VideoInfo

REF = FrameRef(video=2, index=120, timestamp_s=4.0, detail="high", width=252, height=140, tokens=45)
VARS = {
    "system.j2": lambda cfg: {
        "mode": cfg.mode, "dims": cfg.dims, "tools": [tool_schema(t) for t in get_tools(cfg.tools).values()],
        "overview_frames": 4, "window_desc": "2048 visual tokens", "limits": cfg.limits,
        "answer_example": answer_example(cfg), "reward_tokens": reward_tokens(cfg), "reward_token": "<Reward>",
        "score_range": cfg.score_range},
    "intro.j2": lambda cfg: {"prompt": "a cat", "uniform": False, "frames_per_video": 4, "videos": [
        VideoInfo(video=1, path="a.mp4", num_frames=300, fps=30, duration_s=10, width=640, height=360)]},
    "frame_label.j2": lambda cfg: {"ref": REF},
    "tool_result.j2": lambda cfg: {"name": "select_frames", "frames": [REF], "note": ""},
    "tool_result_end.j2": lambda cfg: {},
    "evicted.j2": lambda cfg: {"name": "select_frames", "frames": [REF, REF]},
    "tool_error.j2": lambda cfg: {"name": "select_frames", "message": "frame 999 is outside"},
    "repeated_call.j2": lambda cfg: {"first_turn": 2},
    "parse_error.j2": lambda cfg: {"error": "malformed_json", "message": "bad"},
    "limit.j2": lambda cfg: {"limit": "max_turns", "message": "last turn.", "reward_tokens": "<Reward>"},
}


def test_every_packaged_template_is_known_and_covered() -> None:
    packaged = {p.name for p in resources.files("agentrm.prompts").iterdir() if p.name.endswith(".j2")}
    assert packaged == set(TEMPLATES) == set(VARS)


@pytest.mark.parametrize("mode", ["pairwise", "pointwise"])
@pytest.mark.parametrize("name", TEMPLATES)
def test_template_renders(name: str, mode: str) -> None:
    cfg = EpisodeConfig(mode=mode)
    text = Prompts().render(name, **VARS[name](cfg))
    assert text.strip()


def test_system_prompt_contents() -> None:
    cfg = EpisodeConfig()
    text = Prompts().render("system.j2", **VARS["system.j2"](cfg))
    assert '"name": "select_range"' in text and '"start_s"' in text  # schema generated from the Params model
    assert "<Reward><Reward>" in text and "video 1 first" in text
    assert Prompts().render("frame_label.j2", ref=REF).strip() == "[video 2 · frame 120 · 4.00 s]"


def test_missing_variable_fails_loudly() -> None:
    with pytest.raises(ConfigError, match="'ref' is undefined"):
        Prompts().render("frame_label.j2")


def test_prompt_dir_overrides_a_template(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "frame_label.j2").write_text("<frame {{ ref.index }}>")
    assert Prompts(tmp_path).render("frame_label.j2", ref=REF) == "<frame 120>"
    assert "Error from" in Prompts(tmp_path).render("tool_error.j2", name="x", message="y")
