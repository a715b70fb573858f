"""The episode loop on the scripted engine: exact logic of tools, window, limits, parse errors and scoring."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentrm.config import EpisodeConfig
from agentrm.data.schema import Item
from agentrm.engines.base import Context, ImagePart
from agentrm.episode import run_episode, uniform_indices
from agentrm.trace import (
    AnswerEvent,
    LimitEvent,
    ParseErrorEvent,
    ToolErrorEvent,
    ToolResultEvent,
    Trace,
    WindowEvent,
)
from agentrm.video import VideoPool
from agentrm.video.synthetic import read_index
from tests.spine.conftest import VERDICTS, Recorder, answer, tool


def run(rec: Recorder, item: Item, cfg: EpisodeConfig, pool: VideoPool, **kw: object) -> Trace:
    return asyncio.run(run_episode(rec.engine, item, cfg, pool, **kw))  # type: ignore[arg-type]


def images(ctx: Context) -> list[ImagePart]:
    return ctx.images


def test_happy_path_pairwise(pair: Item, cfg: EpisodeConfig, pool: VideoPool) -> None:
    rec = Recorder(
        [
            tool("select_frames", video=1, frames=[10, 20, 30]),
            tool("select_range", video=2, start_s=10.0, end_s=20.0, count=5),
            answer(VERDICTS),
        ],
        rewards=[[1.0, 2.0, 3.0, 4.0], [0.5, 0.5, 0.5, 0.5]],
    )
    trace = run(rec, pair, cfg, pool)
    assert trace.termination == "answer"
    assert trace.verdicts == VERDICTS
    assert trace.rewards == [{"VQ": 1.0, "MQ": 2.0, "TA": 3.0, "OA": 4.0}, {"VQ": 0.5, "MQ": 0.5, "TA": 0.5, "OA": 0.5}]
    assert trace.num_turns == 3 and trace.frames_viewed == 8
    results = [e for e in trace.events if isinstance(e, ToolResultEvent)]
    assert [f.index for f in results[0].frames] == [10, 20, 30]
    assert [f.index for f in results[1].frames] == [100, 125, 150, 175, 200]
    assert results[1].frames[0].timestamp_s == 10.0
    # every image the model saw is exactly the frame its label names (end-to-end exactness)
    last = rec.contexts[-1]
    for part in images(last):
        assert read_index(part.pixels) == part.ref.index
    # and each image is preceded by its label
    text = "".join(p.text for m in last.messages for p in m.parts if not isinstance(p, ImagePart))
    assert "[video 1 · frame 10 · 1.00 s]" in text and "[video 2 · frame 150 · 15.00 s]" in text
    # overview: 4 low-detail frames per video, pinned, first in the context
    first_user = rec.contexts[0].messages[1]
    over = [p for p in first_user.parts if isinstance(p, ImagePart)]
    assert [(p.ref.video, p.ref.index) for p in over] == [
        (1, 37),
        (1, 112),
        (1, 187),
        (1, 262),
        (2, 150),
        (2, 450),
        (2, 750),
        (2, 1050),
    ]
    assert {p.ref.detail for p in over} == {"low"}
    assert len([e for e in trace.events if isinstance(e, WindowEvent)]) == 4  # turn 0 + one per turn


def test_window_evicts_oldest_groups_and_leaves_stubs(pair: Item, pool: VideoPool) -> None:
    cfg = EpisodeConfig()
    # 8 overview frames x 15 tokens = 120 pinned; each 3-frame high-detail group = 135 tokens -> room for 2 groups
    cfg.window.max_visual_tokens = 120 + 2 * 135
    cfg.window.max_frames = None
    calls = [tool("select_frames", video=1 + t % 2, frames=[t * 10 + 1, t * 10 + 2, t * 10 + 3]) for t in range(5)]
    rec = Recorder([*calls, answer(VERDICTS)])
    trace = run(rec, pair, cfg, pool)
    assert trace.termination == "answer"
    windows = [e for e in trace.events if isinstance(e, WindowEvent)]
    kept = [[g.group for g in w.state.groups if not g.evicted and not g.pinned] for w in windows]
    assert kept == [
        [],
        ["turn-1"],
        ["turn-1", "turn-2"],
        ["turn-2", "turn-3"],
        ["turn-3", "turn-4"],
        ["turn-4", "turn-5"],
        ["turn-4", "turn-5"],
    ]
    for ctx in rec.contexts:
        assert ctx.visual_tokens() <= cfg.window.max_visual_tokens
    final = rec.contexts[-1]
    shown = {(p.ref.video, p.ref.index) for p in final.images if p.ref.detail == "high"}
    assert shown == {(1, 41), (1, 42), (1, 43), (2, 31), (2, 32), (2, 33)}
    text = "".join(m.text for m in final.messages)
    assert "[no longer in memory: video 1 frames 1 (0.10 s), 2 (0.20 s), 3 (0.30 s); call select_frames again" in text
    # pinned overview stays first: the first two messages are identical across all turns (prefix-cache friendly)
    firsts = {tuple((m.role, m.text) for m in c.messages[:2]) for c in rec.contexts}
    assert len(firsts) == 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (tool("select_frames", video=3, frames=[1]), "video 3 does not exist; choose one of: 1, 2"),
        (
            tool("select_frames", video=1, frames=[299, 300]),
            "frame(s) [300] are outside video 1, whose frames are 0..299",
        ),
        (tool("select_frames", video=1, frames=[5, 5]), "frame(s) [5] are requested more than once"),
        (tool("select_frames", video=1, frames=list(range(9))), "9 frames requested but one call may return at most 8"),
        (tool("select_frames", video=1, frames=[1], detail="ultra"), "detail 'ultra' is not one of ['high', 'low']"),
        (tool("select_frames", video=1), "missing argument 'frames'"),
        (tool("select_frames", video=1, frames=[1], zoom=2), "unknown argument 'zoom'"),
        (tool("select_range", video=1, start_s=5.0, end_s=2.0, count=2), "end_s 2.0 is before start_s 5.0"),
        (
            tool("select_range", video=1, start_s=0.0, end_s=31.0, count=2),
            "past the end of video 1 (last frame at 29.90 s)",
        ),
        (tool("select_range", video=1, start_s=1.0, end_s=1.2, count=5), "holds only 3 frame(s); ask for count <= 3"),
    ],
)
def test_tool_errors_go_back_to_the_model(
    call: str, message: str, pair: Item, cfg: EpisodeConfig, pool: VideoPool
) -> None:
    rec = Recorder([call, answer(VERDICTS)])
    trace = run(rec, pair, cfg, pool)
    assert trace.termination == "answer"  # the episode went on
    errors = [e for e in trace.events if isinstance(e, ToolErrorEvent)]
    assert len(errors) == 1 and message in errors[0].message
    assert message in rec.contexts[1].messages[-1].text  # shown to the model as the tool result


def test_window_too_small_for_a_call_is_a_tool_error(pair: Item, pool: VideoPool) -> None:
    cfg = EpisodeConfig()
    cfg.window.max_visual_tokens = 120 + 100  # 100 tokens left: two 45-token high frames fit, three do not
    rec = Recorder([tool("select_frames", video=1, frames=[1, 2, 3]), answer(VERDICTS)])
    trace = run(rec, pair, cfg, pool)
    err = next(e for e in trace.events if isinstance(e, ToolErrorEvent))
    assert "ask for at most 2 frames at this detail" in err.message


def test_repeated_call_gets_a_notice_not_frames(pair: Item, cfg: EpisodeConfig, pool: VideoPool) -> None:
    call = tool("select_frames", video=1, frames=[7, 8])
    rec = Recorder([call, call, answer(VERDICTS)])
    trace = run(rec, pair, cfg, pool)
    results = [e for e in trace.events if isinstance(e, ToolResultEvent)]
    assert results[1].repeated and results[1].frames == []
    assert "You already made this exact call in turn 1" in rec.contexts[2].messages[-1].text
    assert trace.frames_viewed == 2


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("I think video 1 is better.", "no_action"),
        ("<tool_call>{'name': 'select_frames'}</tool_call>", "malformed_json"),
        ('<tool_call>{"name": "zoom", "arguments": {}}</tool_call>', "unknown_tool"),
        (
            tool("select_frames", video=1, frames=[1]) + tool("select_frames", video=1, frames=[2]),
            "multiple_tool_calls",
        ),
        (tool("select_frames", video=1, frames=[1]) + answer(VERDICTS), "answer_and_tool_call"),
        (answer(VERDICTS, n_reward=0), "missing_reward_token"),
        (answer(VERDICTS, n_reward=3), "extra_reward_token"),
        (answer({**VERDICTS, "OA": "3"}), "bad_answer"),
    ],
)
def test_format_errors_are_named_and_the_episode_goes_on(
    text: str, kind: str, pair: Item, cfg: EpisodeConfig, pool: VideoPool
) -> None:
    rec = Recorder([text, answer(VERDICTS)])
    trace = run(rec, pair, cfg, pool)
    errs = [e for e in trace.events if isinstance(e, ParseErrorEvent)]
    assert [e.error for e in errs] == [kind]
    assert f"Format error ({kind})" in rec.contexts[1].messages[-1].text
    assert trace.termination == "answer"


def test_max_turns_warns_then_ends_without_reward(pair: Item, pool: VideoPool) -> None:
    cfg = EpisodeConfig()
    cfg.limits.max_turns = 3
    rec = Recorder([tool("select_frames", video=1, frames=[i]) for i in range(3)], rewards=[[9.0] * 4] * 2)
    trace = run(rec, pair, cfg, pool)
    assert trace.termination == "max_turns" and trace.rewards is None and trace.verdicts is None
    limit = [e for e in trace.events if isinstance(e, LimitEvent)]
    assert [(e.limit, e.turn) for e in limit] == [("max_turns", 2)]
    assert "Limit reached (max_turns)" in rec.contexts[2].messages[-1].text
    assert len(rec.contexts) == 3


def test_malformed_final_answer_after_limit_is_format(pair: Item, pool: VideoPool) -> None:
    cfg = EpisodeConfig()
    cfg.limits.max_turns = 2
    rec = Recorder([tool("select_frames", video=1, frames=[1]), "<answer>{oops</answer><Reward><Reward>"])
    assert run(rec, pair, cfg, pool).termination == "format"


def test_frame_budget_forces_an_answer(pair: Item, pool: VideoPool) -> None:
    cfg = EpisodeConfig()
    cfg.limits.max_total_frames = 4
    rec = Recorder(
        [
            tool("select_frames", video=1, frames=[1, 2, 3]),
            tool("select_frames", video=1, frames=[4, 5]),  # 2 > 1 left: a tool error, not a limit
            tool("select_frames", video=1, frames=[4]),  # uses the budget up: limit, must answer
            tool("select_frames", video=2, frames=[4]),
        ]
    )
    trace = run(rec, pair, cfg, pool)
    errs = [e for e in trace.events if isinstance(e, ToolErrorEvent)]
    assert "only 1 of the episode's 4 frames are left" in errs[0].message
    assert trace.termination == "max_frames" and trace.frames_viewed == 4


def test_truncated_turn_is_told_and_must_answer(pair: Item, pool: VideoPool) -> None:
    cfg = EpisodeConfig()
    cfg.limits.max_new_tokens = 10  # the answer below is 9 words
    rec = Recorder(["<think> " + "word " * 20 + "</think>", answer(VERDICTS)])
    trace = run(rec, pair, cfg, pool)
    assert [e.limit for e in trace.events if isinstance(e, LimitEvent)] == ["max_new_tokens"]
    assert trace.termination == "answer"


def test_context_limit_ends_the_episode(pair: Item, pool: VideoPool) -> None:
    cfg = EpisodeConfig()
    cfg.limits.max_context_tokens = 300
    rec = Recorder([answer(VERDICTS)])
    trace = run(rec, pair, cfg, pool)
    assert trace.termination == "max_context" and rec.contexts == []


def test_corrupt_video_fails_the_sample(videos: dict[str, Path], cfg: EpisodeConfig, pool: VideoPool) -> None:
    item = Item(id="bad", mode="pairwise", prompt="x", videos=[str(videos["short"]), str(videos["corrupt"])])
    trace = run(Recorder([answer(VERDICTS)]), item, cfg, pool)
    assert trace.termination == "video_error" and "corrupt.mp4" in (trace.error or "")


def test_pointwise_episode(videos: dict[str, Path], pool: VideoPool) -> None:
    cfg = EpisodeConfig(mode="pointwise")
    item = Item(id="pt", mode="pointwise", prompt="x", videos=[str(videos["long"])])
    scores = {"VQ": 4, "MQ": 2.5, "TA": 5, "OA": 3}
    rec = Recorder(
        [tool("select_range", video=1, start_s=0, end_s=100, count=4), answer(scores, n_reward=1)],
        rewards=[[0.1, 0.2, 0.3, 0.4]],
    )
    trace = run(rec, item, cfg, pool)
    assert trace.termination == "answer" and trace.verdicts == {k: float(v) for k, v in scores.items()}
    assert trace.rewards == [{"VQ": 0.1, "MQ": 0.2, "TA": 0.3, "OA": 0.4}]
    assert "select_range" in rec.contexts[0].messages[0].text  # tool schema in the system prompt


def test_normalisation_is_applied(pair: Item, cfg: EpisodeConfig, pool: VideoPool) -> None:
    rec = Recorder([answer(VERDICTS)], rewards=[[1.0, 1.0, 1.0, 3.0], [0.0, 0.0, 0.0, 1.0]])
    trace = run(rec, pair, cfg, pool, normalization={"OA": (1.0, 2.0)})
    assert trace.rewards is not None and trace.raw_rewards is not None
    assert trace.rewards[0]["OA"] == 1.0 and trace.rewards[1]["OA"] == 0.0 and trace.rewards[0]["VQ"] == 1.0
    assert trace.raw_rewards[0]["OA"] == 3.0


def test_uniform_policy_fills_the_same_budget_in_one_turn(pair: Item, pool: VideoPool) -> None:
    cfg = EpisodeConfig()
    cfg.window.max_visual_tokens = 900
    cfg.window.max_frames = None
    rec = Recorder([answer(VERDICTS)])
    trace = run(rec, pair, cfg, pool, policy="uniform")
    ctx = rec.contexts[0]
    # 900 tokens / 2 videos / 45 tokens per high-detail frame = 10 frames per video
    assert [p.ref.index for p in ctx.images if p.ref.video == 1] == uniform_indices(300, 10)
    assert ctx.visual_tokens() == 900
    assert "<tool_call>" not in ctx.messages[0].text and trace.policy == "uniform"
    assert trace.termination == "answer"


def test_uniform_indices() -> None:
    assert uniform_indices(100, 4) == [12, 37, 62, 87]
    assert uniform_indices(3, 8) == [0, 1, 2]


def test_answer_event_and_timings(pair: Item, cfg: EpisodeConfig, pool: VideoPool) -> None:
    trace = run(Recorder([answer(VERDICTS)]), pair, cfg, pool)
    assert isinstance([e for e in trace.events if isinstance(e, AnswerEvent)][0], AnswerEvent)
    assert trace.timings["total_s"] >= trace.timings["generate_s"] >= 0
    assert trace.videos[1].num_frames == 1200 and trace.videos[1].duration_s == pytest.approx(120.0, abs=0.2)


def test_prompt_dir_from_the_config_replaces_templates(pair: Item, pool: VideoPool, tmp_path: Path) -> None:
    (tmp_path / "frame_label.j2").write_text("<f{{ ref.video }}:{{ ref.index }}>")
    cfg = EpisodeConfig(prompt_dir=str(tmp_path))
    rec = Recorder([answer(VERDICTS)])
    run(rec, pair, cfg, pool)
    text = "".join(m.text for m in rec.contexts[0].messages)
    assert "<f1:37>" in text and "[video 1 · frame 37" not in text
