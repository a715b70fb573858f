"""Scoring at scale on Ray: a pool of engine actors, one writer in the driver, the same JSONL and resume semantics as
the single-process path (`agentrm.scoring`).

    agentrm score --ray --model ckpt/ --input bench.csv --out t.jsonl                      # local Ray, this machine
    agentrm score --ray --address auto --num-workers 16 --gpus-per-worker 1 --model ckpt/ ...  # a running cluster

How it works. The driver (the `agentrm score` process) reads the finished ids in the output, exactly as
`score_items` does, and starts `num_workers` Ray actors (`EpisodeWorker`). Each actor builds its own engine with
`make_engine` inside the actor, so weights load on the worker's GPU and are never pickled, and runs up to
`concurrency` episodes at once on its event loop (a Ray async actor): the same concurrency one engine gets in the
single-process path, so an HF engine batches them as it would there. The driver keeps exactly that many samples in
flight per actor and hands out the next one as a trace comes back (`ray.wait`): inputs are streamed, so 100k samples
never sit in Ray's queues, and a dead worker only ever had `concurrency` samples to lose. Traces come back as dicts
and the driver alone writes them, one fsync'd line each, as they complete: a killed driver loses only what was in
flight, and the same command run again resumes.

Why an actor pool and not Ray Data. Ray Data (`map_batches` with an actor-pool strategy) is the Ray idiom for
stateless one-shot batch inference over blocks, but an episode is a multi-turn async conversation whose batching
happens inside the engine across concurrent episodes; Ray Data would write its own sharded output files (or hand
blocks back in batches), and its retries are per block, so it cannot count attempts per sample, record a sample
that keeps killing workers as failed, or keep one resumable JSONL. An explicit pool of long-lived engine actors fed
by `ray.wait` is what verl's agent-loop workers and Ray's own LLM serving examples do; it is ~200 lines here.
Ray's built-in actor restarts (`max_restarts`) are not used either: they retry on the *same* actor and cannot single
out the sample that caused the crash.

Worker failure. When a worker dies (OOM kill, segfault, node lost) every sample it had in flight counts one attempt
and goes back to the front of the queue, to be picked up by the other workers, and the worker is replaced by a
fresh actor. A sample's last attempt (`max_attempts`, default 3) runs *alone* on a worker, so a sample is recorded as
failed (termination "error", "worker died N times ...") only once it has killed a worker by itself; samples that
merely shared a worker with it are retried and finish. Failures inside an episode (bad video, engine exception) are
not retries: they become the sample's trace on the worker, as in the single-process path.

What it simplifies: one driver process holds the item list (as `agentrm score` already does) and the writer; a
worker that hangs without dying is not detected (set `video.decode_timeout_s`; a hung GPU is out of scope).
Cluster nodes need the same agentrm install as the driver (same container image or a Ray runtime_env) and must see
the videos and the model at the same paths (a shared file system); a worker runs in the driver's working directory
when that exists on its node, so relative paths behave as in the single-process path.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from agentrm.config import ScoreConfig, StrictModel
from agentrm.data.schema import Item
from agentrm.engines.base import Engine
from agentrm.errors import ConfigError, EngineError
from agentrm.scoring import ScoreSummary, failed_before, failed_trace, open_run, score_one
from agentrm.trace import Trace

log = logging.getLogger(__name__)

_POLL_S = 2.0  # how often the driver wakes without results, to check start-up timeouts


class RayConfig(StrictModel):
    """How `agentrm score --ray` uses Ray (CLI flags map onto these fields)."""

    address: str | None = Field(
        None, description="None: start a local Ray on this machine; 'auto': the cluster this node belongs to "
        "(`ray start --head`); 'ray://host:10001': a remote cluster through Ray Client.")
    num_workers: int | None = Field(
        None, ge=1, description="Engine actors. None: as many as the cluster's GPUs (with gpus_per_worker) or CPUs "
        "fit, and never more than there are samples left.")
    gpus_per_worker: float = Field(0.0, ge=0, description="GPUs per engine actor (0 = CPU engine).")
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs Ray reserves per engine actor.")
    threads_per_worker: int | None = Field(
        None, ge=1, description="torch intra-op threads per actor; None = cpus_per_worker (at least 1).")
    max_attempts: int = Field(
        3, ge=1, description="Worker deaths a sample may be in flight for; at the last it runs alone, and if that "
        "worker dies too the sample is recorded as failed.")
    start_timeout_s: float = Field(
        1800.0, gt=0, description="How long one actor may take to get its resources and build its engine.")
    max_start_failures: int = Field(
        3, ge=1, description="Consecutive deaths of one actor before it is ready, after which the run stops.")

    @property
    def threads(self) -> int:
        return self.threads_per_worker or max(1, int(self.cpus_per_worker))


class EpisodeWorker:
    """One engine and many concurrent episodes. Ray runs it as an async actor (`ray.remote(EpisodeWorker)`), so
    `score` calls interleave on the actor's event loop exactly as episodes do in `score_items`."""

    def __init__(
        self, cfg: dict[str, Any], threads: int, normalization: dict[str, tuple[float, float]] | None = None,
        engine_factory: Callable[[], Engine] | None = None, cwd: str | None = None,
    ) -> None:
        from agentrm.engines import make_engine
        from agentrm.video import VideoPool

        if cwd and os.path.isdir(cwd):  # relative video/model/script paths mean what they mean to the driver
            os.chdir(cwd)
        self.cfg = ScoreConfig.model_validate(cfg)
        self.engine = engine_factory() if engine_factory is not None else make_engine(self.cfg.engine,
                                                                                     self.cfg.episode)
        if "torch" in sys.modules:  # a model engine: one worker = its own intra-op threads, not the node's cores
            import torch

            torch.set_num_threads(threads)
        self.pool = VideoPool(self.cfg.episode.video)
        # the checkpoint's reward stats (HF engine) unless the caller gives its own, as in `score_items`
        self.normalization = normalization if normalization is not None else getattr(self.engine, "normalization",
                                                                                       None)

    async def info(self) -> dict[str, Any]:
        """Called once after start-up: returning at all means the engine is built."""
        import ray

        return {"pid": os.getpid(), "node": ray.util.get_node_ip_address(), "name": self.engine.name,
                "model_id": self.engine.model_id}

    async def score(self, item: dict[str, Any]) -> dict[str, Any]:
        trace = await score_one(Item.model_validate(item), self.engine, self.cfg, self.pool, self.normalization)
        return trace.model_dump(mode="json")


@dataclass
class RaySummary(ScoreSummary):
    workers: int = 0
    worker_deaths: int = 0
    retried: int = 0  # sample attempts repeated after a worker died
    startup_s: float = 0.0  # connecting to Ray + the first worker building its engine (not in elapsed_s)
    ready_s: list[float] = field(default_factory=list)  # when each worker (replacements too) was ready, from start

    def extra_rows(self) -> list[tuple[str, str]]:
        return [("ray workers", str(self.workers)), ("worker deaths", str(self.worker_deaths)),
                ("samples retried", str(self.retried)), ("ray start-up", f"{self.startup_s:.1f} s")]


def connect(rcfg: RayConfig, workers_hint: int) -> bool:
    """`ray.init` unless Ray is already initialised in this process; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    if rcfg.address is not None:
        ray.init(address=rcfg.address)
        return True
    cpus = os.cpu_count() or 1
    need = workers_hint * rcfg.cpus_per_worker
    if need > cpus:  # Ray's CPUs are logical: declare enough for the workers asked for, and say so
        log.warning("%d workers x %g CPUs is more than this machine's %d cores; they will share them",
                    workers_hint, rcfg.cpus_per_worker, cpus)
    ray.init(num_cpus=max(cpus, int(need + 0.999)), include_dashboard=False)
    return True


def _pick_num_workers(rcfg: RayConfig, todo: int, started_here: bool) -> int:
    import ray

    res = ray.cluster_resources()
    gpus, cpus = float(res.get("GPU", 0)), float(res.get("CPU", 0))
    if rcfg.num_workers is not None:
        n = rcfg.num_workers
    elif rcfg.gpus_per_worker > 0:
        n = int(gpus // rcfg.gpus_per_worker)
    else:
        n = int(cpus // rcfg.cpus_per_worker)
    if rcfg.gpus_per_worker > 0 and started_here and n * rcfg.gpus_per_worker > gpus:
        raise ConfigError(f"{n} workers x {rcfg.gpus_per_worker:g} GPUs, but this machine has {gpus:g} GPU(s): "
                          "lower --num-workers or --gpus-per-worker (0 = CPU workers)")
    return max(1, min(n, todo))


@dataclass
class _Slot:
    """One place in the pool; its actor is replaced when it dies."""

    index: int
    actor: Any = None
    starting: Any = None  # ObjectRef of `info()` while the actor builds its engine
    started_at: float = 0.0
    start_failures: int = 0
    running: dict[Any, Item] = field(default_factory=dict)  # ObjectRef -> the sample it scores
    alone: bool = False  # running one sample's last attempt by itself
    draining: bool = False  # takes no new samples until empty, then runs a last attempt alone


class _Driver:
    """The scheduling loop: dispatch, `ray.wait`, write or retry. Single-threaded; owns the writer."""

    def __init__(self, ray: Any, worker_cls: Any, worker_args: tuple[Any, ...], cfg: ScoreConfig, rcfg: RayConfig,
                 todo: Sequence[Item], write: Callable[[Trace], None], summary: RaySummary, t0: float) -> None:
        self.ray, self.worker_cls, self.worker_args = ray, worker_cls, worker_args
        self.cfg, self.rcfg, self.write, self.summary = cfg, rcfg, write, summary
        self.queue: deque[Item] = deque(todo)  # first attempts, and retries at the front
        self.last: deque[Item] = deque()  # last attempts: each runs alone on a worker
        self.attempts: Counter[str] = Counter()
        self.where: dict[Any, _Slot] = {}  # every ObjectRef we wait on -> its slot
        self.slots: list[_Slot] = []
        self.engine_info = {"name": cfg.engine.kind, "model_id": cfg.engine.model}
        self.t0 = t0  # when the run started (summary.ready_s counts from it)
        self.first_ready: float | None = None

    def run(self, num_workers: int) -> None:
        self.slots = [_Slot(i) for i in range(num_workers)]
        for slot in self.slots:
            self._start(slot)
        while self.queue or self.last or any(s.running for s in self.slots):
            self._dispatch()
            if not self.where:  # cannot happen: every slot is starting or has samples; never wait on nothing
                raise EngineError("internal error: samples left but no Ray worker running or starting")
            ready, _ = self.ray.wait(list(self.where), num_returns=1, timeout=_POLL_S)
            if ready:  # take everything else that is done too, in one go
                seen = set(ready)
                rest = [r for r in self.where if r not in seen]
                ready += self.ray.wait(rest, num_returns=len(rest), timeout=0)[0] if rest else []
            for ref in ready:
                owner = self.where.pop(ref, None)
                if owner is None:  # dropped by a death handled earlier in this batch
                    continue
                if ref == owner.starting:
                    self._on_started(owner, ref)
                else:
                    self._on_result(owner, ref)
            self._check_start_timeouts()

    def shutdown(self) -> None:
        for slot in self.slots:
            if slot.actor is not None:
                self.ray.kill(slot.actor)

    # -------------------------------------------------------------------------------------------- actors
    def _start(self, slot: _Slot) -> None:
        slot.actor = self.worker_cls.remote(*self.worker_args)
        slot.starting = slot.actor.info.remote()
        slot.started_at = time.monotonic()
        self.where[slot.starting] = slot

    def _on_started(self, slot: _Slot, ref: Any) -> None:
        from ray.exceptions import RayActorError, RayError

        slot.starting = None
        try:
            info = self.ray.get(ref)
        except RayActorError as exc:
            if _init_raised(exc):  # the engine could not be built (bad model path, bad config): not a crash
                raise EngineError(f"Ray worker {slot.index} could not build its engine: {_init_error(exc)}") from None
            slot.start_failures += 1
            if slot.start_failures >= self.rcfg.max_start_failures:
                raise EngineError(f"Ray worker {slot.index} died {slot.start_failures} times while starting "
                                  f"(last: {_short(exc)}); finished traces are kept, re-run to resume") from None
            log.warning("Ray worker %d died while starting (%s); starting another", slot.index, _short(exc))
            self._start(slot)
            return
        except RayError as exc:
            raise EngineError(f"Ray worker {slot.index} failed to start: {_short(exc)}") from None
        slot.start_failures = 0
        self.engine_info = {"name": str(info["name"]), "model_id": str(info["model_id"])}
        now = time.monotonic()
        self.first_ready = self.first_ready or now
        self.summary.ready_s.append(now - self.t0)
        log.info("Ray worker %d ready (pid %s on %s)", slot.index, info["pid"], info["node"])

    def _check_start_timeouts(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.starting is not None and now - slot.started_at > self.rcfg.start_timeout_s:
                raise EngineError(
                    f"Ray worker {slot.index} did not start within {self.rcfg.start_timeout_s:.0f} s: it needs "
                    f"{self.rcfg.cpus_per_worker:g} CPU and {self.rcfg.gpus_per_worker:g} GPU, the cluster has "
                    f"{self.ray.available_resources()} free; lower --num-workers or the per-worker resources")

    def _on_death(self, slot: _Slot, exc: BaseException) -> None:
        """The worker process is gone: every sample it had counts one attempt and goes back; a new actor starts."""
        lost = list(slot.running.values())
        for ref in slot.running:
            self.where.pop(ref, None)
        slot.running.clear()
        slot.alone = slot.draining = False
        self.ray.kill(slot.actor)  # unreachable but maybe alive: make sure it can never answer
        self.summary.worker_deaths += 1
        log.warning("Ray worker %d died with %d sample(s) in flight (%s); retrying them and starting a new worker",
                    slot.index, len(lost), _short(exc))
        for item in lost:
            self._retry(item, exc)
        self._start(slot)

    # ------------------------------------------------------------------------------------------- samples
    def _dispatch(self) -> None:
        ready = [s for s in self.slots if s.starting is None and s.actor is not None]
        if self.last and ready and not any(s.draining or s.alone for s in ready):
            min(ready, key=lambda s: len(s.running)).draining = True  # reserve one worker for a last attempt
        for slot in ready:
            if slot.alone:
                continue
            if slot.draining:
                if not slot.running and self.last:
                    slot.draining, slot.alone = False, True
                    self._submit(slot, self.last.popleft())
                elif not self.last:
                    slot.draining = False
                continue
            while self.queue and len(slot.running) < self.cfg.concurrency:
                self._submit(slot, self.queue.popleft())

    def _submit(self, slot: _Slot, item: Item) -> None:
        ref = slot.actor.score.remote(item.model_dump(mode="json"))
        slot.running[ref] = item
        self.where[ref] = slot

    def _on_result(self, slot: _Slot, ref: Any) -> None:
        from ray.exceptions import RayActorError, RayError, RayTaskError

        item = slot.running[ref]
        try:
            data = self.ray.get(ref)
        except RayActorError as exc:  # the worker process died (OOM, killed, node lost)
            self.where[ref] = slot  # _on_death drops every ref of the slot, this one included
            self._on_death(slot, exc)
            return
        except RayTaskError as exc:  # our worker code raised outside the episode: a bug, recorded per sample
            self._finish(slot, ref)
            self.write(failed_trace(item, f"worker error: {_short(exc)}", self.cfg, self.engine_info))
            return
        except RayError as exc:  # the result was lost on its way back (object or node lost): try again
            self._finish(slot, ref)
            self._retry(item, exc)
            return
        self._finish(slot, ref)
        self.write(Trace.model_validate(data))

    def _finish(self, slot: _Slot, ref: Any) -> None:
        slot.running.pop(ref, None)
        slot.alone = False

    def _retry(self, item: Item, exc: BaseException) -> None:
        n = self.attempts[item.id] = self.attempts[item.id] + 1
        if n >= self.rcfg.max_attempts:
            alone = " (the last time it ran alone on its worker)" if n > 1 else ""
            log.error("sample %s: worker died %d times while running it; recorded as failed", item.id, n)
            self.write(failed_trace(item, f"WorkerDied: the Ray worker running this sample died {n} times{alone}; "
                                    f"last: {_short(exc)}", self.cfg, self.engine_info))
            return
        self.summary.retried += 1
        if n == self.rcfg.max_attempts - 1:
            self.last.append(item)
        else:
            self.queue.appendleft(item)


def _short(exc: BaseException) -> str:
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split())  # Ray colours its messages
    return f"{type(exc).__name__}: {text[:300]}"


def _init_raised(exc: BaseException) -> bool:
    """True when the actor died because its __init__ raised (a config error), not because its process died."""
    return bool(getattr(exc, "actor_init_failed", False))


def _init_error(exc: BaseException) -> str:
    """The exception __init__ raised (the last line of Ray's traceback text), e.g. 'EngineError: engine.model=...'."""
    lines = [ln for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(getattr(exc, "error_msg", "") or exc)).splitlines()
             if ln.strip()]
    return lines[-1].strip() if lines else _short(exc)


def score_items_ray(
    items: Sequence[Item],
    cfg: ScoreConfig,
    out: str | Path,
    rcfg: RayConfig | None = None,
    on_done: Callable[[Trace], None] | None = None,
    normalization: dict[str, tuple[float, float]] | None = None,
    engine_factory: Callable[[], Engine] | None = None,
) -> RaySummary:
    """`score_items` on a pool of Ray actors: same output, same resume semantics (see the module docstring).

    `engine_factory` (picklable, called inside each actor) replaces `make_engine(cfg.engine, ...)`: custom engines,
    tests. Uses the Ray of this process when `ray.init` was already called; otherwise connects (or starts a local
    Ray) and shuts it down at the end."""
    rcfg = rcfg or RayConfig()
    t0 = time.monotonic()
    summary = RaySummary(total=len(items))
    writer, todo, summary.skipped = open_run(items, out)
    if summary.skipped:
        summary.failed_before = failed_before(items, out)
    written: set[str] = set()

    def write(trace: Trace) -> None:
        if trace.id in written:  # cannot happen by construction; never let it reach the file
            log.error("sample %s came back twice; keeping the first trace", trace.id)
            return
        written.add(trace.id)
        writer.write(trace)
        summary.add(trace)
        if on_done is not None:
            on_done(trace)

    with writer:
        if not todo:
            return summary
        try:
            import ray
        except ImportError:
            raise ConfigError("--ray needs Ray: pip install 'agentrm[ray]' (or drop --ray)") from None
        started = connect(rcfg, rcfg.num_workers or 1)
        driver: _Driver | None = None
        try:
            summary.workers = _pick_num_workers(rcfg, len(todo), started and rcfg.address is None)
            worker_cls = ray.remote(EpisodeWorker).options(
                num_cpus=rcfg.cpus_per_worker, num_gpus=rcfg.gpus_per_worker, max_restarts=0,
                max_concurrency=cfg.concurrency + 4,  # the episodes, plus room for info() calls
            )
            args = (cfg.model_dump(mode="json"), rcfg.threads, normalization, engine_factory, os.getcwd())
            driver = _Driver(ray, worker_cls, args, cfg, rcfg, todo, write, summary, t0)
            log.info("scoring %d samples on %d Ray worker(s), %d episodes in flight each",
                     len(todo), summary.workers, cfg.concurrency)
            driver.run(summary.workers)
            end = time.monotonic()
            ready_at = driver.first_ready or end
            summary.startup_s, summary.elapsed_s = ready_at - t0, end - ready_at
        finally:
            if driver is not None:
                driver.shutdown()
            if started:
                ray.shutdown()
    return summary
