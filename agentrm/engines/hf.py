"""HFEngine: generation and reward scoring in-process with transformers, batched across concurrent episodes.

Many episodes `await engine.generate(...)` at once from asyncio. Each request goes into one queue; a single
worker gathers what arrives within `batch_wait_ms` (up to `max_batch_size`), encodes the rows, left-pads
them into one batch and runs ONE `model.generate` (or one backbone forward for `score`) in a worker thread,
then routes each row back to its caller's future. One worker means the model never runs twice at once
(Qwen-VL keeps mrope state on the module between calls) and the event loop never blocks on the model.

Exactness rules the encoding: frames arrive already resized to multiples of the model's factor and are
passed with `do_resize=False` (the grid is checked); images go in the order of the context; the prompt is
the processor's chat template with the generation prompt; a scored completion is tokenised on its own and
appended, so the boundary is exactly where generation started. Decoding keeps special tokens (the `<Reward>`
token must survive) and drops only the trailing eos/pad.

Sampling is per row: greedy rows take the argmax; sampled rows draw from their own `torch.Generator` seeded by
`SamplingConfig.seed`, so a seeded request gives the same text whether it ran alone or batched with others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from agentrm.checkpoint import RewardModel, load
from agentrm.config import EngineConfig, EpisodeConfig, SamplingConfig
from agentrm.engines.base import Completion, Context
from agentrm.errors import CheckpointError, EngineError
from agentrm.models import model_config, processor_factor, unwrap

log = logging.getLogger(__name__)

_PAD_VALUES = {"input_ids": None, "attention_mask": 0, "mm_token_type_ids": 0}  # None: the tokenizer's pad id
_IMAGE_KEYS = ("pixel_values", "image_grid_thw")
# Every logits-affecting generation knob, pinned: transformers fills unset fields from the checkpoint's
# generation_config (Qwen ships repetition_penalty 1.05, top_k 1, do_sample true), which would silently change
# "greedy" into something else.
_PINNED_GENERATION = {
    "do_sample": False,
    "num_beams": 1,
    "temperature": 1.0,
    "top_k": 50,
    "top_p": 1.0,
    "typical_p": 1.0,
    "repetition_penalty": 1.0,
    "encoder_repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "min_length": 0,
    "length_penalty": 1.0,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "num_return_sequences": 1,
    "output_scores": False,
    "return_dict_in_generate": False,
    "use_cache": True,
}


@dataclass
class _Request:
    kind: Literal["generate", "score"]
    context: Context
    future: asyncio.Future[Any]
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    max_new_tokens: int = 0
    completion: str = ""


class _RowSampler(LogitsProcessor):
    """Per-row temperature/top-p sampling with a per-row generator; greedy rows are left untouched. A
    sampled row keeps only its drawn token, so generate's argmax picks it."""

    def __init__(self, samplings: Sequence[SamplingConfig], device: torch.device) -> None:
        self.rows: list[tuple[int, float, float, torch.Generator]] = []
        for i, s in enumerate(samplings):
            if s.temperature > 0:
                gen = torch.Generator(device=device)
                if s.seed is None:
                    gen.seed()
                else:
                    gen.manual_seed(s.seed)
                self.rows.append((i, s.temperature, s.top_p, gen))

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for i, temperature, top_p, gen in self.rows:
            probs = torch.softmax(scores[i].float() / temperature, dim=-1)
            if top_p < 1.0:
                sorted_p, order = probs.sort(descending=True)
                outside = sorted_p.cumsum(-1) - sorted_p > top_p  # the top token always stays
                probs = probs.scatter(0, order, sorted_p.masked_fill(outside, 0.0))
            token = torch.multinomial(probs, 1, generator=gen)
            scores[i] = float("-inf")
            scores[i, token] = 0.0
        return scores


class _Suppress(LogitsProcessor):
    """Never generate vision placeholder tokens: a generated `<|image_pad|>` or `<|vision_start|>` has no image
    behind it and makes the next turn's processor (or mrope indexing) fail, ending the episode on an engine error
    instead of a format error the model can recover from."""

    def __init__(self, token_ids: Sequence[int]) -> None:
        self.token_ids = list(token_ids)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.token_ids:
            scores[:, self.token_ids] = float("-inf")
        return scores


VISION_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>")


class _RowBudget(StoppingCriteria):
    """Stops each row at its own max_new_tokens (generate runs to the largest budget in the batch)."""

    def __init__(self, prompt_len: int, budgets: Sequence[int]) -> None:
        self.prompt_len = prompt_len
        self.budgets = torch.tensor(list(budgets))

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        done = (input_ids.shape[1] - self.prompt_len) >= self.budgets
        return done.to(input_ids.device)  # type: ignore[return-value]


class _RewardStop(StoppingCriteria):
    """Stops a row once it has generated `n` reward tokens (one per video: the answer is complete). Without it a
    model that has not learnt to count them keeps writing them until max_new_tokens and the parser rejects the
    turn — the stop string every serving engine would be given."""

    def __init__(self, prompt_len: int, reward_id: int, n: int) -> None:
        self.prompt_len, self.reward_id, self.n = prompt_len, reward_id, n

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        done = (input_ids[:, self.prompt_len :] == self.reward_id).sum(dim=1) >= self.n
        return done  # type: ignore[return-value]


def _cut(new: list[int], eos_ids: Sequence[int], reward_id: int, n: int | None) -> tuple[int, int] | None:
    """(tokens kept, tokens generated) at the row's stop — the first eos (generated, not kept) or the n-th reward
    token (kept) — or None when the row ran to its budget."""
    seen = 0
    for j, t in enumerate(new):
        if t in eos_ids:
            return j, j + 1
        if n and t == reward_id:
            seen += 1
            if seen >= n:
                return j + 1, j + 1
    return None


class _Batcher:
    """Gathers requests for up to `wait_s` / `max_size` and hands each batch to `run` in a worker thread."""

    def __init__(self, run: Callable[[list[_Request]], list[Any]], max_size: int, wait_s: float) -> None:
        self.run = run
        self.max_size = max_size
        self.wait_s = wait_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[_Request] | None = None
        self._task: asyncio.Task[None] | None = None

    async def submit(self, request: _Request) -> Any:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._queue is None or self._task is None or self._task.done():
            # first call, or a new event loop (e.g. a second asyncio.run): the old worker died with its loop
            self._loop, self._queue = loop, asyncio.Queue()
            self._task = loop.create_task(self._worker(self._queue), name="hf-engine-batcher")
        self._queue.put_nowait(request)
        return await request.future

    async def _gather(self, queue: asyncio.Queue[_Request]) -> list[_Request]:
        loop = asyncio.get_running_loop()
        batch = [await queue.get()]
        deadline = loop.time() + self.wait_s
        while len(batch) < self.max_size:
            if not queue.empty():
                batch.append(queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                break
        return [r for r in batch if not r.future.done()]  # drop requests whose caller gave up

    async def _worker(self, queue: asyncio.Queue[_Request]) -> None:
        while True:
            batch = await self._gather(queue)
            for kind in ("generate", "score"):
                group = [r for r in batch if r.kind == kind]
                if not group:
                    continue
                try:
                    results = await asyncio.to_thread(self.run, group)
                except Exception as exc:  # noqa: BLE001 - routed to every caller of the batch
                    for r in group:
                        if not r.future.done():
                            r.future.set_exception(exc)
                    continue
                for r, result in zip(group, results, strict=True):
                    if r.future.done():
                        continue
                    if isinstance(result, BaseException):
                        r.future.set_exception(result)
                    else:
                        r.future.set_result(result)

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None


class HFEngine:
    """The Engine protocol on a loaded `RewardModel` (transformers, any device)."""

    name = "hf"

    def __init__(
        self, rm: RewardModel, *, max_batch_size: int = 8, batch_wait_ms: float = 5.0,
        stop_after_rewards: int | None = None,
    ) -> None:
        """`stop_after_rewards`: end a completion after this many reward tokens (the episode's number of videos;
        `from_config` sets it when given the episode config)."""
        processor = rm.processor
        if (
            getattr(processor, "image_processor", None) is None
            or getattr(processor, "tokenizer", None) is None
        ):
            raise EngineError(
                f"{rm.source}: the model has no multimodal processor (image processor + tokenizer)"
            )
        if not getattr(processor, "chat_template", None):
            raise EngineError(
                f"{rm.source}: the processor has no chat template; save the base model's processor"
            )
        self.rm = rm
        self.stop_after_rewards = stop_after_rewards
        self.model_id = rm.source or rm.settings.base_model
        self.factor = rm.factor
        if processor_factor(processor) != self.factor:
            raise EngineError(
                f"{rm.source}: processor patch*merge {processor_factor(processor)} != {self.factor}"
            )
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.image_token: str = processor.image_token
        self.patch_size = int(processor.image_processor.patch_size)
        config = model_config(unwrap(rm.model))
        text_cfg = getattr(config, "text_config", None) or config
        self.max_positions = int(getattr(text_cfg, "max_position_embeddings", 0) or 0)
        gen_cfg = getattr(unwrap(rm.model), "generation_config", None)
        eos = getattr(gen_cfg, "eos_token_id", None)
        eos_ids = {int(e) for e in (eos if isinstance(eos, list) else [eos]) if e is not None}
        if self.tokenizer.eos_token_id is not None:
            eos_ids.add(int(self.tokenizer.eos_token_id))
        self.eos_ids = sorted(eos_ids)
        unk = self.tokenizer.unk_token_id
        vocab = self.tokenizer.get_vocab()
        self.suppressed_ids = sorted({vocab[t] for t in VISION_TOKENS if t in vocab and vocab[t] != unk})
        pad = self.tokenizer.pad_token_id
        pad = pad if pad is not None else getattr(gen_cfg, "pad_token_id", None)
        self.pad_id = int(pad if pad is not None else self.eos_ids[0])
        # the Rust tokenizer must not be used from two threads at once (worker thread vs count_tokens)
        self._tokenizer_lock = threading.Lock()
        # one model call at a time, even across event loops (a loop torn down mid-batch leaves its thread
        # running) and for direct generate_batch/score_batch callers: Qwen-VL keeps mrope state on the module
        self._model_lock = threading.Lock()
        self._batcher = _Batcher(self._run_batch, max_batch_size, batch_wait_ms / 1000.0)

    @classmethod
    def from_config(cls, config: EngineConfig, episode: EpisodeConfig | None = None) -> HFEngine:
        """Load `config.model` (agentrm checkpoint or plain Qwen-VL) checked against `episode`'s dims."""
        if not config.model:
            raise EngineError("engine.model is empty; set engine.model=<hub id or local dir>")
        try:
            rm = load(
                config.model,
                dtype=config.dtype,
                device=config.device,
                attn_implementation=config.attn_implementation,
                episode=episode,
            )
        except CheckpointError as exc:
            raise EngineError(f"engine.model={config.model!r}: {exc}") from exc
        return cls(rm, max_batch_size=config.max_batch_size, batch_wait_ms=config.batch_wait_ms,
                   stop_after_rewards=episode.num_videos if episode is not None else None)

    @property
    def normalization(self) -> dict[str, tuple[float, float]] | None:
        """Per-dimension (mean, std) from the checkpoint's agentrm.json, applied by the episode to head outputs."""
        norm = self.rm.settings.normalization
        return {d: (s.mean, s.std) for d, s in norm.items()} if norm else None

    # ---- the Engine protocol -------------------------------------------------------------------------------

    async def generate(self, context: Context, sampling: SamplingConfig, max_new_tokens: int) -> Completion:
        if max_new_tokens < 1:
            raise EngineError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        self._check_images(context)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        request = _Request("generate", context, future, sampling=sampling, max_new_tokens=max_new_tokens)
        result: Completion = await self._batcher.submit(request)
        return result

    async def score(self, context: Context, completion: str) -> list[list[float]] | None:
        self._check_images(context)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        result: list[list[float]] = await self._batcher.submit(
            _Request("score", context, future, completion=completion)
        )
        return result

    def count_tokens(self, context: Context) -> int:
        """Exact prompt length (generation prompt included), each image counted as its `<|image_pad|>` tokens,
        computed with the tokenizer alone (no pixel processing)."""
        self._check_images(context)
        text = self.render(context)
        pieces = text.split(self.image_token)
        expanded = pieces[0]
        for image, piece in zip(context.images, pieces[1:], strict=True):
            h, w = image.pixels.shape[:2]
            expanded += self.image_token * ((h // self.factor) * (w // self.factor)) + piece
        with self._tokenizer_lock:
            return len(self.tokenizer(expanded, add_special_tokens=False)["input_ids"])

    async def aclose(self) -> None:
        """Stop the batching worker (pending requests of a running batch still complete)."""
        await self._batcher.aclose()

    # ---- synchronous batch API (the worker runs these; benchmarks and tests may call them directly) -----

    def generate_batch(self, requests: Sequence[tuple[Context, SamplingConfig, int]]) -> list[Completion]:
        """One padded `model.generate` over all requests; each row stops at its eos or its max_new_tokens."""
        rows = [self.encode(ctx) for ctx, _, _ in requests]
        return self._generate_rows(rows, [s for _, s, _ in requests], [n for _, _, n in requests])

    def score_batch(self, requests: Sequence[tuple[Context, str]]) -> list[list[list[float]]]:
        """One padded backbone forward; the head at each reward token of each completion (not of the
        prompt)."""
        return self._score_rows([self.encode(ctx, completion) for ctx, completion in requests])

    def _generate_rows(
        self, rows: list[dict[str, Any]], samplings: Sequence[SamplingConfig], budgets: Sequence[int]
    ) -> list[Completion]:
        inputs = self.collate(rows)
        prompt_len = int(inputs["input_ids"].shape[1])
        config = GenerationConfig(
            **_PINNED_GENERATION,
            max_new_tokens=max(budgets),
            eos_token_id=self.eos_ids,
            pad_token_id=self.pad_id,
        )
        device = self.rm.device
        stops: list[StoppingCriteria] = [_RowBudget(prompt_len, budgets)]
        if self.stop_after_rewards:
            stops.append(_RewardStop(prompt_len, self.rm.reward_token_id, self.stop_after_rewards))
        with self._model_lock, torch.inference_mode():
            out = self.rm.model.generate(
                **inputs,
                generation_config=config,
                logits_processor=LogitsProcessorList([_Suppress(self.suppressed_ids), _RowSampler(samplings, device)]),
                stopping_criteria=StoppingCriteriaList(stops),
            )
        completions = []
        for i, row in enumerate(rows):
            new = out[i, prompt_len:].tolist()[: budgets[i]]
            stop = _cut(new, self.eos_ids, self.rm.reward_token_id, self.stop_after_rewards)
            kept = new if stop is None else new[: stop[0]]
            with self._tokenizer_lock:
                text = self.tokenizer.decode(kept, skip_special_tokens=False)
            completions.append(
                Completion(
                    text=text,
                    prompt_tokens=int(row["input_ids"].shape[1]),
                    completion_tokens=len(new) if stop is None else stop[1],
                    finish_reason="length" if stop is None else "stop",
                )
            )
        return completions

    def _score_rows(self, rows: list[dict[str, Any]]) -> list[list[list[float]]]:
        completion_starts = [int(r["completion_start"]) for r in rows]
        inputs = self.collate(rows)
        ids = inputs["input_ids"]
        lengths = [int(r["input_ids"].shape[1]) for r in rows]
        # left padding: row i's token t sits at column (T - len_i + t); keep reward tokens after the prompt
        starts = torch.tensor([ids.shape[1] - n + s for n, s in zip(lengths, completion_starts, strict=True)])
        in_completion = torch.arange(ids.shape[1]).unsqueeze(0) >= starts.unsqueeze(1)
        mask = (ids == self.rm.reward_token_id) & in_completion.to(ids.device)
        with self._model_lock, torch.inference_mode():
            hidden = self.rm.hidden_states(inputs)
            values = self.rm.head(hidden, mask, inputs["attention_mask"]).cpu()
        counts = mask.sum(dim=1).tolist()
        out, k = [], 0
        for c in counts:
            out.append(values[k : k + c].tolist())
            k += c
        return out

    # ---- encoding ------------------------------------------------------------------------------------------

    def render(self, context: Context) -> str:
        """The prompt text: the chat template over `context` with the assistant generation prompt."""
        with self._tokenizer_lock:
            text = self.processor.apply_chat_template(
                context.to_chat(), add_generation_prompt=True, tokenize=False
            )
        if not isinstance(text, str):
            raise EngineError(f"{self.model_id}: chat template returned {type(text).__name__}, not text")
        n_placeholders = text.count(self.image_token)
        if n_placeholders != len(context.images):
            raise EngineError(
                f"prompt has {n_placeholders} {self.image_token} placeholders but the context has "
                f"{len(context.images)} images; do not write {self.image_token} in message text"
            )
        return text

    def encode(self, context: Context, completion: str | None = None) -> dict[str, Any]:
        """One unpadded row (batch dim 1): prompt with images, plus `completion` tokens when given (then the
        row also has an int `completion_start`). Images are not resized: their grids are checked instead."""
        text = self.render(context)
        images = [Image.fromarray(p.pixels) for p in context.images]
        with self._tokenizer_lock:
            # numpy out, torch here: the processor's own torch path warns on every call under numpy 2
            enc = self.processor(text=[text], images=images or None, do_resize=False, return_tensors="np")
            extra = self.tokenizer(completion, add_special_tokens=False)["input_ids"] if completion else []
        row: dict[str, Any] = {
            k: torch.from_numpy(np.asarray(v)) for k, v in enc.items() if k in _PAD_VALUES or k in _IMAGE_KEYS
        }
        if images:
            expected = [
                [1, p.pixels.shape[0] // self.patch_size, p.pixels.shape[1] // self.patch_size]
                for p in context.images
            ]
            if row["image_grid_thw"].tolist() != expected:
                raise EngineError(
                    f"image grids {row['image_grid_thw'].tolist()} != expected {expected}: resized?"
                )
        if completion is not None:
            row["completion_start"] = int(row["input_ids"].shape[1])
            tail = torch.tensor([extra], dtype=row["input_ids"].dtype)
            row["input_ids"] = torch.cat([row["input_ids"], tail], dim=1)
            row["attention_mask"] = torch.cat([row["attention_mask"], torch.ones_like(tail)], dim=1)
            if "mm_token_type_ids" in row:
                zeros = torch.zeros_like(
                    tail, dtype=row["mm_token_type_ids"].dtype
                )  # completion text: type 0
                row["mm_token_type_ids"] = torch.cat([row["mm_token_type_ids"], zeros], dim=1)
        length = int(row["input_ids"].shape[1])
        if self.max_positions and length > self.max_positions:
            raise EngineError(
                f"sequence of {length} tokens exceeds the model's {self.max_positions} positions"
            )
        return row

    def collate(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Left-pad the per-token tensors; concatenate images in row order (the model consumes them in
        order)."""
        width = max(int(r["input_ids"].shape[1]) for r in rows)
        batch: dict[str, torch.Tensor] = {}
        for key, pad in _PAD_VALUES.items():
            if key not in rows[0]:
                continue
            value = self.pad_id if pad is None else pad
            padded = []
            for r in rows:
                t = r[key]
                fill = torch.full((1, width - t.shape[1]), value, dtype=t.dtype)
                padded.append(torch.cat([fill, t], dim=1))
            batch[key] = torch.cat(padded, dim=0)
        for key in _IMAGE_KEYS:
            parts = [r[key] for r in rows if key in r]
            if parts:
                batch[key] = torch.cat(parts, dim=0)
        device = self.rm.device
        return {k: v.to(device) for k, v in batch.items()}

    def _check_images(self, context: Context) -> None:
        for i, part in enumerate(context.images):
            shape = part.pixels.shape
            if len(shape) != 3 or shape[2] != 3 or part.pixels.dtype.name != "uint8":
                raise EngineError(
                    f"image {i} ({part.ref.video}:{part.ref.index}) must be HxWx3 uint8, got {shape}"
                )
            h, w = shape[:2]
            if h == 0 or w == 0 or h % self.factor or w % self.factor:
                raise EngineError(
                    f"image {i} (video {part.ref.video}, frame {part.ref.index}) is {h}x{w}; both sides "
                    f"must be positive multiples of {self.factor} (patch*merge of {self.model_id}). Resize "
                    "frames with the engine's factor (FrameSource does) before building the context."
                )

    def _run_batch(self, group: list[_Request]) -> list[Any]:
        """Encode each request on its own (a bad one gets its own error back, the others still run), then
        run the good ones as one batch. Returns one result or exception per request, in order."""
        results: list[Any] = [None] * len(group)
        good: list[int] = []
        rows: list[dict[str, Any]] = []
        for i, r in enumerate(group):
            try:
                rows.append(self.encode(r.context, r.completion if r.kind == "score" else None))
                good.append(i)
            except Exception as exc:  # noqa: BLE001 - returned to that request's caller
                results[i] = exc
        if good:
            batch: list[Any]
            if group[0].kind == "generate":
                reqs = [group[i] for i in good]
                batch = self._generate_rows(
                    rows, [r.sampling for r in reqs], [r.max_new_tokens for r in reqs]
                )
            else:
                batch = self._score_rows(rows)
            for i, value in zip(good, batch, strict=True):
                results[i] = value
        return results
