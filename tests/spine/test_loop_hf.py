"""The full loop through the real HF engine on tiny Qwen2.5-VL and Qwen3-VL: real processor, real image tokens,
eviction across turns and head extraction at <Reward>.

A random tiny model never writes a valid tool call, so `TeacherForcedHFEngine` (a test double named as such) replays
scripted turn texts while still doing the real work for every turn: it encodes the windowed context with the model's
processor and runs a real forward pass over it (so image placeholders, grids and pixel budgets must all agree), and
`score` is the real engine's head read-out. A second test lets the random model generate freely to show the loop
survives garbage without inventing a reward.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import torch

from agentrm.config import EngineConfig, EpisodeConfig, SamplingConfig
from agentrm.data.schema import Item
from agentrm.engines.base import Completion, Context
from agentrm.engines.hf import HFEngine
from agentrm.episode import run_episode
from agentrm.trace import ToolResultEvent, WindowEvent
from agentrm.video import VideoPool, smart_resize, visual_tokens
from tests.spine.conftest import VERDICTS, answer, tool


class TeacherForcedHFEngine(HFEngine):
    """Replays `texts` as the model's turns; everything else (encoding, forward, head) is the real engine."""

    texts: list[str]
    seen_image_tokens: list[int]

    async def generate(self, context: Context, sampling: SamplingConfig, max_new_tokens: int) -> Completion:
        inputs = self.encode(context)
        image_pad = self.rm.processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
        n_pad = int((inputs["input_ids"] == image_pad).sum())
        self.seen_image_tokens.append(n_pad)
        batch = {k: v.unsqueeze(0) if k in ("input_ids", "attention_mask") and v.dim() == 1 else v
                 for k, v in inputs.items()}
        with torch.no_grad():  # a real prefill: raises if placeholders and images disagree
            self.rm.model(**{k: v for k, v in batch.items() if k != "completion_start"})
        text = self.texts[context.turn - 1]
        return Completion(text=text, prompt_tokens=int(inputs["input_ids"].numel()), completion_tokens=len(text) // 4,
                          finish_reason="stop")


def _item(videos: dict[str, Path]) -> Item:
    return Item(id="hf-pair", mode="pairwise", prompt="a white square pattern",
                videos=[str(videos["short"]), str(videos["long"])], labels=dict(VERDICTS))


def test_full_loop_with_eviction_and_head(tiny_model_dir: Path, videos: dict[str, Path]) -> None:
    cfg = EpisodeConfig()
    engine = TeacherForcedHFEngine.from_config(EngineConfig(model=str(tiny_model_dir), device="cpu"), cfg)
    f = engine.factor
    engine.texts = [
        tool("select_frames", video=1, frames=[10, 11]),
        tool("select_range", video=2, start_s=50.0, end_s=60.0, count=2),
        tool("select_frames", video=1, frames=[200, 201]),
        tool("select_frames", video=2, frames=[900, 901], detail="high"),
        answer(VERDICTS),
    ]
    engine.seen_image_tokens = []
    # budget: the overview (8 low frames) plus room for exactly two 2-frame high-detail groups -> evictions
    low = visual_tokens(*smart_resize(144, 256, f, cfg.detail.levels["low"]), f)
    high = visual_tokens(*smart_resize(144, 256, f, cfg.detail.levels["high"]), f)
    cfg.window.max_visual_tokens = 8 * low + 4 * high
    cfg.window.max_frames = None
    trace = asyncio.run(run_episode(engine, _item(videos), cfg, VideoPool()))
    assert trace.termination == "answer", trace.events
    windows = [e.state for e in trace.events if isinstance(e, WindowEvent)]
    assert any(g.evicted for g in windows[-1].groups)
    assert [g.group for g in windows[-1].groups if g.evicted] == ["turn-1", "turn-2"]
    for state, tokens in zip(windows, engine.seen_image_tokens, strict=False):
        # the processor's image tokens equal what the window accounts for, and stay within the budget
        assert tokens == state.visual_tokens <= cfg.window.max_visual_tokens
    assert len(engine.seen_image_tokens) == 5
    assert trace.rewards is not None and len(trace.rewards) == 2
    assert set(trace.rewards[0]) == set(cfg.dims)
    assert trace.rewards[0] != trace.rewards[1]  # two different <Reward> positions were read
    frames = [f for e in trace.events if isinstance(e, ToolResultEvent) for f in e.frames]
    assert {fr.height % f for fr in frames} == {0} and {fr.width % f for fr in frames} == {0}


def test_free_generation_never_invents_a_reward(tiny_qwen2_5_vl_dir: Path, videos: dict[str, Path]) -> None:
    cfg = EpisodeConfig()
    cfg.limits.max_turns = 2
    cfg.limits.max_new_tokens = 16
    engine = HFEngine.from_config(EngineConfig(model=str(tiny_qwen2_5_vl_dir), device="cpu"), cfg)
    trace = asyncio.run(run_episode(engine, _item(videos), cfg, VideoPool()))
    assert trace.termination in ("format", "max_turns", "max_new_tokens")
    assert trace.rewards is None and trace.verdicts is None
    assert trace.num_turns == 2
