"""The episode: one item judged by the model in a multi-turn loop. Plain async Python over the `Engine` protocol, no
torch, so the same loop serves `agentrm score`, rejection sampling and the verl adapter.

State machine per turn:  render context -> check context limit -> generate -> parse
    -> tool call: validate + run tool -> decode frames -> memory window (evict) -> next turn
    -> answer:    verdicts -> score at <Reward> tokens -> done
    -> format error: shown to the model as the tool result -> next turn
After every turn the window state is recorded. A hit limit (turns, frames, tokens per turn) is told to the model,
which must answer in its next turn; if it does not, the episode ends with that termination reason and no reward.

`policy="uniform"` is the non-agentic baseline: N uniform frames per video at the tool detail level, N chosen so the
visual tokens equal the window budget, no tools, one turn.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Literal

from agentrm.config import EpisodeConfig, SamplingConfig
from agentrm.data.schema import Item
from agentrm.engines.base import Completion, Context, Engine
from agentrm.errors import ParseError, ToolError, VideoError
from agentrm.parser import Answer, parse_turn
from agentrm.prompting import Prompts, default_prompts
from agentrm.render import FrameFetcher, build_context
from agentrm.tooling import Tool, ToolContext, call_key, get_tools, run_tool, tool_schema
from agentrm.trace import (
    AnswerEvent,
    LimitEvent,
    ModelTurnEvent,
    ParseErrorEvent,
    ToolCallEvent,
    ToolErrorEvent,
    ToolResultEvent,
    Trace,
    TraceInputs,
    VideoInfo,
    WindowEvent,
)
from agentrm.video import VideoPool, smart_resize
from agentrm.window import FrameGroup, MemoryWindow

Policy = Literal["agentic", "uniform"]


def turn_seed(seed: int, sample_id: str, turn: int) -> int:
    """The sampling seed of one turn: distinct per sample and turn, reproducible across runs and concurrency."""
    return (seed + zlib.crc32(f"{sample_id}:{turn}".encode())) % 2**31


def uniform_indices(num_frames: int, count: int) -> list[int]:
    """`count` frames at the centres of equal segments (never the very first/last frame, which are often black)."""
    count = min(count, num_frames)
    return [min(num_frames - 1, int((k + 0.5) * num_frames / count)) for k in range(count)]


@dataclass
class Episode:
    """Everything one run of the loop needs; `run()` returns the finished trace."""

    engine: Engine
    item: Item
    cfg: EpisodeConfig
    pool: VideoPool
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    policy: Policy = "agentic"
    prompts: Prompts = field(default_factory=default_prompts)
    normalization: dict[str, tuple[float, float]] | None = None

    def __post_init__(self) -> None:
        self.tools: dict[str, Tool] = get_tools(self.cfg.tools) if self.policy == "agentic" else {}
        self.schemas = [tool_schema(t) for t in self.tools.values()]
        self.window = MemoryWindow(self.cfg.window)
        self.timings: dict[str, float] = {"decode_s": 0.0, "generate_s": 0.0, "score_s": 0.0}
        self.trace = Trace(
            id=self.item.id,
            inputs=TraceInputs(
                sample_id=self.item.id, mode=self.item.mode, prompt=self.item.prompt, videos=self.item.videos,
                dims=self.cfg.dims, labels=self.item.labels, meta=self.item.meta,
            ),
            policy=self.policy,
            engine={"name": self.engine.name, "model_id": self.engine.model_id},
            config=self.cfg.model_dump(mode="json"),
        )

    # ----------------------------------------------------------------------------------------------- set-up
    def _open_videos(self) -> None:
        self.sources: dict[int, Any] = {}
        for number, path in enumerate(self.item.videos, 1):
            src = self.pool.open(path)
            m = src.meta
            self.sources[number] = src
            self.trace.videos.append(VideoInfo(video=number, path=str(path), num_frames=m.num_frames, fps=m.fps,
                                               duration_s=m.duration_s, width=m.width, height=m.height))
        self.fetch = FrameFetcher(self.sources, self.cfg, self.engine.factor)
        self.tool_ctx = ToolContext(
            config=self.cfg, videos={v.video: v for v in self.trace.videos}, factor=self.engine.factor,
            frame_size=self.frame_size,
        )

    def frame_size(self, video: int, detail: str) -> tuple[int, int]:
        info = self.trace.videos[video - 1]
        return smart_resize(info.height, info.width, self.engine.factor, self.cfg.detail.levels[detail])

    def _pin_overview(self) -> None:
        detail = self.cfg.detail.overview if self.policy == "agentic" else self.cfg.detail.tool_default
        for info in self.trace.videos:
            count = self.cfg.overview.frames_per_video
            if self.policy == "uniform":
                count = self.uniform_count(info.video, detail)
            refs = self.tool_ctx.make_refs_unchecked(info.video, uniform_indices(info.num_frames, count), detail)
            self.window.pin(FrameGroup(id=f"overview-{info.video}", pinned=True, frames=refs))
        t0 = time.perf_counter()
        for g in self.window.groups:
            self.fetch(g.frames)  # decode now: a broken video fails here, before any model time is spent
        self.timings["decode_s"] += time.perf_counter() - t0
        self.trace.events.append(WindowEvent(turn=0, state=self.window.state()))

    def uniform_count(self, video: int, detail: str) -> int:
        """Frames per video so that all videos together fill the window budget (the same-budget baseline)."""
        h, w = self.frame_size(video, detail)
        per_frame = (h // self.engine.factor) * (w // self.engine.factor)
        n = self.cfg.num_videos
        counts = []
        if self.cfg.window.max_visual_tokens is not None:
            counts.append(self.cfg.window.max_visual_tokens // n // per_frame)
        if self.cfg.window.max_frames is not None:
            counts.append(self.cfg.window.max_frames // n)
        return max(1, min(counts))

    # ------------------------------------------------------------------------------------------------ turns
    def context(self) -> Context:
        return build_context(self.trace, self.cfg, self.prompts, self.schemas, self.fetch)

    async def _tool_turn(self, turn: int, name: str, arguments: dict[str, Any]) -> None:
        events = self.trace.events
        events.append(ToolCallEvent(turn=turn, name=name, arguments=arguments))
        key = call_key(name, arguments)
        if key in self.tool_ctx.seen_calls:
            first = next(
                e.turn for e in events if isinstance(e, ToolCallEvent) and call_key(e.name, e.arguments) == key
            )
            text = self.prompts.render("repeated_call.j2", first_turn=first)
            events.append(ToolResultEvent(turn=turn, name=name, text=text, frames=[], repeated=True))
            return
        self.tool_ctx.seen_calls.add(key)
        self.tool_ctx.window_capacity = self.window.capacity()
        try:
            result = run_tool(self.tools[name], arguments, self.tool_ctx)
        except ToolError as exc:
            events.append(ToolErrorEvent(turn=turn, name=name, message=str(exc)))
            return
        t0 = time.perf_counter()
        await asyncio.to_thread(self.fetch, result.frames)  # VideoError propagates: the sample fails
        self.timings["decode_s"] += time.perf_counter() - t0
        self.window.add(FrameGroup(id=f"turn-{turn}", pinned=False, frames=result.frames))
        self.tool_ctx.frames_returned += len(result.frames)
        text = self.prompts.render("tool_result.j2", name=name, frames=result.frames, note=result.note)
        events.append(ToolResultEvent(turn=turn, name=name, text=text, frames=result.frames))
        left = self.cfg.limits.max_total_frames - self.tool_ctx.frames_returned
        if left <= 0:
            events.append(LimitEvent(turn=turn, limit="max_frames",
                                     message=f"you have seen all {self.cfg.limits.max_total_frames} frames allowed."))

    async def _score(self, context: Context, completion: Completion) -> None:
        t0 = time.perf_counter()
        raw = await self.engine.score(context, completion.text)
        self.timings["score_s"] += time.perf_counter() - t0
        if raw is None:
            return
        dims = self.cfg.dims
        if len(raw) != self.cfg.num_videos or any(len(r) != len(dims) for r in raw):
            raise ValueError(f"engine {self.engine.name} returned rewards of shape {[len(r) for r in raw]}, "
                             f"expected {self.cfg.num_videos} x {len(dims)}")
        self.trace.raw_rewards = [dict(zip(dims, r, strict=True)) for r in raw]
        norm = self.normalization or {}
        self.trace.rewards = [
            {d: (v - norm[d][0]) / norm[d][1] if d in norm else v for d, v in r.items()}
            for r in self.trace.raw_rewards
        ]

    async def run(self) -> Trace:
        start = time.perf_counter()
        try:
            await asyncio.to_thread(self._open_videos)
            await asyncio.to_thread(self._pin_overview)
            await self._loop()
        except VideoError as exc:
            self.trace.termination, self.trace.error = "video_error", str(exc)
        self.trace.frames_viewed = len({(f.video, f.index) for e in self.trace.events
                                        if isinstance(e, ToolResultEvent) for f in e.frames})
        self.trace.timings = {**self.timings, "total_s": time.perf_counter() - start}
        return self.trace

    async def _loop(self) -> None:
        limits, events = self.cfg.limits, self.trace.events
        max_turns = 1 if self.policy == "uniform" else limits.max_turns
        must_answer: str | None = None
        for turn in range(1, max_turns + 1):
            self.trace.num_turns = turn
            context = await asyncio.to_thread(self.context)
            n_tokens = self.engine.count_tokens(context)
            if n_tokens > limits.max_context_tokens:
                events.append(LimitEvent(turn=turn, limit="max_context", message=(
                    f"the context needs {n_tokens} tokens, more than max_context_tokens={limits.max_context_tokens}")))
                self.trace.termination = "max_context"
                return
            t0 = time.perf_counter()
            sampling = self.sampling
            if sampling.temperature > 0 and sampling.seed is not None:
                sampling = sampling.model_copy(update={"seed": turn_seed(sampling.seed, self.item.id, turn)})
            completion = await self.engine.generate(context, sampling, limits.max_new_tokens)
            self.timings["generate_s"] += time.perf_counter() - t0
            events.append(ModelTurnEvent(turn=turn, text=completion.text, prompt_tokens=completion.prompt_tokens,
                                         completion_tokens=completion.completion_tokens,
                                         finish_reason=completion.finish_reason,
                                         latency_s=time.perf_counter() - t0))
            try:
                parsed = parse_turn(completion.text, self.cfg, list(self.tools))
            except ParseError as exc:
                events.append(ParseErrorEvent(turn=turn, error=exc.kind, message=str(exc)))
                parsed = None
            if isinstance(parsed, Answer):
                events.append(AnswerEvent(turn=turn, verdicts=parsed.verdicts))
                self.trace.verdicts = parsed.verdicts
                self.trace.termination = "answer"
                events.append(WindowEvent(turn=turn, state=self.window.state()))
                await self._score(context, completion)
                return
            if must_answer is not None:
                # told to answer and did not: a malformed answer is a format failure, anything else the limit's
                self.trace.termination = "format" if parsed is None else must_answer  # type: ignore[assignment]
                events.append(WindowEvent(turn=turn, state=self.window.state()))
                return
            if parsed is not None:
                await self._tool_turn(turn, parsed.name, parsed.arguments)
            must_answer = self._limits_after(turn, completion, max_turns)
            events.append(WindowEvent(turn=turn, state=self.window.state()))
        self.trace.termination = "max_turns" if self.policy == "agentic" else "format"

    def _limits_after(self, turn: int, completion: Completion, max_turns: int) -> str | None:
        """Tell the model about a limit it hit this turn; returns the limit that now forces an answer."""
        events = self.trace.events
        hit = [e for e in events if isinstance(e, LimitEvent) and e.turn == turn]
        if completion.finish_reason == "length":
            events.append(LimitEvent(turn=turn, limit="max_new_tokens", message=(
                f"your turn was cut at {self.cfg.limits.max_new_tokens} tokens; be brief.")))
            return "max_new_tokens"
        if hit:
            return hit[0].limit
        if turn == max_turns - 1:
            events.append(LimitEvent(turn=turn, limit="max_turns", message="the next turn is your last."))
            return "max_turns"
        return None


async def run_episode(
    engine: Engine, item: Item, cfg: EpisodeConfig, pool: VideoPool, sampling: SamplingConfig | None = None,
    policy: Policy = "agentic", prompts: Prompts | None = None,
    normalization: dict[str, tuple[float, float]] | None = None,
) -> Trace:
    """Run one episode and return its trace (see module docstring)."""
    if prompts is None:
        prompts = Prompts(cfg.prompt_dir) if cfg.prompt_dir else default_prompts()
    ep = Episode(engine=engine, item=item, cfg=cfg, pool=pool, sampling=sampling or SamplingConfig(), policy=policy,
                 prompts=prompts, normalization=normalization)
    return await ep.run()
