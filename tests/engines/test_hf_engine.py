"""HFEngine on the tiny Qwen2.5-VL and Qwen3-VL models: generation, batching, scoring, token counts."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import agentrm
from agentrm.config import EngineConfig, EpisodeConfig, SamplingConfig
from agentrm.engines.base import Completion, Context, Engine, ImagePart, Message, TextPart
from agentrm.engines.hf import HFEngine
from agentrm.errors import EngineError
from agentrm.trace import FrameRef

GREEDY = SamplingConfig(temperature=0.0)


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Iterator[HFEngine]:
    yield HFEngine(agentrm.load(tiny_model_dir), max_batch_size=8, batch_wait_ms=20)


def image(engine: HFEngine, seed: int, h: int, w: int) -> ImagePart:
    """A random frame of (h x w) blocks of the engine's factor."""
    f = engine.factor
    pixels = np.random.default_rng(seed).integers(0, 255, (h * f, w * f, 3), dtype=np.uint8)
    ref = FrameRef(video=1, index=seed, timestamp_s=seed / 2, detail="low", width=w * f, height=h * f, tokens=h * w)
    return ImagePart(ref, pixels)


def context(engine: HFEngine, seed: int, sizes: list[tuple[int, int]], text: str = "Which is better?") -> Context:
    parts: list[Any] = []
    for k, (h, w) in enumerate(sizes):
        parts += [TextPart(f"Frame {k}:"), image(engine, seed * 10 + k, h, w)]
    parts.append(TextPart(text))
    return Context([Message("system", [TextPart("You judge videos.")]), Message("user", parts)])


def processor_ids(engine: HFEngine, ctx: Context, suffix: str = "") -> dict[str, torch.Tensor]:
    """The reference encoding: the processor itself on the rendered prompt (no resize), plus `suffix` text."""
    text = engine.processor.apply_chat_template(ctx.to_chat(), add_generation_prompt=True, tokenize=False)
    images = [Image.fromarray(p.pixels) for p in ctx.images] or None
    encoded = engine.processor(text=[text + suffix], images=images, do_resize=False, return_tensors="np")
    return {k: torch.from_numpy(np.asarray(v)) for k, v in encoded.items()}  # "pt" warns under numpy 2


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_engine_satisfies_the_protocol(engine: HFEngine) -> None:
    assert isinstance(engine, Engine)
    assert engine.name == "hf" and engine.factor in (28, 32)


def test_generate_with_images(engine: HFEngine) -> None:
    ctx = context(engine, 0, [(2, 2), (1, 3)])
    out = run(engine.generate(ctx, GREEDY, 12))
    assert isinstance(out, Completion) and isinstance(out.text, str) and out.text
    assert out.prompt_tokens == engine.count_tokens(ctx) == processor_ids(engine, ctx)["input_ids"].shape[1]
    if out.finish_reason == "length":
        assert out.completion_tokens == 12
    else:
        assert out.finish_reason == "stop" and 1 <= out.completion_tokens <= 12


def test_greedy_matches_plain_hf_generate_and_stops_at_eos(engine: HFEngine) -> None:
    ctx = context(engine, 1, [(2, 2)])
    inputs = processor_ids(engine, ctx)
    with torch.no_grad():
        ref = engine.rm.model.generate(**inputs, max_new_tokens=10, do_sample=False)
    ref_ids = ref[0, inputs["input_ids"].shape[1] :].tolist()
    (out,) = engine.generate_batch([(ctx, GREEDY, 10)])
    assert out.text == engine.tokenizer.decode(ref_ids, skip_special_tokens=False)
    # make the token the model emits at step 6 an eos: the row must stop at its first occurrence
    stop_token = ref_ids[5]
    first = ref_ids.index(stop_token)
    saved = engine.eos_ids
    engine.eos_ids = [*saved, stop_token]
    try:
        (stopped,) = engine.generate_batch([(ctx, GREEDY, 10)])
    finally:
        engine.eos_ids = saved
    assert stopped.finish_reason == "stop"
    assert stopped.completion_tokens == first + 1  # the eos counts, its text does not
    assert stopped.text == engine.tokenizer.decode(ref_ids[:first], skip_special_tokens=False)


def test_batched_equals_sequential_under_greedy(engine: HFEngine) -> None:
    contexts = [
        context(engine, 2, [(2, 2), (2, 3)]),
        context(engine, 3, [(1, 1)], text="short"),
        context(engine, 4, [], text="no images at all, only a longer text prompt here"),
        context(engine, 5, [(3, 2), (1, 2), (2, 2)]),
        context(engine, 6, [(2, 1)]),
    ]
    sequential = [run(engine.generate(c, GREEDY, 16)) for c in contexts]
    batches: list[int] = []
    inner = engine._batcher.run

    def spy(group: list[Any]) -> list[Any]:
        batches.append(len(group))
        return inner(group)

    engine._batcher.run = spy
    try:

        async def together() -> list[Completion]:
            return list(await asyncio.gather(*(engine.generate(c, GREEDY, 16) for c in contexts)))

        batched = run(together())
    finally:
        engine._batcher.run = inner
    assert max(batches) > 1 and sum(batches) == len(contexts)  # really batched
    assert [b.text for b in batched] == [s.text for s in sequential]
    assert [b.prompt_tokens for b in batched] == [s.prompt_tokens for s in sequential]
    assert [b.completion_tokens for b in batched] == [s.completion_tokens for s in sequential]


def test_each_row_keeps_its_own_budget(engine: HFEngine) -> None:
    ctx = context(engine, 7, [(1, 2)])
    budgets = [3, 7, 12]
    batched = engine.generate_batch([(ctx, GREEDY, n) for n in budgets])
    alone = [engine.generate_batch([(ctx, GREEDY, n)])[0] for n in budgets]
    assert [b.text for b in batched] == [a.text for a in alone]
    for out, n in zip(batched, budgets, strict=True):
        assert out.completion_tokens <= n
        assert out.finish_reason == ("length" if out.completion_tokens == n else "stop")


def test_seeded_sampling_is_reproducible_alone_or_batched(engine: HFEngine) -> None:
    ctx = context(engine, 8, [(2, 2)])
    other = context(engine, 9, [(1, 1)])
    s1 = SamplingConfig(temperature=1.0, top_p=0.9, seed=1)
    alone = engine.generate_batch([(ctx, s1, 16)])[0]
    batched = engine.generate_batch([(other, SamplingConfig(temperature=0.7, seed=5), 16), (ctx, s1, 16)])[1]
    assert alone.text == batched.text
    other_seed = engine.generate_batch([(ctx, SamplingConfig(temperature=1.0, top_p=0.9, seed=2), 16)])[0]
    greedy = engine.generate_batch([(ctx, GREEDY, 16)])[0]
    assert len({alone.text, other_seed.text, greedy.text}) == 3
    unseeded = engine.generate_batch([(ctx, SamplingConfig(temperature=1.0, seed=None), 4)])[0]
    assert isinstance(unseeded.text, str)


def test_score_one_vector_per_reward_token(engine: HFEngine) -> None:
    # the prompt mentions <Reward> too: only the completion's reward tokens are read
    ctx = context(engine, 10, [(2, 2), (1, 2)], text="Answer, then end with <Reward>.")
    completion = "VQ 1, MQ 2 <Reward> overall 1 <Reward>"
    scores = run(engine.score(ctx, completion))
    assert isinstance(scores, list) and len(scores) == 2
    assert all(len(v) == len(engine.rm.dims) == 4 for v in scores)
    assert run(engine.score(ctx, completion)) == scores  # deterministic
    assert run(engine.score(ctx, "no reward token here")) == []
    # the same numbers as the model + head on the processor's own encoding of prompt + completion
    inputs = processor_ids(engine, ctx, completion)
    with torch.no_grad():
        direct = engine.rm.rewards(dict(inputs))[-2:]  # the last two reward tokens are the completion's
    assert np.allclose(np.array(scores), direct.numpy(), atol=1e-5)


def test_score_batched_equals_single(engine: HFEngine) -> None:
    requests = [
        (context(engine, 11, [(2, 2)]), "good <Reward>"),
        (
            context(engine, 12, [(1, 3), (2, 1)], text="a longer question about two frames"),
            "a <Reward> b <Reward>",
        ),
        (context(engine, 13, []), "text only <Reward>"),
    ]
    single = [run(engine.score(c, t)) for c, t in requests]

    async def together() -> list[Any]:
        return list(await asyncio.gather(*(engine.score(c, t) for c, t in requests)))

    batched = run(together())
    assert [len(s) for s in batched] == [1, 2, 1]
    for a, b in zip(single, batched, strict=True):
        assert np.allclose(np.array(a), np.array(b), atol=1e-5)


def test_generate_and_score_can_share_a_batch_window(engine: HFEngine) -> None:
    ctx = context(engine, 14, [(1, 1)])

    async def both() -> tuple[Completion, Any]:
        return await asyncio.gather(engine.generate(ctx, GREEDY, 4), engine.score(ctx, "x <Reward>"))

    gen, score = run(both())
    assert gen.completion_tokens <= 4 and len(score) == 1


@pytest.mark.parametrize("sizes", [[], [(1, 1)], [(2, 3), (3, 2), (1, 4)]])
def test_count_tokens_equals_processor_length(engine: HFEngine, sizes: list[tuple[int, int]]) -> None:
    ctx = context(engine, 15, sizes)
    expected = processor_ids(engine, ctx)["input_ids"].shape[1]
    assert engine.count_tokens(ctx) == expected
    ids = processor_ids(engine, ctx)["input_ids"][0]
    pad_id = engine.tokenizer.convert_tokens_to_ids(engine.image_token)
    assert int((ids == pad_id).sum()) == sum(h * w for h, w in sizes)  # (h/factor)*(w/factor) per frame


def test_frames_must_be_multiples_of_the_factor(engine: HFEngine) -> None:
    bad = context(engine, 16, [(1, 1)])
    part = bad.images[0]
    bad.messages[1].parts[1] = ImagePart(part.ref, part.pixels[:-2])
    with pytest.raises(EngineError, match=f"multiples of {engine.factor}"):
        engine.count_tokens(bad)
    with pytest.raises(EngineError, match="multiples"):
        run(engine.generate(bad, GREEDY, 4))
    text_with_pad = context(engine, 17, [], text="<|image_pad|>")
    with pytest.raises(EngineError, match="placeholders"):
        engine.count_tokens(text_with_pad)


def test_from_config(tiny_qwen3_vl_dir: Path, tmp_path: Path) -> None:
    cfg = EngineConfig(model=str(tiny_qwen3_vl_dir), device="cpu", dtype="float32", max_batch_size=2)
    engine = HFEngine.from_config(cfg, EpisodeConfig(dims=["VQ", "OA"]))
    assert engine.factor == 32 and engine.rm.dims == ["VQ", "OA"] and engine.model_id == str(tiny_qwen3_vl_dir)
    ctx = Context([Message("user", [TextPart("hi")])])
    assert len(run(engine.score(ctx, "<Reward>"))[0]) == 2
    with pytest.raises(EngineError, match="engine.model is empty"):
        HFEngine.from_config(EngineConfig())
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_qwen3_vl_dir / name, tmp_path / name)
    with pytest.raises(EngineError, match="engine.model=.*processor"):
        HFEngine.from_config(EngineConfig(model=str(tmp_path)))


def test_engine_survives_several_event_loops(engine: HFEngine) -> None:
    ctx = context(engine, 18, [(1, 1)])
    first = run(engine.generate(ctx, GREEDY, 3))
    second = run(engine.generate(ctx, GREEDY, 3))  # a new loop: a new batching worker
    assert first == second

    async def close() -> None:
        await engine.generate(ctx, GREEDY, 1)
        await engine.aclose()

    run(close())


def test_a_bad_request_fails_alone(engine: HFEngine) -> None:
    good = context(engine, 19, [(1, 1)])
    too_long = context(engine, 20, [], text="word " * 5000)  # > the tiny model's 4096 positions

    async def both() -> list[Any]:
        return list(
            await asyncio.gather(
                engine.generate(good, GREEDY, 3), engine.generate(too_long, GREEDY, 3), return_exceptions=True
            )
        )

    ok, failed = run(both())
    assert isinstance(ok, Completion) and ok == engine.generate_batch([(good, GREEDY, 3)])[0]
    assert isinstance(failed, EngineError) and "exceeds the model's 4096 positions" in str(failed)


@pytest.mark.gpu
def test_cuda_bfloat16(tiny_qwen2_5_vl_dir: Path) -> None:
    cfg = EngineConfig(model=str(tiny_qwen2_5_vl_dir), device="cuda", dtype="bfloat16")
    engine = HFEngine.from_config(cfg)
    assert engine.rm.device.type == "cuda" and engine.rm.head.net.weight.dtype == torch.float32
    ctx = context(engine, 21, [(2, 2)])
    out = run(engine.generate(ctx, GREEDY, 8))
    assert out.prompt_tokens == engine.count_tokens(ctx)
    scores = run(engine.score(ctx, out.text + " <Reward>"))
    assert len(scores) == 1 and all(np.isfinite(scores[0]))


def test_checkpoint_generation_defaults_do_not_leak_into_greedy(engine: HFEngine) -> None:
    """Qwen hub checkpoints ship do_sample/top_k/repetition_penalty defaults; greedy must stay argmax."""
    ctx = context(engine, 22, [(1, 2)])
    (before,) = engine.generate_batch([(ctx, GREEDY, 12)])
    gen_cfg = engine.rm.model.generation_config
    saved = gen_cfg.to_dict()
    gen_cfg.update(do_sample=True, temperature=0.1, top_k=1, top_p=0.001, repetition_penalty=5.0)
    try:
        (after,) = engine.generate_batch([(ctx, GREEDY, 12)])
    finally:
        gen_cfg.update(**saved)
    assert after == before


@contextlib.contextmanager
def prefer_token(engine: HFEngine, token_id: int) -> Iterator[None]:
    """Makes the model prefer `token_id` above everything (a forward hook on the LM head)."""

    def hook(module: Any, args: Any, out: torch.Tensor) -> torch.Tensor:
        out = out.clone()
        out[..., token_id] += 1e4
        return out

    handle = engine.rm.model.get_output_embeddings().register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def test_vision_placeholder_tokens_are_never_generated(engine: HFEngine) -> None:
    """Even when the model prefers <|image_pad|> above everything, the engine does not emit it (it would break the
    next turn's processor); the model's next choice is taken instead."""
    pad = engine.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert pad in engine.suppressed_ids
    with prefer_token(engine, pad):
        done = run(engine.generate(context(engine, 0, [(2, 2)]), SamplingConfig(), 8))
    assert "<|image_pad|>" not in done.text and done.completion_tokens >= 1


def test_generation_stops_after_one_reward_token_per_video(engine: HFEngine) -> None:
    """A model that keeps writing `<Reward>` is cut after the episode's number of videos (the answer is complete),
    the reward tokens kept; without the setting it runs to its budget."""
    saved = engine.stop_after_rewards
    try:
        with prefer_token(engine, engine.rm.reward_token_id):
            engine.stop_after_rewards = 2
            (two,) = engine.generate_batch([(context(engine, 0, [(2, 2)]), GREEDY, 8)])
            engine.stop_after_rewards = None
            (free,) = engine.generate_batch([(context(engine, 0, [(2, 2)]), GREEDY, 8)])
    finally:
        engine.stop_after_rewards = saved
    token = engine.rm.settings.reward_token
    assert two.text == token * 2 and two.completion_tokens == 2 and two.finish_reason == "stop"
    assert free.text == token * 8 and free.completion_tokens == 8 and free.finish_reason == "length"
