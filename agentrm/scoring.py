"""Score many items with one engine: concurrent episodes, one JSONL of traces, resumable.

Resume semantics: the output file is the record of what is finished. On start the existing traces are read (a torn
last line from a killed run is dropped) and their ids skipped, so re-running the same command after a kill redoes
nothing that finished, loses nothing, and writes no duplicate. A sample that fails (corrupt video, engine error) is
recorded as a trace with its termination reason and error; it counts as finished and the run goes on.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agentrm.config import ScoreConfig
from agentrm.data.schema import Item
from agentrm.engines.base import Engine
from agentrm.episode import run_episode
from agentrm.errors import DataError
from agentrm.trace import Trace, TraceInputs, TraceWriter, iter_traces
from agentrm.video import VideoPool

log = logging.getLogger(__name__)

FAILED = ("error", "video_error")


@dataclass
class ScoreSummary:
    total: int = 0
    skipped: int = 0  # finished by an earlier run
    scored: int = 0
    terminations: Counter[str] = field(default_factory=Counter)
    turns: list[int] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    elapsed_s: float = 0.0
    failed_before: int = 0  # failed samples recorded by an earlier run of the same output (not retried)

    @property
    def failed(self) -> int:
        """Failed samples in the whole output, this run's and earlier runs': the exit code reports these."""
        return sum(self.terminations[t] for t in FAILED) + self.failed_before

    def add(self, trace: Trace) -> None:
        """Count one trace just written."""
        self.scored += 1
        self.terminations[trace.termination or "error"] += 1
        self.turns.append(trace.num_turns)
        self.frames.append(trace.frames_viewed)

    def extra_rows(self) -> list[tuple[str, str]]:
        """More (label, value) rows for the end-of-run table; runners with more to say override this."""
        return []


def finished_ids(out: Path) -> set[str]:
    if not out.exists():
        return set()
    return {t.id for t in iter_traces(out)}


def check_unique(items: Sequence[Item]) -> None:
    counts = Counter(i.id for i in items)
    dupes = [k for k, n in counts.items() if n > 1]
    if dupes:
        raise DataError(f"sample ids must be unique (they are the resume key); repeated: {dupes[:10]}")


def failed_trace(item: Item, exc: BaseException | str, cfg: ScoreConfig, engine: Engine | dict[str, str]) -> Trace:
    """The trace of a sample that could not be scored: termination 'error' and why (an exception or a message).
    `engine` is the engine, or its {"name", "model_id"} where there is none at hand (the Ray driver)."""
    info = engine if isinstance(engine, dict) else {"name": engine.name, "model_id": engine.model_id}
    return Trace(
        id=item.id,
        inputs=TraceInputs(sample_id=item.id, mode=item.mode, prompt=item.prompt, videos=item.videos,
                           dims=cfg.episode.dims, labels=item.labels, meta=item.meta),
        policy=cfg.policy, termination="error",
        error=exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}",
        engine=dict(info), config=cfg.episode.model_dump(mode="json"),
    )


async def score_one(
    item: Item, engine: Engine, cfg: ScoreConfig, pool: VideoPool,
    normalization: dict[str, tuple[float, float]] | None = None,
) -> Trace:
    """One episode. An engine error becomes the sample's failed trace: it must not end a 10k-video run."""
    try:
        return await run_episode(engine, item, cfg.episode, pool, cfg.engine.sampling, cfg.policy,
                                 normalization=normalization)
    except Exception as exc:
        log.error("sample %s failed: %s", item.id, exc)
        log.debug("%s", traceback.format_exc())
        return failed_trace(item, exc, cfg, engine)


def open_run(items: Sequence[Item], out: str | Path) -> tuple[TraceWriter, list[Item], int]:
    """Start (or resume) a run writing to `out`: (the writer, the items still to score, how many were done).
    The caller closes the writer. Shared by `score_items` and the Ray driver (`agentrm.distributed`)."""
    check_unique(items)
    out = Path(out)
    writer = TraceWriter(out)  # opening repairs a torn tail before we read the finished ids
    try:
        done = finished_ids(out)
    except BaseException:
        writer.close()
        raise
    todo = [i for i in items if i.id not in done]
    skipped = len(items) - len(todo)
    if skipped:
        log.info("resuming: %d of %d samples already in %s", skipped, len(items), out)
    return writer, todo, skipped


def failed_before(items: Sequence[Item], out: str | Path) -> int:
    """Failed samples of `items` that an earlier run recorded in `out` (they are not retried; the exit code counts
    them)."""
    wanted = {i.id for i in items}
    return sum(1 for t in iter_traces(out) if t.id in wanted and t.termination in FAILED)


async def score_items(
    items: Sequence[Item],
    engine: Engine,
    cfg: ScoreConfig,
    out: str | Path,
    pool: VideoPool | None = None,
    on_done: Callable[[Trace], None] | None = None,
    normalization: dict[str, tuple[float, float]] | None = None,
) -> ScoreSummary:
    """Run every unfinished item through the episode loop, `cfg.concurrency` at a time, appending traces to `out`."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    summary = ScoreSummary(total=len(items))
    writer, todo, summary.skipped = open_run(items, out)
    if summary.skipped:
        summary.failed_before = failed_before(items, out)
    with writer:
        pool = pool or VideoPool(cfg.episode.video)
        if normalization is None:  # the checkpoint's stats (HF engine), unless the caller overrides them
            normalization = getattr(engine, "normalization", None)
        sem = asyncio.Semaphore(cfg.concurrency)

        async def one(item: Item) -> None:
            async with sem:
                trace = await score_one(item, engine, cfg, pool, normalization)
            writer.write(trace)
            summary.add(trace)
            if on_done is not None:
                on_done(trace)

        await asyncio.gather(*(one(i) for i in todo))
    summary.elapsed_s = loop.time() - start
    return summary
