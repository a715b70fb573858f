"""Benchmark: HFEngine batching vs one request at a time, on the tiny offline Qwen-VL models.

    .venv/bin/python benchmarks/hf_engine.py                     # both tiny models, 8 concurrent requests
    .venv/bin/python benchmarks/hf_engine.py --requests 16 --threads 2

Baseline (measured in the same run): the same N greedy requests awaited one after another, each a batch of
one. Compared: the N requests awaited concurrently (asyncio.gather), which the engine gathers into padded
batches of up to max_batch_size. Also printed: one scoring forward pass, one 20-token generate, and N scores
batched vs sequential.
Each context: a system prompt, two frames of 2x2 factor blocks (16 visual tokens each) and a question.
Tiny random models make the model cost small, so the ratios here mostly measure per-call overhead (processor,
generate set-up) that batching amortises; on a real 7B model on a GPU the batched gain comes from the matmuls.
This is a benchmark, not a test: it reports, it does not assert (batched greedy texts are checked equal).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

import agentrm
from agentrm.config import SamplingConfig
from agentrm.engines.base import Context, ImagePart, Message, TextPart
from agentrm.engines.hf import HFEngine
from agentrm.testing import TINY_KINDS, tiny_model_dir
from agentrm.trace import FrameRef

GREEDY = SamplingConfig(temperature=0.0)


def make_context(factor: int, seed: int) -> Context:
    rng = np.random.default_rng(seed)
    parts: list[Any] = []
    for k in range(2):
        ref = FrameRef(
            video=1, index=k, timestamp_s=k, detail="low", width=2 * factor, height=2 * factor, tokens=4
        )
        parts += [
            TextPart(f"Frame {k}:"),
            ImagePart(ref, rng.integers(0, 255, (2 * factor,) * 2 + (3,), np.uint8)),
        ]
    parts.append(TextPart(f"Request {seed}: which frame is sharper?" + " detail" * (seed % 5)))
    return Context([Message("system", [TextPart("You judge videos.")]), Message("user", parts)])


def best_of(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench(kind: str, n: int, repeats: int) -> None:
    engine = HFEngine(agentrm.load(tiny_model_dir(kind)), max_batch_size=n, batch_wait_ms=5)  # type: ignore[arg-type]
    contexts = [make_context(engine.factor, i) for i in range(n)]

    async def sequential() -> list[Any]:
        return [await engine.generate(c, GREEDY, 20) for c in contexts]

    async def concurrent() -> list[Any]:
        return list(await asyncio.gather(*(engine.generate(c, GREEDY, 20) for c in contexts)))

    async def score_seq() -> list[Any]:
        return [await engine.score(c, "fine <Reward>") for c in contexts]

    async def score_conc() -> list[Any]:
        return list(await asyncio.gather(*(engine.score(c, "fine <Reward>") for c in contexts)))

    seq_texts = [c.text for c in asyncio.run(sequential())]
    assert [c.text for c in asyncio.run(concurrent())] == seq_texts, "batched greedy != sequential"
    one_fwd = best_of(lambda: engine.score_batch([(contexts[0], "fine <Reward>")]), repeats)
    one_gen = best_of(lambda: engine.generate_batch([(contexts[0], GREEDY, 20)]), repeats)
    t_direct = best_of(lambda: [engine.generate_batch([(c, GREEDY, 20)]) for c in contexts], repeats)
    t_seq = best_of(lambda: asyncio.run(sequential()), repeats)
    t_conc = best_of(lambda: asyncio.run(concurrent()), repeats)
    s_seq = best_of(lambda: asyncio.run(score_seq()), repeats)
    s_conc = best_of(lambda: asyncio.run(score_conc()), repeats)
    tokens = engine.count_tokens(contexts[0])
    print(f"{kind}: prompt {tokens} tokens (2 frames), {n} requests, best of {repeats}")
    print(f"  one score forward      {one_fwd * 1e3:7.1f} ms")
    print(f"  one 20-token generate  {one_gen * 1e3:7.1f} ms")
    print(
        f"  generate x{n}: sequential {t_seq * 1e3:7.1f} ms ({n / t_seq:6.1f} req/s)   "
        f"batched {t_conc * 1e3:7.1f} ms ({n / t_conc:6.1f} req/s)   speed-up {t_seq / t_conc:4.1f}x"
    )
    print(
        f"  generate x{n}: one at a time without the queue (no batch wait) {t_direct * 1e3:7.1f} ms   "
        f"batched speed-up vs that {t_direct / t_conc:4.1f}x"
    )
    print(
        f"  score    x{n}: sequential {s_seq * 1e3:7.1f} ms ({n / s_seq:6.1f} req/s)   "
        f"batched {s_conc * 1e3:7.1f} ms ({n / s_conc:6.1f} req/s)   speed-up {s_seq / s_conc:4.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on shared cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for kind in TINY_KINDS:
        bench(kind, args.requests, args.repeats)


if __name__ == "__main__":
    main()
