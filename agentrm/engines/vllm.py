"""VLLMEngine: fast async generation with vLLM (GPU only, `pip install agentrm[vllm]`), scoring via HF.

Many episodes are in flight at once: each `generate` is one vLLM request (continuous batching does the rest), with
the context rendered by the model's own chat template and the frames passed as `multi_modal_data` images. Frames
arrive already resized to multiples of the model's factor, so the processor's min/max pixels are set to keep them
as they are.

`score` needs the hidden state at the `<Reward>` tokens, which vLLM does not expose: it is delegated to an
`HFEngine` over the same checkpoint, loaded ONCE at start (DeScore reloads its head every batch), which batches the
one-pass prefills of concurrent episodes.

Not verified on these CPU machines (vLLM wheels are GPU-only): the prompt construction (`vllm_prompt`) is unit
tested with the HF processor; the vLLM calls follow vLLM's documented AsyncLLMEngine API.
"""

from __future__ import annotations

import uuid
from typing import Any

from agentrm.config import EngineConfig, EpisodeConfig, SamplingConfig
from agentrm.engines.base import Completion, Context
from agentrm.engines.hf import HFEngine
from agentrm.errors import EngineError


def vllm_prompt(hf: HFEngine, context: Context) -> dict[str, Any]:
    """The vLLM request prompt for `context`: chat-template text + images, with pixel bounds that keep the
    already-resized frames unchanged."""
    from PIL import Image

    images = [Image.fromarray(p.pixels) for p in context.images]
    prompt: dict[str, Any] = {"prompt": hf.render(context)}
    if images:
        largest = max(p.pixels.shape[0] * p.pixels.shape[1] for p in context.images)
        prompt["multi_modal_data"] = {"image": images}
        prompt["mm_processor_kwargs"] = {"min_pixels": hf.factor * hf.factor, "max_pixels": largest}
    return prompt


class VLLMEngine:
    name = "vllm"

    def __init__(self, llm: Any, scorer: HFEngine) -> None:
        self.llm = llm
        self.scorer = scorer
        self.model_id = scorer.model_id
        self.factor = scorer.factor

    @classmethod
    def from_config(cls, config: EngineConfig, episode: EpisodeConfig | None = None) -> VLLMEngine:
        try:
            from vllm import AsyncEngineArgs, AsyncLLMEngine
        except ImportError as exc:
            raise EngineError(
                "engine.kind=vllm needs vLLM (GPU only): pip install 'agentrm[vllm]'; or use engine.kind=hf"
            ) from exc
        scorer = HFEngine.from_config(config, episode)  # the head + reward token; weights loaded once
        dtype = "auto" if config.dtype == "auto" else config.dtype
        args = AsyncEngineArgs(model=config.model, dtype=dtype, limit_mm_per_prompt={"image": 256},
                               enable_prefix_caching=True)  # pinned overview first: prefixes survive eviction
        return cls(AsyncLLMEngine.from_engine_args(args), scorer)

    async def generate(self, context: Context, sampling: SamplingConfig, max_new_tokens: int) -> Completion:
        from vllm import SamplingParams

        params = SamplingParams(
            temperature=sampling.temperature, top_p=sampling.top_p, max_tokens=max_new_tokens,
            seed=None if sampling.temperature == 0 or sampling.seed is None else sampling.seed,
            skip_special_tokens=False,  # the <Reward> tokens must survive decoding
        )
        final = None
        async for out in self.llm.generate(vllm_prompt(self.scorer, context), params, request_id=uuid.uuid4().hex):
            final = out
        if final is None:
            raise EngineError("vLLM returned no output")
        choice = final.outputs[0]
        text = choice.text
        for tok in ("<|im_end|>", "<|endoftext|>"):
            text = text.removesuffix(tok)
        return Completion(text=text, prompt_tokens=len(final.prompt_token_ids or []),
                          completion_tokens=len(choice.token_ids),
                          finish_reason="length" if choice.finish_reason == "length" else "stop")

    async def score(self, context: Context, completion: str) -> list[list[float]] | None:
        return await self.scorer.score(context, completion)

    def count_tokens(self, context: Context) -> int:
        return self.scorer.count_tokens(context)

    @property
    def normalization(self) -> dict[str, tuple[float, float]] | None:
        return self.scorer.normalization
