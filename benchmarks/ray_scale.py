"""Benchmark: `agentrm score --ray` episodes/s with 1 vs 2 Ray workers (1 torch thread each), tiny HF model.

    .venv/bin/python benchmarks/ray_scale.py                      # 32 pairwise episodes per setting, best of 2
    .venv/bin/python benchmarks/ray_scale.py --items 64 --kind qwen3_vl --workers 1 2 4

Baseline (measured in the same run): the same items on ONE Ray worker. Compared: N workers. Also printed, for
reference: the single-process path (`score_items`, no Ray) with one torch thread.
Throughput is steady state: episodes finished after the LAST worker was ready, divided by the time from then to
the end, so the ratio is not skewed by one worker loading its model later than another (start-up is printed
separately). Each episode: two synthetic videos, 2 overview frames each, up to 3 turns of up to 16 greedy tokens
on the tiny random model (which never answers, so every episode runs all its turns).
On a machine with C free cores the ideal ratio for N <= C workers is N; the driver, Ray's own processes and video
decoding share those cores, and tiny models make per-call overhead (not matmuls) the cost, so expect less.
This is a benchmark, not a test: it reports, it does not assert.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import torch

from agentrm.config import ScoreConfig
from agentrm.data.schema import Item
from agentrm.distributed import RayConfig, RaySummary, score_items_ray
from agentrm.engines.hf import HFEngine
from agentrm.scoring import score_items
from agentrm.testing import tiny_model_dir
from agentrm.trace import Trace
from agentrm.video.synthetic import write_index_video


def make_items(root: Path, n: int) -> list[Item]:
    videos = []
    for k, frames in enumerate((60, 90, 120)):
        path = root / f"v{k}.mp4"
        write_index_video(path, num_frames=frames, fps=10, size=(112, 84), gop=10)
        videos.append(str(path))
    return [Item(id=f"s{i:04d}", mode="pairwise", prompt=f"clip {i}: " + "a ball bounces " * (i % 4 + 1),
                 videos=[videos[i % 3], videos[(i + 1) % 3]]) for i in range(n)]


def ray_run(items: list[Item], cfg: ScoreConfig, workers: int, out: Path) -> tuple[float, RaySummary]:
    """Steady-state episodes/s with `workers` actors (see the module docstring)."""
    done_at: list[float] = []
    t_call = time.monotonic()

    def on_done(trace: Trace) -> None:
        done_at.append(time.monotonic() - t_call)

    summary = score_items_ray(items, cfg, out, RayConfig(num_workers=workers, threads_per_worker=1),
                              on_done=on_done)
    all_ready = max(summary.ready_s[:workers])
    after = [t for t in done_at if t > all_ready]
    return len(after) / (max(after) - all_ready), summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--kind", default="qwen2_5_vl", choices=["qwen2_5_vl", "qwen3_vl"])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--concurrency", type=int, default=4, help="episodes in flight per engine")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds; the best of each is kept")
    args = parser.parse_args()
    import ray

    torch.set_num_threads(1)
    cfg = ScoreConfig.model_validate({
        "engine": {"kind": "hf", "model": str(tiny_model_dir(args.kind)), "device": "cpu", "max_batch_size": 8},
        "episode": {"limits": {"max_turns": 3, "max_new_tokens": 16}, "overview": {"frames_per_video": 2}},
        "concurrency": args.concurrency,
    })
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        items = make_items(root, args.items)
        engine = HFEngine.from_config(cfg.engine, cfg.episode)
        asyncio.run(score_items(items[:4], engine, cfg, root / "warm.jsonl"))  # first-call costs out of the way
        t0 = time.perf_counter()
        asyncio.run(score_items(items, engine, cfg, root / "single.jsonl"))
        single = len(items) / (time.perf_counter() - t0)
        del engine

        ray.init(num_cpus=max(args.workers), include_dashboard=False, log_to_driver=False)
        rates: dict[int, float] = {}
        try:
            for r in range(args.repeats):  # interleaved, so load from other processes hits every setting alike
                for n in args.workers:
                    rate, summary = ray_run(items, cfg, n, root / f"ray{n}-{r}.jsonl")
                    rates[n] = max(rate, rates.get(n, 0.0))
                    print(f"{n} worker(s): {rate:6.2f} episodes/s steady state   start-up {summary.startup_s:5.1f} s "
                          f"(all ready at {max(summary.ready_s):5.1f} s)   total {summary.elapsed_s:5.1f} s "
                          f"after the first was ready", flush=True)
        finally:
            ray.shutdown()
    base = rates[args.workers[0]]
    print(f"\n{args.kind}, {args.items} pairwise episodes, {args.concurrency} in flight per engine, 1 thread each, "
          f"best of {args.repeats}")
    print(f"  single process (no Ray)     {single:6.2f} episodes/s")
    for n, rate in rates.items():
        print(f"  ray, {n} worker(s)          {rate:6.2f} episodes/s   ratio vs {args.workers[0]} worker(s): "
              f"{rate / base:4.2f}x")


if __name__ == "__main__":
    main()
