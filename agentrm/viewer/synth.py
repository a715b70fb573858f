"""Synthetic but schema-true agentic traces, for the viewer's tests, its benchmark and its screenshot.

A real `agentrm score` run needs a model; the viewer only needs traces that look like one. These follow the
episode loop's shape: a turn-0 window with the pinned overview of each video, then per turn a model event, a
tool call and its result (or a tool error), a window event that evicts the oldest tool groups once the window
is full, and a final answer turn with verdicts and head rewards. What they simplify: the text is canned, token
costs use a 28-px factor, and the window keeps the last `keep_groups` tool groups instead of applying a token
budget.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentrm.trace import (
    AnswerEvent,
    Event,
    FrameGroupState,
    FrameRef,
    LimitEvent,
    ModelTurnEvent,
    ParseErrorEvent,
    Termination,
    ToolCallEvent,
    ToolErrorEvent,
    ToolResultEvent,
    Trace,
    TraceInputs,
    VideoInfo,
    WindowEvent,
    WindowState,
)

DIMS = ["VQ", "MQ", "TA", "OA"]
DETAILS = {"low": 112 * 112, "high": 336 * 336}
_THOUGHTS = [
    "The overview of video {v} suggests motion around {t:.1f}s; I should look closer.",
    "Frame {i} of video {v} shows a hand that looks distorted, which may hurt visual quality.",
    "Video {v} keeps the subject consistent, but the camera jumps near {t:.1f}s.",
    "I cannot tell from the low-detail overview whether the text in video {v} is legible.",
    "Comparing the two videos, the motion in video {v} is smoother between frames.",
]


def _size(info: VideoInfo, max_pixels: int, factor: int = 28) -> tuple[int, int]:
    """(width, height) of a frame resized to at most max_pixels, both multiples of factor (Qwen-VL style)."""
    scale = min(1.0, (max_pixels / max(1, info.width * info.height)) ** 0.5)
    w = max(factor, int(info.width * scale) // factor * factor)
    h = max(factor, int(info.height * scale) // factor * factor)
    return w, h


def frame_ref(info: VideoInfo, index: int, detail: str) -> FrameRef:
    w, h = _size(info, DETAILS[detail])
    return FrameRef(
        video=info.video,
        index=index,
        timestamp_s=round(index / info.fps, 3),
        detail=detail,
        width=w,
        height=h,
        tokens=(w // 28) * (h // 28),
    )


def _window(groups: list[FrameGroupState]) -> WindowState:
    kept = [g for g in groups if not g.evicted]
    return WindowState(
        groups=[g.model_copy(deep=True) for g in groups],
        visual_tokens=sum(f.tokens for g in kept for f in g.frames),
        frames=sum(len(g.frames) for g in kept),
    )


def synthetic_trace(
    sample_id: str,
    videos: Sequence[VideoInfo],
    *,
    rng: random.Random,
    label: str = "1",
    verdict: str | None = "1",
    tool_turns: int = 2,
    tool_error_turn: int | None = None,
    parse_error_turn: int | None = None,
    keep_groups: int = 1,
    overview_frames: int = 4,
    text_chars: int = 300,
    termination: Termination = "answer",
) -> Trace:
    """One pairwise (two videos) or pointwise (one video) episode. `verdict=None` with termination max_turns
    makes an episode that never answered."""
    mode = "pairwise" if len(videos) == 2 else "pointwise"
    groups = [
        FrameGroupState(
            group=f"overview-{v.video}",
            pinned=True,
            frames=[
                frame_ref(v, round(k * (v.num_frames - 1) / max(1, overview_frames - 1)), "low")
                for k in range(overview_frames)
            ],
        )
        for v in videos
    ]
    events: list[Event] = [WindowEvent(turn=0, state=_window(groups))]
    seen: set[tuple[int, int]] = set()
    for turn in range(1, tool_turns + 1):
        events += _tool_turn(
            turn, videos, groups, seen, rng, text_chars, keep_groups, tool_error_turn, parse_error_turn
        )
    final = tool_turns + 1
    answered = termination == "answer" and verdict is not None
    verdicts: dict[str, str | float] | None = None
    if answered:
        verdicts = {d: (verdict if d == "OA" else rng.choice(["1", "2"])) for d in DIMS}  # type: ignore[misc]
        answer = "\n".join(f"{d}: video {verdicts[d]} is better <Reward>" for d in DIMS)
        events.append(_model(final, f"<think>I have seen enough.</think>\n<answer>\n{answer}\n</answer>", rng))
        events.append(AnswerEvent(turn=final, verdicts=verdicts))
    else:
        events.append(LimitEvent(turn=tool_turns, limit="max_turns", message="turn limit reached without answer"))
    return Trace(
        id=sample_id,
        inputs=TraceInputs(
            sample_id=sample_id,
            mode=mode,
            prompt="Which video better follows the prompt: a dog catching a frisbee on a beach at sunset?",
            videos=[v.path for v in videos],
            dims=list(DIMS),
            labels={d: (label if d == "OA" else rng.choice(["1", "2"])) for d in DIMS},
        ),
        videos=list(videos),
        events=events,
        verdicts=verdicts,
        rewards=_rewards(verdicts, len(videos), rng) if verdicts else None,
        num_turns=final if answered else tool_turns,
        frames_viewed=len(seen),
        termination=termination,
        engine={"kind": "scripted", "model": "synthetic"},
        config={"overall_dim": "OA", "window": {"max_frames": 12}},
        timings={"total_s": round(rng.uniform(2, 20), 2)},
    )


def _tool_turn(
    turn: int,
    videos: Sequence[VideoInfo],
    groups: list[FrameGroupState],
    seen: set[tuple[int, int]],
    rng: random.Random,
    text_chars: int,
    keep_groups: int,
    tool_error_turn: int | None,
    parse_error_turn: int | None,
) -> list[Event]:
    """One tool turn: the model's call, then a format error, a tool error, or frames and the window after them."""
    v = videos[rng.randrange(len(videos))]
    start = rng.randrange(max(1, v.num_frames - 8))
    indices = sorted({min(v.num_frames - 1, start + k * rng.randint(1, 3)) for k in range(rng.randint(2, 4))})
    thought = " ".join(rng.choice(_THOUGHTS).format(v=v.video, t=start / v.fps, i=start) for _ in range(8))
    args = {"video": v.video, "indices": indices, "detail": "high"}
    events: list[Event] = [_model(turn, f"<think>{thought[:text_chars]}</think>\n<tool_call>{args}</tool_call>", rng)]
    if turn == parse_error_turn:
        return [*events, ParseErrorEvent(turn=turn, error="malformed_json", message="tool_call is not JSON")]
    events.append(ToolCallEvent(turn=turn, name="select_frames", arguments=args))
    if turn == tool_error_turn:
        msg = f"index {v.num_frames + 5} is outside video {v.video} (0..{v.num_frames - 1})"
        return [*events, ToolErrorEvent(turn=turn, name="select_frames", message=msg)]
    frames = [frame_ref(v, i, "high") for i in indices]
    seen.update((f.video, f.index) for f in frames)
    listing = ", ".join(f"{f.index} ({f.timestamp_s:.2f}s)" for f in frames)
    events.append(
        ToolResultEvent(turn=turn, name="select_frames", text=f"Video {v.video}: frames {listing}", frames=frames)
    )
    groups.append(FrameGroupState(group=f"turn-{turn}", pinned=False, frames=frames))
    tool_groups = [g for g in groups if not g.pinned]
    for g in tool_groups[:-keep_groups] if keep_groups else tool_groups:
        g.evicted = True
    return [*events, WindowEvent(turn=turn, state=_window(groups))]


def _model(turn: int, text: str, rng: random.Random) -> ModelTurnEvent:
    return ModelTurnEvent(
        turn=turn,
        text=text,
        prompt_tokens=900 + 350 * turn,
        completion_tokens=len(text) // 4,
        finish_reason="stop",
        latency_s=round(rng.uniform(0.3, 2.5), 3),
    )


def _rewards(verdicts: dict[str, str | float], n: int, rng: random.Random) -> list[dict[str, float]]:
    """Head rewards that agree with each verdict: the preferred video gets the larger reward."""
    out: list[dict[str, float]] = [{} for _ in range(n)]
    for d, v in verdicts.items():
        gap = rng.uniform(0.05, 2.0)
        base = rng.uniform(-1, 1)
        if n == 1:
            out[0][d] = round(base, 4)
            continue
        hi, lo = round(base + gap / 2, 4), round(base - gap / 2, 4)
        out[0][d], out[1][d] = (hi, lo) if str(v) == "1" else (lo, hi)
    return out


def video_info(video: int, path: str, num_frames: int, fps: float, width: int, height: int) -> VideoInfo:
    return VideoInfo(
        video=video,
        path=path,
        num_frames=num_frames,
        fps=fps,
        duration_s=round(num_frames / fps, 3),
        width=width,
        height=height,
    )


# The demo folder (tests, screenshot): sample id -> (label, verdict or None, synthetic_trace options)
# of run_a; run_b answers the same samples with these verdicts, after one tool turn each.
DEMO_RUN_A: dict[str, tuple[str, str | None, dict[str, Any]]] = {
    "s00": ("1", "1", {}),
    "s01": ("2", "1", {"tool_turns": 3}),  # wrong, with evicted groups
    "s02": ("1", "1", {"tool_error_turn": 2, "tool_turns": 3}),
    "s03": ("2", "2", {}),
    "s04": ("1", None, {"termination": "max_turns"}),  # never answered: wrong
    "s05": ("2", "1", {"parse_error_turn": 1}),  # wrong
    "s06": ("1", "1", {"tool_turns": 1}),
}
DEMO_RUN_B_VERDICTS = {"s00": "2", "s01": "2", "s02": "1", "s03": "2", "s04": "1", "s05": "1", "s06": "1"}
DEMO_CORRUPT_AFTER = "s03"  # run_a: a line cut in half follows this sample (line 5)


def write_demo(root: str | Path, size: tuple[int, int] = (96, 64)) -> Path:
    """Write videos/{a,b}.mp4 (index videos) and traces/{run_a,run_b}.jsonl under root; returns traces/.

    run_a has one corrupt line (line 5); run_b ends with a torn line, as a killed writer leaves it. Video
    paths in the traces are relative to the traces folder, as a scoring run started next to its data writes
    them."""
    from agentrm.video.synthetic import write_index_video

    root = Path(root)
    (root / "videos").mkdir(parents=True, exist_ok=True)
    write_index_video(root / "videos" / "a.mp4", num_frames=48, fps=8, size=size)
    write_index_video(root / "videos" / "b.mp4", num_frames=60, fps=6, size=size)
    videos = [
        video_info(1, "../videos/a.mp4", 48, 8.0, *size),
        video_info(2, "../videos/b.mp4", 60, 6.0, *size),
    ]
    tdir = root / "traces"
    tdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    lines_a, lines_b = [], []
    for sid, (label, verdict, opts) in DEMO_RUN_A.items():
        kw: dict[str, Any] = {"keep_groups": 1, **opts}
        lines_a.append(synthetic_trace(sid, videos, rng=rng, label=label, verdict=verdict, **kw).model_dump_json())
        if sid == DEMO_CORRUPT_AFTER:
            lines_a.append(lines_a[-1][: len(lines_a[-1]) // 2])
        vb = DEMO_RUN_B_VERDICTS[sid]
        lines_b.append(synthetic_trace(sid, videos, rng=rng, label=label, verdict=vb, tool_turns=1).model_dump_json())
    (tdir / "run_a.jsonl").write_text("\n".join(lines_a) + "\n")
    (tdir / "run_b.jsonl").write_text("\n".join(lines_b) + "\n" + lines_b[0][:100])
    return tdir
