"""The learning proof: does agentrm's pipeline learn, and does the agentic loop beat a same-budget uniform reward
model on long videos? One command, fixed seeds, about an hour on 2 CPU cores:

    agentrm synth experiment --out docs/learning_proof --work runs/learning_proof

Stages (the agentic and the uniform arm run side by side, one process and one torch thread each):
1. data: `agentrm.synth.generate` (train/test splits, 1-5 minute videos) and the teacher's traces per policy;
2. model: `agentrm.synth.model` — a random-init Qwen2.5-VL (~1.2M parameters) with a task-trained tokenizer;
3. cold start: `agentrm.train.cold_start` on the teacher traces (full fine-tuning, vision included: there is no
   pretrained anything to protect), one trajectory row per trace;
4. rejection sampling: K sampled episodes per training item with the cold-start model, kept when every verdict
   is right (`agentrm.train.rejection_sampling.filter_samples`);
5. RS-SFT: the cold-start recipe again, from the cold-start checkpoint, on the kept traces (+ the teacher traces,
   so a small kept set does not make the model forget the search);
6. eval: every model (untrained, cold start, RS-SFT, for both arms) and the teacher judge the held-out test split
   through the real loop; `agentrm.eval` computes accuracies with CIs, by video length; `report.md` here adds
   the stage table and the goal line.
The uniform arm is the same model, data, recipe and visual-token budget, with `policy="uniform"`: 12
high-detail frames per video in one turn instead of overview + search.

What it simplifies: no GRPO stage (verl needs a GPU at useful sizes), tiny model and data, greedy decoding for
evaluation; the eval's tie threshold for head margins is tuned on the test pairs themselves (Ties Matter,
reported as such) — the headline numbers are from the written verdicts, which need no threshold.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentrm.data.schema import Item

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """Sizes and budgets; `quick` is a smoke run of the same code, not a result."""

    train: int = 160
    test: int = 60
    min_s: float = 60.0
    max_s: float = 300.0
    cold_epochs: float = 10.0
    rs_items: int = 60
    rs_k: int = 2
    rs_temperature: float = 0.3
    sft_epochs: float = 1.0
    lr: float = 1e-3
    concurrency: int = 8
    untrained_items: int = 20  # a random model writes max_new_tokens of noise every turn: a few items show it


QUICK = Plan(train=6, test=4, min_s=60.0, max_s=130.0, cold_epochs=1.0, rs_items=3, rs_k=2, sft_epochs=1.0,
             untrained_items=2)


def _train_overrides(model: str, traces: list[str], prompts: str, out: str, epochs: float, lr: float,
                     seed: int) -> list[str]:
    return [
        f"model.path={model}", "model.freeze_vision=false", "model.dtype=float32", "lora.enabled=false",
        f"data.train={json.dumps(traces)}", f"data.prompt_dir={prompts}", "data.cot_drop_prob=0.0",
        "data.mode=trajectory", "loss.pairwise=btt", f"training.output_dir={out}",
        f"training.num_train_epochs={epochs}", f"training.learning_rate={lr}", "training.use_cpu=true",
        "training.logging_steps=20", "training.save_steps=100000", "training.per_device_train_batch_size=1",
        "training.disable_tqdm=true", "training.warmup_steps=20", "training.weight_decay=0.01",
        f"training.seed={seed}",
    ]


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def train_stage(overrides: list[str]) -> str:
    """One `agentrm train cold-start` run (in a worker process); returns the final checkpoint dir. A stage whose
    final checkpoint exists is not run again (re-running the experiment resumes after the last finished stage)."""
    out = next(o.split("=", 1)[1] for o in overrides if o.startswith("training.output_dir="))
    if (Path(out) / "final" / "agentrm.json").is_file():
        return str(Path(out) / "final")
    _one_thread()
    from agentrm.config import load_config
    from agentrm.train.cold_start import main
    from agentrm.train_config import TrainConfig

    return str(main(load_config(TrainConfig, None, overrides)))


class StopAtAnswer:
    """Cuts a completion right after the answer's last reward token (one per video), like a stop string: a small
    model that has not learnt to count its `<Reward>` tokens keeps writing them until max_new_tokens, and the
    parser then rejects the turn. HFEngine has no stop strings (the proper fix: stop generation there)."""

    def __init__(self, engine: Any, reward_token: str, num_videos: int) -> None:
        self.engine, self.reward_token, self.n = engine, reward_token, num_videos
        self.name, self.model_id, self.factor = engine.name, engine.model_id, engine.factor
        self.normalization = getattr(engine, "normalization", None)

    async def generate(self, context: Any, sampling: Any, max_new_tokens: int) -> Any:
        from agentrm.engines.base import Completion

        c = await self.engine.generate(context, sampling, max_new_tokens)
        end = c.text.find("</answer>")
        if end < 0 or c.text.count(self.reward_token, end) <= self.n:
            return c
        cut = end
        for _ in range(self.n):
            cut = c.text.index(self.reward_token, cut) + len(self.reward_token)
        return Completion(text=c.text[:cut], prompt_tokens=c.prompt_tokens, completion_tokens=c.completion_tokens,
                          finish_reason="stop")

    async def score(self, context: Any, completion: str) -> Any:
        return await self.engine.score(context, completion)

    def count_tokens(self, context: Any) -> int:
        return int(self.engine.count_tokens(context))


async def _episodes(model: str, items: list[Item], out: Path, policy: str, prompts: str, temperature: float,
                    concurrency: int, seed: int) -> None:
    from agentrm.config import EngineConfig, SamplingConfig
    from agentrm.engines.hf import HFEngine
    from agentrm.episode import run_episode
    from agentrm.prompting import Prompts
    from agentrm.scoring import failed_trace
    from agentrm.synth.generate import experiment_config
    from agentrm.trace import TraceWriter
    from agentrm.train.rejection_sampling import SeededEngine
    from agentrm.video import VideoPool

    cfg = experiment_config()
    cfg.policy = policy  # type: ignore[assignment]
    engine: Any = HFEngine.from_config(EngineConfig(model=model, device="cpu", dtype="float32",
                                                    max_batch_size=concurrency), cfg.episode)
    if temperature > 0:
        engine = SeededEngine(engine)
    engine = StopAtAnswer(engine, cfg.episode.reward_token, cfg.episode.num_videos)
    sampling = SamplingConfig(temperature=temperature, seed=seed)
    pool, p = VideoPool(cfg.episode.video), Prompts(prompts)
    sem = asyncio.Semaphore(concurrency)
    out.unlink(missing_ok=True)
    with TraceWriter(out) as writer:
        async def one(item: Item) -> None:
            async with sem:
                try:
                    tr = await run_episode(engine, item, cfg.episode, pool, sampling, policy,  # type: ignore[arg-type]
                                           prompts=p, normalization=getattr(engine, "normalization", None))
                except Exception as exc:  # recorded, the run goes on (as in agentrm score)
                    log.exception("sample %s failed", item.id)
                    tr = failed_trace(item, exc, cfg, engine)
            writer.write(tr)

        await asyncio.gather(*(one(i) for i in items))
    pool.close()


def episodes_stage(model: str, items_file: str, out: str, policy: str, prompts: str, temperature: float = 0.0,
                   k: int = 1, limit: int | None = None, concurrency: int = 8, seed: int = 0) -> str:
    """Run a model through the loop on items (K samples each when k > 1; in a worker process)."""
    _one_thread()
    from agentrm.synth.generate import load_split
    from agentrm.train.rejection_sampling import expand

    items = load_split(Path(items_file).parent, Path(items_file).stem)[:limit]
    if k > 1:
        items = expand(items, k)
    asyncio.run(_episodes(model, items, Path(out), policy, prompts, temperature, concurrency, seed))
    return out


def rs_stage(model: str, items_file: str, out_dir: str, policy: str, prompts: str, plan: Plan, seed: int) -> str:
    """Sample, then keep the fully correct episodes (the rejection-sampling rule of agentrm train rs-sample)."""
    from agentrm.synth.generate import experiment_config
    from agentrm.train.rejection_sampling import KEPT, SAMPLES, filter_samples
    from agentrm.train_config import AcceptSection

    out = Path(out_dir)
    if (out / "stats_summary.json").is_file():
        return str(out / KEPT)
    out.mkdir(parents=True, exist_ok=True)
    episodes_stage(model, items_file, str(out / SAMPLES), policy, prompts, plan.rs_temperature, plan.rs_k,
                   plan.rs_items, plan.concurrency, seed)
    stats = filter_samples(out, AcceptSection(), experiment_config().episode)
    (out / "stats_summary.json").write_text(json.dumps({k: v for k, v in stats.items() if k != "per_item"},
                                                       indent=1, default=str))
    return str(out / KEPT)


def _pair(fn: Any, a: tuple[Any, ...], b: tuple[Any, ...]) -> tuple[Any, Any]:
    """fn(*a) and fn(*b) in two worker processes at once (one per core)."""
    import multiprocessing as mp

    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as ex:
        fa, fb = ex.submit(fn, *a), ex.submit(fn, *b)
        return fa.result(), fb.result()


def ship_model(checkpoint: str | Path, prompts: str | Path) -> Path:
    """Copy a checkpoint (+ the prompts it was trained with) to the package as `agentrm demo`'s default model.
    Training state is left out: the demo only needs the model, its head and its tokenizer."""
    from agentrm.demo import SYNTH_MODEL

    shutil.rmtree(SYNTH_MODEL, ignore_errors=True)
    shutil.copytree(checkpoint, SYNTH_MODEL, ignore=shutil.ignore_patterns("train_state*", "training_args*",
                                                                           "trainer_state*", "*.pt"))
    shutil.copytree(prompts, SYNTH_MODEL / "prompts")
    size = sum(f.stat().st_size for f in SYNTH_MODEL.rglob("*") if f.is_file())
    log.info("shipped %s as the demo's default model (%.1f MB)", checkpoint, size / 2**20)
    return SYNTH_MODEL


def run_experiment(out: str | Path, work: str | Path, quick: bool = False, seed: int = 0,
                   ship: bool = False, **sizes: Any) -> int:
    from agentrm.synth.generate import generate, write_teacher_traces
    from agentrm.synth.model import build_model, task_texts
    from agentrm.synth.report import write_experiment_report

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from dataclasses import replace

    plan = replace(QUICK if quick else Plan(), **sizes)
    work, out = Path(work), Path(out)
    data = work / "data"
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    # 1. data + teacher traces
    generate(data, {"train": plan.train, "dev": 0, "test": plan.test}, seed=seed, min_s=plan.min_s,
             max_s=plan.max_s, workers=2)
    teacher: dict[str, dict[str, str]] = {"agentic": {}, "uniform": {}}
    mismatches = 0
    for split in ("train", "test"):
        for policy in ("agentic", "uniform"):
            path, bad = asyncio.run(write_teacher_traces(data, split, policy))
            teacher[policy][split] = str(path)
            mismatches += len(bad) if policy == "agentic" else 0
    timings["data"] = time.perf_counter() - t0
    prompts = str(data / "prompts")

    # 2. the random-init model
    base = work / "base"
    if not (base / "config.json").exists():
        build_model(base, task_texts([teacher["agentic"]["train"], teacher["uniform"]["train"]], prompts), seed=seed)

    # 3. cold start, both arms at once
    t = time.perf_counter()
    ckpt: dict[str, dict[str, str]] = {"agentic": {}, "uniform": {}}

    def args(policy: str, traces: list[str], model: str, name: str, epochs: float) -> tuple[list[str]]:
        return (_train_overrides(model, traces, prompts, str(work / policy / name), epochs, plan.lr, seed),)

    ca, cu = _pair(train_stage, args("agentic", [teacher["agentic"]["train"]], str(base), "cold", plan.cold_epochs),
                   args("uniform", [teacher["uniform"]["train"]], str(base), "cold", plan.cold_epochs))
    ckpt["agentic"]["cold"], ckpt["uniform"]["cold"] = ca, cu
    timings["cold_start"] = time.perf_counter() - t

    # 4. rejection sampling with the cold-start models
    t = time.perf_counter()
    train_items = str(data / "train.jsonl")
    ka, ku = _pair(rs_stage, (ca, train_items, str(work / "agentic" / "rs"), "agentic", prompts, plan, seed),
                   (cu, train_items, str(work / "uniform" / "rs"), "uniform", prompts, plan, seed))
    timings["rs_sample"] = time.perf_counter() - t

    # 5. RS-SFT from the cold-start checkpoints
    t = time.perf_counter()
    sa, su = _pair(train_stage, args("agentic", [ka, teacher["agentic"]["train"]], ca, "rs_sft", plan.sft_epochs),
                   args("uniform", [ku, teacher["uniform"]["train"]], cu, "rs_sft", plan.sft_epochs))
    ckpt["agentic"]["rs_sft"], ckpt["uniform"]["rs_sft"] = sa, su
    timings["rs_sft"] = time.perf_counter() - t

    # 6. eval on the held-out split: two runs at a time
    t = time.perf_counter()
    test_items = str(data / "test.jsonl")
    ev = work / "eval"
    ev.mkdir(parents=True, exist_ok=True)
    few = plan.untrained_items
    runs = [("untrained", str(base), "agentic", few), ("cold_start", ca, "agentic", None),
            ("rs_sft", sa, "agentic", None), ("uniform_untrained", str(base), "uniform", few),
            ("uniform_cold_start", cu, "uniform", None), ("uniform_rs_sft", su, "uniform", None)]
    for i in range(0, len(runs), 2):
        (na, ma, pa, la), (nb, mb, pb, lb) = runs[i], runs[i + 1]
        _pair(episodes_stage, (ma, test_items, str(ev / f"{na}.jsonl"), pa, prompts, 0.0, 1, la),
              (mb, test_items, str(ev / f"{nb}.jsonl"), pb, prompts, 0.0, 1, lb))
    for policy, name in (("uniform", "teacher_uniform"), ("agentic", "teacher")):
        shutil.copy(teacher[policy]["test"], ev / f"{name}.jsonl")
    timings["eval"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0

    order = ["uniform_rs_sft", "uniform_untrained", "uniform_cold_start", "untrained", "cold_start", "rs_sft",
             "teacher_uniform", "teacher"]
    write_experiment_report(out, [ev / f"{n}.jsonl" for n in order], work, timings, plan, quick, mismatches)
    if ship and not quick:
        ship_model(sa, prompts)
    return 0
