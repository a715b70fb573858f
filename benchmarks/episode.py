"""Episode-loop benchmark: loop overhead, bounded context for any video length, and concurrent HF throughput.

    python benchmarks/episode.py            # ~2-4 min on 2 cores (first run encodes a 60-minute test video)

Prints, in one run:
1. per-turn loop overhead excluding model time (scripted engine: context rendering, parsing, tools, window; frame
   decoding shown separately);
2. visual tokens in context per turn for a 1-minute and a 60-minute video with the same settings (must be equal and
   within the window budget), next to what uniform 2-fps sampling at the same detail would put in context;
3. HF-engine throughput (tiny Qwen2.5-VL, 1 thread) with N concurrent episodes vs one at a time, as a ratio.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agentrm.config import EngineConfig, EpisodeConfig  # noqa: E402
from agentrm.data.schema import Item  # noqa: E402
from agentrm.engines.hf import HFEngine  # noqa: E402
from agentrm.engines.scripted import ScriptedEngine  # noqa: E402
from agentrm.episode import run_episode  # noqa: E402
from agentrm.testing import tiny_model_dir  # noqa: E402
from agentrm.trace import WindowEvent  # noqa: E402
from agentrm.video import VideoPool, smart_resize, visual_tokens  # noqa: E402
from agentrm.video.synthetic import write_index_video  # noqa: E402

CACHE = Path(os.environ.get("AGENTRM_CACHE", Path.home() / ".cache" / "agentrm")) / "bench"
FPS, SIZE = 30, (320, 180)


def video(minutes: int) -> Path:
    path = CACHE / f"episode_{minutes}min_{SIZE[0]}x{SIZE[1]}.mp4"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"encoding a {minutes}-minute test video (once) ...", flush=True)
        write_index_video(path, num_frames=minutes * 60 * FPS, fps=FPS, size=SIZE, gop=250)
    return path


def script(duration_s: float, turns: int = 6) -> list[str]:
    out = []
    for t in range(turns - 1):
        start = duration_s * t / turns
        args = {"video": 1 + t % 2, "start_s": round(start, 2), "end_s": round(start + duration_s / 20, 2), "count": 4}
        out.append(f'<think>check {t}</think><tool_call>{json.dumps({"name": "select_range", "arguments": args})}'
                   "</tool_call>")
    out.append('<think>done</think><answer>{"VQ": "1", "MQ": "1", "TA": "tie", "OA": "1"}</answer><Reward><Reward>')
    return out


def loop_overhead_and_tokens(cfg: EpisodeConfig) -> None:
    print("\n== 1+2. loop overhead and visual tokens per turn (scripted engine, 6 turns, window evicts) ==")
    tokens_by_length = {}
    for minutes in (1, 60):
        path = video(minutes)
        duration = minutes * 60 - 1
        item = Item(id=f"m{minutes}", mode="pairwise", prompt="p", videos=[str(path), str(path)])
        engine = ScriptedEngine.from_texts(script(duration))
        pool = VideoPool(cfg.video)
        asyncio.run(run_episode(engine, item, cfg, pool))  # warm: packet index + decoder opened
        runs = []
        for _ in range(5):
            pool.frame_cache.clear()  # measure decoding, not cache hits
            trace = asyncio.run(run_episode(engine, item, cfg, pool))
            t = trace.timings
            runs.append(((t["total_s"] - t["decode_s"] - t["generate_s"] - t["score_s"]) / trace.num_turns,
                         t["decode_s"] / trace.num_turns))
        windows = [e.state.visual_tokens for e in trace.events if isinstance(e, WindowEvent)]
        tokens_by_length[minutes] = windows
        over = statistics.median(r[0] for r in runs) * 1000
        dec = statistics.median(r[1] for r in runs) * 1000
        print(f"{minutes:>3}-min video: loop overhead {over:.2f} ms/turn (excl. model), frame decoding {dec:.1f} "
              f"ms/turn; visual tokens in context after each turn: {windows}")
    h, w = smart_resize(SIZE[1], SIZE[0], 28, cfg.detail.levels[cfg.detail.tool_default])
    per_frame = visual_tokens(h, w, 28)
    budget = cfg.window.max_visual_tokens
    assert tokens_by_length[1] == tokens_by_length[60], "context size must not depend on video length"
    assert max(tokens_by_length[60]) <= (budget or 0)
    for minutes in (1, 60):
        uniform = 2 * minutes * 60 * 2 * per_frame  # 2 fps, 2 videos
        print(f"{minutes:>3}-min pair: agentrm max {max(tokens_by_length[minutes])} tokens (budget {budget}) vs "
              f"uniform 2 fps {uniform} tokens -> {uniform / max(tokens_by_length[minutes]):.0f}x more")


async def _episodes(engine: HFEngine, items: list[Item], cfg: EpisodeConfig, pool: VideoPool, concurrent: bool
                    ) -> float:
    t0 = time.perf_counter()
    if concurrent:
        await asyncio.gather(*(run_episode(engine, i, cfg, pool) for i in items))
    else:
        for i in items:
            await run_episode(engine, i, cfg, pool)
    return time.perf_counter() - t0


def hf_throughput(cfg: EpisodeConfig, n: int = 8) -> None:
    print(f"\n== 3. HF engine (tiny Qwen2.5-VL, 1 thread): {n} episodes concurrently vs one at a time ==")
    torch.set_num_threads(1)
    cfg = cfg.model_copy(deep=True)
    cfg.limits.max_turns, cfg.limits.max_new_tokens = 2, 24
    engine = HFEngine.from_config(EngineConfig(model=str(tiny_model_dir("qwen2_5_vl")), device="cpu",
                                               max_batch_size=n), cfg)
    path = video(1)
    items = [Item(id=f"h{i}", mode="pairwise", prompt=f"prompt {i}", videos=[str(path), str(path)]) for i in range(n)]
    pool = VideoPool(cfg.video)
    asyncio.run(_episodes(engine, items[:1], cfg, pool, False))  # warm-up
    seq = min(asyncio.run(_episodes(engine, items, cfg, pool, False)) for _ in range(2))
    con = min(asyncio.run(_episodes(engine, items, cfg, pool, True)) for _ in range(2))
    print(f"one at a time: {n / seq:.2f} episodes/s; {n} concurrent: {n / con:.2f} episodes/s -> "
          f"{seq / con:.2f}x throughput")


def main() -> None:
    cfg = EpisodeConfig()
    cfg.window.max_visual_tokens, cfg.window.max_frames = 1024, None
    loop_overhead_and_tokens(cfg)
    hf_throughput(cfg)


if __name__ == "__main__":
    main()
