"""Training rows from traces, rendered by the code the loop runs (train/infer parity).

For model turn t of a trace, the training context is `agentrm.render.build_context` on the trace cut just before
turn t's `ModelTurnEvent`: exactly the events the loop had when it rendered turn t (same prompts, same memory
window, same stubs for evicted frames), with pixels fetched again through the frame source. The prompt is tokenised
the way `HFEngine.encode` does it (chat template with the generation prompt, the processor with `do_resize=False`),
and the model's text is tokenised on its own and followed by the end-of-turn token, which is where generation
stopped. `tests/train/test_train_data.py` checks both against the real loop and the real engine.

Labels are -100 (the ignore index of the cross-entropy) everywhere except the model's own tokens of the labelled
turn(s) and their end-of-turn token: system prompt, user text, tool results and frame tokens are never trained.
A turn that broke the format or was cut at max_new_tokens stays in later contexts but is never labelled.

Trajectory rows (one row per trace, every turn labelled) are used only where they are token-identical to the
per-turn rows: each turn's prompt + completion must be a token prefix of the next turn's prompt. An eviction
(or a chat template that rewrites earlier turns) breaks that; such a trace falls back to per-turn rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from agentrm.config import EpisodeConfig
from agentrm.engines.base import Context
from agentrm.errors import DataError
from agentrm.prompting import Prompts
from agentrm.render import FrameFetcher, build_context
from agentrm.tooling import get_tools, tool_schema
from agentrm.trace import AnswerEvent, FrameRef, ModelTurnEvent, ParseErrorEvent, Trace, WindowEvent
from agentrm.video import VideoPool, smart_resize

IGNORE = -100  # the ignore index of torch's cross-entropy
PER_TOKEN_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids")
IMAGE_KEYS = ("pixel_values", "image_grid_thw")
_THINK_RE = re.compile(r"<think>.*?</think>", re.S)

Fetch = Callable[[Sequence[FrameRef]], list[np.ndarray]]


def episode_config(trace: Trace) -> EpisodeConfig:
    """The EpisodeConfig the trace was recorded with (its snapshot): rendering must use the same one."""
    if not trace.config:
        raise DataError(f"trace {trace.id!r} has no config snapshot; traces must come from agentrm's loop "
                        "(Trace.config = the EpisodeConfig used)")
    return EpisodeConfig.model_validate(trace.config)


def tool_schemas(trace: Trace, cfg: EpisodeConfig) -> list[dict[str, object]]:
    return [tool_schema(t) for t in get_tools(cfg.tools).values()] if trace.policy == "agentic" else []


def placeholder_fetch(refs: Sequence[FrameRef]) -> list[np.ndarray]:
    """Black frames of the right sizes: enough to render text and count tokens without decoding any video."""
    return [np.zeros((r.height, r.width, 3), dtype=np.uint8) for r in refs]


def drop_cot(text: str) -> str:
    """The CoT-dropped final turn: the content of every <think>...</think> is removed, the empty tags stay (so
    the turn still has the answer format), the <answer> JSON and the <Reward> tokens are untouched."""
    return _THINK_RE.sub("<think></think>", text)


@dataclass
class TurnContext:
    turn: int
    context: Context
    completion: str
    answer: bool  # the turn that answered (its <Reward> tokens are read by the head)
    history_only: bool  # broke the format or was cut at max_new_tokens: kept as context, never labelled


def turn_contexts(trace: Trace, fetch: Fetch, prompts: Prompts, only: int | None = None) -> list[TurnContext]:
    """For every model turn t (or only turn `only`): the context the loop rendered at turn t, and the text the
    model wrote."""
    cfg = episode_config(trace)
    schemas = tool_schemas(trace, cfg)
    answered = {e.turn for e in trace.events if isinstance(e, AnswerEvent)}
    broken = {e.turn for e in trace.events if isinstance(e, ParseErrorEvent)}
    out = []
    for i, ev in enumerate(trace.events):
        if not isinstance(ev, ModelTurnEvent) or (only is not None and ev.turn != only):
            continue
        partial = trace.model_copy(update={"events": trace.events[:i]})
        ctx = build_context(partial, cfg, prompts, schemas, fetch)
        if ctx.turn != ev.turn:
            raise DataError(f"trace {trace.id!r}: model turn {ev.turn} renders as turn {ctx.turn}; events out of order")
        bad = ev.turn in broken or ev.finish_reason == "length"
        out.append(TurnContext(ev.turn, ctx, ev.text, ev.turn in answered, bad))
    if only is not None and not out:
        raise DataError(f"trace {trace.id!r} has no model turn {only}")
    return out


def evicts(trace: Trace) -> bool:
    return any(g.evicted for e in trace.events if isinstance(e, WindowEvent) for g in e.state.groups)


def resolve_video(path: str, video_root: str | None) -> str:
    p = Path(path)
    if not p.is_absolute() and video_root is not None:
        p = Path(video_root) / p
    return str(p)


def check_frame_sizes(trace: Trace, factor: int) -> None:
    """Every frame of the trace must have the size this model's factor gives, or the pixels would not match."""
    cfg = episode_config(trace)
    seen: set[tuple[int, str]] = set()
    for ev in trace.events:
        if not isinstance(ev, WindowEvent):
            continue
        for group in ev.state.groups:
            for ref in group.frames:
                if (ref.video, ref.detail) in seen:
                    continue
                seen.add((ref.video, ref.detail))
                info = trace.videos[ref.video - 1]
                want = smart_resize(info.height, info.width, factor, cfg.detail.levels[ref.detail])
                if want != (ref.height, ref.width):
                    raise DataError(
                        f"trace {trace.id!r}: frames were rendered at {ref.height}x{ref.width} but this model's "
                        f"patch*merge factor {factor} gives {want[0]}x{want[1]}; the traces come from a model of "
                        "another family (Qwen2.5-VL: 28, Qwen3-VL: 32): re-record them with a matching engine factor"
                    )


def trace_fetcher(trace: Trace, pool: VideoPool, factor: int, video_root: str | None = None) -> FrameFetcher:
    sources: dict[int, object] = {
        v.video: pool.open(resolve_video(v.path, video_root)) for v in trace.videos
    }
    return FrameFetcher(sources, episode_config(trace), factor)


@dataclass
class Row:
    """One tokenised training row (unpadded, 1-D per-token tensors)."""

    tensors: dict[str, torch.Tensor]
    reward_count: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


class TurnEncoder:
    """Tokenises contexts and completions exactly like `HFEngine.encode`."""

    def __init__(self, processor: Any, reward_token: str, end_of_turn_token: str = "<|im_end|>") -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.image_token: str = processor.image_token
        ip = processor.image_processor
        self.patch = int(ip.patch_size)
        self.factor = self.patch * int(ip.merge_size)
        vocab = self.tokenizer.get_vocab()
        for name, tok in (("reward token", reward_token), ("end-of-turn token", end_of_turn_token)):
            if tok not in vocab:
                raise DataError(f"the tokenizer has no {name} {tok!r}; add it first (ensure_reward_token) or set "
                                "data.end_of_turn_token to your chat template's end-of-turn token")
        self.reward_id = int(vocab[reward_token])
        self.eot_id = int(vocab[end_of_turn_token])

    def prompt_text(self, ctx: Context) -> str:
        text = self.processor.apply_chat_template(ctx.to_chat(), add_generation_prompt=True, tokenize=False)
        if text.count(self.image_token) != len(ctx.images):
            raise DataError(f"sample {ctx.sample_id!r} turn {ctx.turn}: {text.count(self.image_token)} "
                            f"{self.image_token} placeholders for {len(ctx.images)} images")
        return str(text)

    def prompt_ids_fast(self, ctx: Context) -> list[int]:
        """Prompt token ids without processing pixels: each image placeholder expanded to its token count, as the
        processor does. For planning (lengths, prefix checks); `encode` checks it agrees."""
        pieces = self.prompt_text(ctx).split(self.image_token)
        text = pieces[0]
        for image, piece in zip(ctx.images, pieces[1:], strict=True):
            h, w = image.pixels.shape[:2]
            text += self.image_token * ((h // self.factor) * (w // self.factor)) + piece
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def completion_ids(self, text: str) -> list[int]:
        """The model's tokens: the text tokenised on its own, then the end-of-turn token it stopped on."""
        return [*self.tokenizer(text, add_special_tokens=False)["input_ids"], self.eot_id]

    def encode(
        self,
        ctx: Context,
        completion: str,
        *,
        lm: bool,
        head: bool,
        spans: Sequence[tuple[int, int]] = (),
    ) -> Row:
        """A row = prompt(ctx) + completion + end-of-turn. `lm`: label the completion; `spans`: more (start, end)
        token ranges of the prompt to label (earlier turns of a trajectory row); `head`: mark the completion's
        reward tokens for the head."""
        images = [Image.fromarray(p.pixels) for p in ctx.images]
        enc = self.processor(text=[self.prompt_text(ctx)], images=images or None, do_resize=False, return_tensors="np")
        row = {k: torch.from_numpy(np.asarray(v)) for k, v in enc.items() if k in PER_TOKEN_KEYS + IMAGE_KEYS}
        if images:
            want = [[1, p.pixels.shape[0] // self.patch, p.pixels.shape[1] // self.patch] for p in ctx.images]
            if row["image_grid_thw"].tolist() != want:
                raise DataError(f"sample {ctx.sample_id!r}: image grids {row['image_grid_thw'].tolist()} != {want}")
        prompt = row["input_ids"][0]
        comp = torch.tensor(self.completion_ids(completion), dtype=prompt.dtype)
        n_prompt = int(prompt.shape[0])
        ids = torch.cat([prompt, comp])
        labels = torch.full_like(ids, IGNORE)
        if lm:
            labels[n_prompt:] = comp
        for start, end in spans:
            if end > n_prompt:
                raise DataError(f"sample {ctx.sample_id!r}: label span {start}:{end} outside the prompt")
            labels[start:end] = ids[start:end]
        reward = torch.zeros_like(ids, dtype=torch.bool)
        if head:
            reward[n_prompt:] = comp == self.reward_id
        out: dict[str, torch.Tensor] = {"input_ids": ids, "labels": labels, "reward_mask": reward,
                                        "attention_mask": torch.ones_like(ids)}
        if "mm_token_type_ids" in row:
            out["mm_token_type_ids"] = torch.cat([row["mm_token_type_ids"][0], torch.zeros_like(comp)])
        for key in IMAGE_KEYS:
            if key in row:
                out[key] = row[key]
        return Row(out, int(reward.sum()))


@dataclass(frozen=True)
class RowPlan:
    """What one row will be, decided once from the trace text (no pixels): which turn's context, which turns'
    tokens are labelled, whether the head reads it, its length."""

    trace: int
    turn: int
    lm: bool
    head: bool
    length: int
    spans: tuple[tuple[int, int], ...] = ()
    reward_tokens: int = 0


def plan_trace(
    index: int, trace: Trace, encoder: TurnEncoder, prompts: Prompts, trajectory: bool
) -> tuple[list[RowPlan], bool]:
    """Row plans for one trace; returns (plans, used_trajectory). Per-turn: one row per model turn (format-error
    turns only as history). Trajectory: one row when it is token-identical to the per-turn rows."""
    turns = turn_contexts(trace, placeholder_fetch, prompts)
    prompts_ids = [encoder.prompt_ids_fast(t.context) for t in turns]
    comps = [encoder.completion_ids(t.completion) for t in turns]
    rewards = [c.count(encoder.reward_id) if t.answer else 0 for t, c in zip(turns, comps, strict=True)]
    if trajectory and turns and not evicts(trace):
        prefix_ok = all(
            prompts_ids[k + 1][: len(prompts_ids[k]) + len(comps[k])] == prompts_ids[k] + comps[k]
            for k in range(len(turns) - 1)
        )
        if prefix_ok:
            spans = tuple(
                (len(prompts_ids[k]), len(prompts_ids[k]) + len(comps[k]))
                for k in range(len(turns) - 1) if not turns[k].history_only
            )
            last = turns[-1]
            plan = RowPlan(index, last.turn, lm=not last.history_only, head=last.answer,
                           length=len(prompts_ids[-1]) + len(comps[-1]), spans=spans, reward_tokens=rewards[-1])
            return [plan], True
    plans = [
        RowPlan(index, t.turn, lm=not t.history_only, head=t.answer, length=len(p) + len(c), reward_tokens=r)
        for t, p, c, r in zip(turns, prompts_ids, comps, rewards, strict=True)
    ]
    return plans, False
