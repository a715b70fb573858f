"""agentrm's episode loop inside verl: an `AgentLoopBase` that runs `agentrm.episode.run_episode` unchanged.

Why not verl's ToolAgentLoop: it is append-only (its token builder refuses a changed prefix), and our memory window
replaces evicted images with text stubs, so turn t+1's context is not turn t's context plus new tokens. Instead each
turn is its own training row: prompt = that turn's windowed context (exactly what the policy saw), response = the
tokens it generated (response_mask all 1: every response token is a model token; tool results live in the next
row's prompt and are never trained on). verl's V1 trainer takes the list of rows of one episode and copies the
episode's reward/advantage to every row.

`ServerEngine` is the agentrm `Engine` over verl's `LLMServerClient.generate(prompt_ids, sampling_params,
image_data=...)`. Prompt ids are the chat template over the context with each `<|image_pad|>` expanded to the
frame's visual-token count (what the processor does), computed with the tokenizer alone; pixels go to the server
as PIL images already resized to multiples of patch*merge (`do_resize=False` everywhere, so vLLM, verl's
post-processing and the actor see the same grids).

Registered through `actor_rollout_ref.rollout.agent.agent_loop_config_path` (a YAML list written by the launcher):

    - name: agentrm
      _target_: agentrm.train.verl.agent_loop.AgentrmAgentLoop
      agentrm_config: /out/verl/agentrm_grpo.json
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from uuid import uuid4

from PIL import Image
from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopMetrics, AgentLoopOutput

from agentrm.config import SamplingConfig
from agentrm.engines.base import Completion, Context
from agentrm.episode import run_episode
from agentrm.errors import EngineError
from agentrm.trace import Trace, TraceWriter
from agentrm.train.grpo_config import GRPOConfig
from agentrm.train.grpo_data import item_from_row, pair_fields
from agentrm.train.rewards import summarize_trace
from agentrm.video import VideoPool

log = logging.getLogger(__name__)

# the same processor kwargs for vLLM and verl's re-processing: frames are already at their final size
MM_PROCESSOR_KWARGS: dict[str, Any] = {"do_resize": False}


@dataclass
class TurnRow:
    """What one generate call consumed and produced: becomes one AgentLoopOutput."""

    prompt_ids: list[int]
    response_ids: list[int]
    images: list[Image.Image]
    logprobs: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ServerEngine:
    """An agentrm Engine over verl's LLM server client (vLLM/SGLang replicas behind verl's load balancer)."""

    name = "verl"

    def __init__(
        self, server: Any, tokenizer: Any, processor: Any, sampling_params: dict[str, Any], model_id: str = "policy",
        request_id: str | None = None,
    ) -> None:
        if processor is None or not hasattr(processor, "image_processor"):
            raise EngineError(
                "verl gave the agent loop no multimodal processor (hf_processor returned None); agentrm needs a "
                "Qwen-VL processor. Is actor_rollout_ref.model.external_lib=agentrm.train.verl.plugin set?"
            )
        self.server = server
        self.tokenizer = tokenizer
        self.sampling_params = dict(sampling_params)
        self.model_id = model_id
        self.request_id = request_id or uuid4().hex  # one id per episode: sticky routing keeps the prefix cache
        ip = processor.image_processor
        self.factor = int(ip.patch_size) * int(ip.merge_size)
        self.processor = processor
        self.image_token = getattr(processor, "image_token", "<|image_pad|>")
        self.eos_ids = {i for i in _as_list(tokenizer.eos_token_id)} | {
            tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>") if t in tokenizer.get_vocab()
        }
        self.turns: list[TurnRow] = []
        self._cached: tuple[Context, list[int]] | None = None

    def encode(self, context: Context) -> list[int]:
        """Prompt ids with image placeholders expanded (identical to the processor's input_ids)."""
        if self._cached is not None and self._cached[0] is context:
            return self._cached[1]
        text = self.processor.apply_chat_template(context.to_chat(), add_generation_prompt=True, tokenize=False)
        pieces = text.split(self.image_token)
        if len(pieces) - 1 != len(context.images):
            raise EngineError(f"prompt has {len(pieces) - 1} {self.image_token} placeholders but the context has "
                              f"{len(context.images)} images; do not write {self.image_token} in message text")
        expanded = pieces[0]
        for image, piece in zip(context.images, pieces[1:], strict=True):
            h, w = image.pixels.shape[:2]
            if h % self.factor or w % self.factor:
                raise EngineError(f"frame {image.ref.video}:{image.ref.index} is {h}x{w}, not a multiple of "
                                  f"{self.factor}; frames must come from the frame source at this model's factor")
            expanded += self.image_token * ((h // self.factor) * (w // self.factor)) + piece
        ids = list(self.tokenizer(expanded, add_special_tokens=False)["input_ids"])
        self._cached = (context, ids)
        return ids

    def count_tokens(self, context: Context) -> int:
        return len(self.encode(context))

    async def generate(self, context: Context, sampling: SamplingConfig, max_new_tokens: int) -> Completion:
        """One turn; verl's sampling params (GRPO's temperature/top_p, validation greedy) win over `sampling`."""
        ids = self.encode(context)
        images = [Image.fromarray(p.pixels) for p in context.images]
        params = {**self.sampling_params, "max_tokens": max_new_tokens}
        out = await self.server.generate(
            request_id=self.request_id, prompt_ids=ids, sampling_params=params, image_data=images or None,
            mm_processor_kwargs=MM_PROCESSOR_KWARGS,
        )
        tokens = [int(t) for t in out.token_ids]
        ended = bool(tokens) and tokens[-1] in self.eos_ids
        finish: Literal["stop", "length"] = "length" if not ended and len(tokens) >= max_new_tokens else "stop"
        self.turns.append(TurnRow(ids, tokens, images, list(out.log_probs) if out.log_probs else None,
                                  dict(out.extra_fields or {})))
        text = self.tokenizer.decode(tokens, skip_special_tokens=False)  # keep <Reward>: the parser needs it
        return Completion(text=text, prompt_tokens=len(ids), completion_tokens=len(tokens), finish_reason=finish)

    async def score(self, context: Context, completion: str) -> list[list[float]] | None:
        return None  # the head trains in the actor (AgentrmRewardEngine), not at rollout time


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, list | tuple) else [int(value)]


@lru_cache(maxsize=4)
def load_runtime(path: str) -> GRPOConfig:
    """The launcher's validated config snapshot (one read per worker process)."""
    return GRPOConfig.model_validate_json(Path(path).read_text(encoding="utf-8"))


_POOLS: dict[str, VideoPool] = {}
_WRITERS: dict[str, TraceWriter] = {}
_LOCK = threading.Lock()


def shared_pool(cfg: GRPOConfig) -> VideoPool:
    """One VideoPool per worker process: the n rollouts of an item share decoded frames through its cache."""
    key = cfg.episode.video.model_dump_json()
    with _LOCK:
        if key not in _POOLS:
            _POOLS[key] = VideoPool(cfg.episode.video)
        return _POOLS[key]


def write_trace(trace_dir: Path, step: int, validate: bool, trace: Trace) -> Path:
    """Append to this process's JSONL of the step (one file per process: no cross-process interleaving)."""
    name = f"{'val_' if validate else ''}step_{step:06d}"
    path = trace_dir / name / f"{socket.gethostname()}-{os.getpid()}.jsonl"
    with _LOCK:
        writer = _WRITERS.get(str(path))
        if writer is None:
            writer = _WRITERS[str(path)] = TraceWriter(path)
        writer.write(trace)
    return path


class AgentrmAgentLoop(AgentLoopBase):
    """Runs one agentrm episode per call; returns one AgentLoopOutput per model turn."""

    def __init__(self, *args: Any, agentrm_config: str, **kwargs: Any) -> None:
        kwargs.pop("tools", None)  # verl's tool registry: agentrm's tools run inside the episode instead
        super().__init__(*args, **kwargs)
        self.cfg = load_runtime(agentrm_config)
        self.trace_dir = Path(self.cfg.output_dir) / "rollouts"

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> list[AgentLoopOutput]:  # type: ignore[override]
        extra_info = dict(kwargs.get("extra_info") or {})
        item = item_from_row(extra_info)
        step = int(kwargs.get("global_steps", -1))
        validate = bool(kwargs.get("validate", False))
        # verl's V1 worker runs the n rollouts of a row as session_id = 0..n-1 (AgentLoopWorkerTQ._run_prompt)
        rollout = kwargs.get("session_id")
        session = 0 if rollout is None else int(rollout)
        engine = ServerEngine(self.server_manager, self.tokenizer, self.processor, sampling_params,
                              model_id=str(self.config.actor_rollout_ref.model.path))
        trace = await run_episode(engine, item, self.cfg.episode, shared_pool(self.cfg))
        trace.id = f"{item.id}@{step}.{session}"
        trace.inputs.meta = {**trace.inputs.meta, "grpo": {"step": step, "session": int(session),
                                                           "validate": validate, "uid": str(kwargs.get("uid", ""))}}
        summary = summarize_trace(trace, self.cfg.episode)
        if self.cfg.trace_rollouts:
            write_trace(self.trace_dir, step, validate, trace)
        outputs = self.to_outputs(engine.turns, trace)
        for out in outputs:  # the trainer joins pointwise partners by these (verl's padding rows copy them)
            out.extra_fields.update(pair_fields(extra_info, rollout))
        last = outputs[-1].extra_fields
        last["agentrm_summary"] = summary.model_dump_json()
        last["agentrm_answer_row"] = trace.termination == "answer"
        return outputs

    def to_outputs(self, turns: list[TurnRow], trace: Trace) -> list[AgentLoopOutput]:
        """Per-turn rows. An episode that never generated (video error) gets one zero-mask placeholder row so the
        GRPO group stays complete; its reward is 0 and it carries no gradient."""
        response_length = int(self.rollout_config.response_length)
        metrics = AgentLoopMetrics(generate_sequences=trace.timings.get("generate_s", 0.0),
                                   tool_calls=trace.timings.get("decode_s", 0.0))
        tok: Any = self.tokenizer
        if not turns:
            ids = list(tok(f"[{trace.termination}] {trace.error or ''}"[:200],
                                      add_special_tokens=False)["input_ids"]) or [0]
            eos = _as_list(tok.eos_token_id)[:1] or [0]
            turns = [TurnRow(prompt_ids=ids, response_ids=eos, images=[])]
            masks = [[0]]
        else:
            masks = [[1] * min(len(t.response_ids), response_length) for t in turns]
        outputs = []
        for k, (turn, mask) in enumerate(zip(turns, masks, strict=True)):
            outputs.append(AgentLoopOutput(
                prompt_ids=turn.prompt_ids,
                response_ids=turn.response_ids[:response_length],
                response_mask=mask,
                response_logprobs=turn.logprobs[:response_length] if turn.logprobs else None,
                multi_modal_data={"images": turn.images} if turn.images else None,
                mm_processor_kwargs=dict(MM_PROCESSOR_KWARGS),
                num_turns=trace.num_turns,
                metrics=metrics,
                extra_fields={**turn.extra, "agentrm_turn": k + 1, "agentrm_trace_id": trace.id,
                              "agentrm_last_row": k == len(turns) - 1, "agentrm_answer_row": False,
                              "turn_scores": [], "tool_rewards": []},
            ))
        return outputs


def agent_loop_yaml(config_path: str | Path) -> str:
    """The agent_loop_config_path file content registering AgentrmAgentLoop under the name "agentrm"."""
    entry = {"name": "agentrm", "_target_": f"{AgentrmAgentLoop.__module__}.{AgentrmAgentLoop.__qualname__}",
             "agentrm_config": str(config_path)}
    return "- " + json.dumps(entry) + "\n"  # YAML is a superset of JSON
