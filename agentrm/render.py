"""Render the model's context for the next turn from a (partial) trace. The one function both inference and training
use, so the SFT context for turn t is byte-identical to what the loop showed at turn t by construction.

    messages = [system (task, tools, answer format),
                user (prompt, video facts, pinned overview frames, each labelled),
                assistant turn 1, user (tool result of turn 1: frames or a stub if evicted, or an error/notice),
                assistant turn 2, ...]

Which groups still have pixels is read from the latest `WindowEvent` in the trace; an evicted tool result becomes a
one-line stub naming the frames that were there. Pixels are fetched through `FrameFetcher` (the frame source and its
cache), never stored in the trace.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np

from agentrm.config import EpisodeConfig
from agentrm.engines.base import Context, ImagePart, Message, Part, TextPart
from agentrm.prompting import Prompts
from agentrm.trace import (
    Event,
    FrameRef,
    LimitEvent,
    ModelTurnEvent,
    ParseErrorEvent,
    ToolErrorEvent,
    ToolResultEvent,
    Trace,
    WindowEvent,
)

Fetch = Callable[[Sequence[FrameRef]], list[np.ndarray]]


class FrameFetcher:
    """Pixels for FrameRefs, through the frame sources of one item's videos (grouped so a GOP decodes once)."""

    def __init__(self, sources: dict[int, object], cfg: EpisodeConfig, factor: int) -> None:
        self.sources = sources  # video number -> agentrm.video.FrameSource
        self.cfg = cfg
        self.factor = factor

    def __call__(self, refs: Sequence[FrameRef]) -> list[np.ndarray]:
        by_key: dict[tuple[int, str], list[int]] = defaultdict(list)
        for r in refs:
            by_key[(r.video, r.detail)].append(r.index)
        pixels: dict[tuple[int, str, int], np.ndarray] = {}
        for (video, detail), indices in by_key.items():
            src = self.sources[video]
            frames = src.get(indices, max_pixels=self.cfg.detail.levels[detail], factor=self.factor)  # type: ignore[attr-defined]
            for idx, fr in zip(indices, frames, strict=True):
                pixels[(video, detail, idx)] = fr.pixels
        out = []
        for r in refs:
            px = pixels[(r.video, r.detail, r.index)]
            if px.shape[:2] != (r.height, r.width):
                raise ValueError(f"frame {r} decoded at {px.shape[:2]}, expected {(r.height, r.width)}")
            out.append(px)
        return out


def reward_tokens(cfg: EpisodeConfig) -> str:
    return cfg.reward_token * cfg.num_videos


def answer_example(cfg: EpisodeConfig) -> str:
    if cfg.mode == "pairwise":
        example: dict[str, str | int] = {d: ("1", "2", "tie")[i % 3] for i, d in enumerate(cfg.dims)}
    else:
        example = {d: cfg.score_range[1] - i % 2 for i, d in enumerate(cfg.dims)}
    return json.dumps(example)


def system_text(trace: Trace, cfg: EpisodeConfig, prompts: Prompts, tool_schemas: list[dict[str, object]]) -> str:
    w = cfg.window
    window_desc = " and ".join(
        s for s in (
            f"{w.max_visual_tokens} visual tokens" if w.max_visual_tokens else "",
            f"{w.max_frames} frames" if w.max_frames else "",
        ) if s
    )
    overview_frames = len(_groups(trace)[0][1]) if _groups(trace) else cfg.overview.frames_per_video
    return prompts.render(
        "system.j2", mode=cfg.mode, dims=cfg.dims, tools=tool_schemas if trace.policy == "agentic" else [],
        overview_frames=overview_frames, window_desc=window_desc, limits=cfg.limits,
        answer_example=answer_example(cfg), reward_tokens=reward_tokens(cfg), reward_token=cfg.reward_token,
        score_range=cfg.score_range,
    )


def _groups(trace: Trace) -> list[tuple[str, list[FrameRef]]]:
    """Pinned groups (overview per video) from the first window event."""
    for ev in trace.events:
        if isinstance(ev, WindowEvent):
            return [(g.group, g.frames) for g in ev.state.groups if g.pinned]
    return []


def _evicted(trace: Trace) -> set[str]:
    for ev in reversed(trace.events):
        if isinstance(ev, WindowEvent):
            return {g.group for g in ev.state.groups if g.evicted}
    return set()


def _frames_parts(refs: list[FrameRef], pixels: list[np.ndarray], prompts: Prompts) -> list[Part]:
    parts: list[Part] = []
    for ref, px in zip(refs, pixels, strict=True):
        parts.append(TextPart(prompts.render("frame_label.j2", ref=ref)))
        parts.append(ImagePart(ref=ref, pixels=px))
    return parts


def _feedback(ev: Event, evicted: set[str], fetch: Fetch, prompts: Prompts, cfg: EpisodeConfig) -> list[Part]:
    if isinstance(ev, ToolResultEvent):
        if ev.repeated or not ev.frames:
            return [TextPart(ev.text)]
        if f"turn-{ev.turn}" in evicted:
            return [TextPart(prompts.render("evicted.j2", frames=ev.frames, name=ev.name))]
        return [TextPart(ev.text), *_frames_parts(ev.frames, fetch(ev.frames), prompts),
                TextPart(prompts.render("tool_result_end.j2"))]
    if isinstance(ev, ToolErrorEvent):
        return [TextPart(prompts.render("tool_error.j2", name=ev.name, message=ev.message))]
    if isinstance(ev, ParseErrorEvent):
        return [TextPart(prompts.render("parse_error.j2", error=ev.error, message=ev.message))]
    if isinstance(ev, LimitEvent):
        return [TextPart(prompts.render("limit.j2", limit=ev.limit, message=ev.message,
                                        reward_tokens=reward_tokens(cfg)))]
    return []


def build_context(
    trace: Trace, cfg: EpisodeConfig, prompts: Prompts, tool_schemas: list[dict[str, object]], fetch: Fetch
) -> Context:
    """The context for the turn after the last event of `trace`."""
    messages = [Message("system", [TextPart(system_text(trace, cfg, prompts, tool_schemas))])]
    groups = _groups(trace)
    intro = prompts.render(
        "intro.j2", prompt=trace.inputs.prompt, videos=trace.videos, uniform=trace.policy == "uniform",
        frames_per_video=len(groups[0][1]) if groups else 0,
    )
    user: list[Part] = [TextPart(intro)]
    for _, refs in groups:
        user.extend(_frames_parts(refs, fetch(refs), prompts))
    messages.append(Message("user", user))
    evicted = _evicted(trace)
    feedback: list[Part] = []
    turns = 0
    for ev in trace.events:
        if isinstance(ev, ModelTurnEvent):
            if feedback:
                messages.append(Message("user", feedback))
                feedback = []
            messages.append(Message("assistant", [TextPart(ev.text)]))
            turns = ev.turn
        else:
            feedback.extend(_feedback(ev, evicted, fetch, prompts, cfg))
    if feedback:
        messages.append(Message("user", feedback))
    return Context(messages=messages, sample_id=trace.id, turn=turns + 1)
