"""Write the synthetic data set: videos, pairwise + pointwise items per split, the experiment's episode config and
compact prompts, and the teacher's traces (agentic and uniform) — everything `agentrm synth generate` makes.

    out/
      videos/<split>/<pair>_v{1,2}.mp4    lossless 112x112, 2 fps, 1-5 minutes
      <split>.jsonl                       pairwise agentrm items (labels VQ, MQ, TA, OA; ties included)
      <split>_pointwise.jsonl             one item per video, score 1-5
      specs.jsonl                         the VideoSpec of every video (what the pixels are a function of)
      episode.yaml                        the ScoreConfig the experiment runs with (detail levels, window, limits)
      prompts/                            compact templates (override the packaged ones by name)
      teacher/<split>.jsonl               teacher traces, agentic policy (the cold-start data)
      teacher_uniform/<split>.jsonl       teacher traces, uniform policy (the baseline's cold-start data)

Seeds: every pair's content comes from `numpy.random.default_rng([seed, split index, pair index])`, so a split's
items do not change when another split's size does. Rendering runs in `workers` processes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import yaml

from agentrm.config import ScoreConfig
from agentrm.data.schema import Item
from agentrm.synth.scenes import (
    COLOURS,
    DEFECT_DIM,
    DEFECTS,
    FPS,
    MOTIONS,
    OVERVIEW_FRAMES,
    SHAPES,
    SIZE,
    Cue,
    DefectKind,
    VideoSpec,
    prompt_text,
    sample_video_spec,
    write_video,
)

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
TA_ERROR_P = 0.2

# Compact prompts for small models: short system text, no JSON schemas (the two tools are described in one line).
COMPACT_PROMPTS = {
    "system.j2": (
        "You compare two videos made from one prompt on VQ (visual quality), MQ (motion), TA (matches the "
        "prompt) and OA (overall). You see {{ overview_frames }} low-detail frames per video."
        "{% if tools %} Look closer with one tool call per turn: <tool_call>{\"name\": \"select_range\", "
        "\"arguments\": {\"video\": V, \"start_s\": A, \"end_s\": B, \"count\": N, \"detail\": \"high\"}}"
        "</tool_call>. Defects are short.{% endif %} Answer: <think>...</think><answer>{{ answer_example }}"
        "</answer>{{ reward_tokens }}"
    ),
    "intro.j2": (
        "Prompt: {{ prompt }}\n{% for v in videos %}Video {{ v.video }}: {{ \"%.2f\" | format(v.duration_s) }} s."
        "\n{% endfor %}{% if uniform %}Frames:{% else %}Overview:{% endif %}"
    ),
    "tool_result.j2": "<tool_response>{{ frames | length }} frames of video {{ frames[0].video }}:",
    "frame_label.j2": "[v{{ ref.video }} {{ \"%.1f\" | format(ref.timestamp_s) }}s]",
    "evicted.j2": "<tool_response>[video {{ frames[0].video }} {{ \"%.1f\" | format(frames[0].timestamp_s) }}-"
                  "{{ \"%.1f\" | format(frames[-1].timestamp_s) }} s: no longer in memory]</tool_response>",
}


def experiment_config() -> ScoreConfig:
    """The episode settings the task is designed for: 8 overview frames at low detail (56x56, 4 visual tokens),
    tool frames at high detail (112x112, 16 tokens), a 384-token window (the uniform baseline gets 12 high-detail
    frames per video from it; the teacher's 2 calls, 320 tokens with the overview, fit without eviction, so a
    trace trains as one row). One turn of slack over the teacher's three."""
    cfg = ScoreConfig()
    ep = cfg.episode
    ep.overview.frames_per_video = OVERVIEW_FRAMES
    ep.detail.levels = {"low": 56 * 56, "high": SIZE * SIZE}
    ep.window.max_visual_tokens = 384
    ep.window.max_frames = None
    ep.limits.max_turns = 4
    ep.limits.max_frames_per_call = 8
    ep.limits.max_total_frames = 24
    ep.limits.max_new_tokens = 240  # the uniform teacher reads 24 frames one by one: ~210 tokens
    ep.limits.max_context_tokens = 4096
    ep.tools = ["select_range"]
    cfg.concurrency = 4
    return cfg


def write_prompts(out: Path) -> Path:
    d = out / "prompts"
    d.mkdir(parents=True, exist_ok=True)
    for name, text in COMPACT_PROMPTS.items():
        (d / name).write_text(text + "\n", encoding="utf-8")
    return d


def pair_defects(rng: np.random.Generator) -> tuple[DefectKind | None, DefectKind | None]:
    """70 %: one video has a defect; 15 %: both; 15 %: neither."""
    u = rng.uniform()
    pick = lambda: DEFECTS[int(rng.integers(len(DEFECTS)))]  # noqa: E731
    if u < 0.7:
        bad = pick()
        return (bad, None) if rng.uniform() < 0.5 else (None, bad)
    return (pick(), pick()) if u < 0.85 else (None, None)


def pair_labels(specs: list[VideoSpec], prompt_colour: str) -> tuple[dict[str, str | float], list[int]]:
    """Pairwise labels and each video's problem count (VQ + MQ + TA)."""
    probs = []
    labels: dict[str, str | float] = {}
    flags = []
    for s in specs:
        f = {"VQ": False, "MQ": False, "TA": s.colour != prompt_colour}
        if s.defect is not None:
            f[DEFECT_DIM[s.defect.kind]] = True
        flags.append(f)
        probs.append(sum(f.values()))
    for d in ("VQ", "MQ", "TA"):
        a, b = flags[0][d], flags[1][d]
        labels[d] = "tie" if a == b else ("2" if a else "1")
    labels["OA"] = "tie" if probs[0] == probs[1] else ("1" if probs[0] < probs[1] else "2")
    return labels, probs


def make_pair(seed: int, split: int, k: int, min_s: float, max_s: float,
              cue: Cue = "dim") -> tuple[str, str, list[VideoSpec]]:
    rng = np.random.default_rng([seed, split, k])
    shape, motion = SHAPES[int(rng.integers(2))], list(MOTIONS)[int(rng.integers(2))]
    colours = list(COLOURS)
    colour = colours[int(rng.integers(len(colours)))]
    seconds = float(rng.uniform(min_s, max_s))
    n = int(seconds * FPS)
    specs = []
    for d in pair_defects(rng):
        c = colour
        if rng.uniform() < TA_ERROR_P:
            c = [x for x in colours if x != colour][int(rng.integers(len(colours) - 1))]
        specs.append(sample_video_spec(rng, n, shape, c, motion, d, cue))
    return prompt_text(shape, colour, motion), colour, specs


def _render(job: tuple[str, str]) -> None:
    path, spec_json = job
    if not Path(path).exists():
        tmp = Path(path).with_suffix(".tmp.mp4")
        write_video(tmp, VideoSpec.model_validate_json(spec_json))
        tmp.rename(path)


def generate(out: str | Path, sizes: dict[str, int], seed: int = 0, min_s: float = 60.0, max_s: float = 300.0,
             workers: int = 2, cue: Cue = "dim") -> dict[str, list[Item]]:
    """Write videos, items, specs, prompts and episode.yaml (see module docstring); returns the pairwise items.
    `cue`: how each video's disturbance shows (`VideoSpec.cue`)."""
    out = Path(out)
    items: dict[str, list[Item]] = {}
    jobs: list[tuple[str, str]] = []
    spec_rows = []
    for s_idx, split in enumerate(SPLITS):
        items[split] = []
        point: list[Item] = []
        (out / "videos" / split).mkdir(parents=True, exist_ok=True)
        for k in range(sizes.get(split, 0)):
            prompt, colour, specs = make_pair(seed, s_idx, k, min_s, max_s, cue)
            pid = f"synth-{split}-{k:04d}"
            paths = [str(out / "videos" / split / f"{pid}_v{v}.mp4") for v in (1, 2)]
            labels, probs = pair_labels(specs, colour)
            meta = {"duration_s": specs[0].duration_s, "defects": [s.defect.kind if s.defect else None
                                                                   for s in specs],
                    "colours": [s.colour for s in specs]}
            items[split].append(Item(id=pid, mode="pairwise", prompt=prompt, videos=paths, labels=labels, meta=meta))
            for v, (spec, path) in enumerate(zip(specs, paths, strict=True), 1):
                score = float(max(1, 5 - 2 * probs[v - 1]))
                point.append(Item(id=f"{pid}_v{v}", mode="pointwise", prompt=prompt, videos=[path],
                                  labels={"OA": score}, meta={"pair": pid}))
                jobs.append((path, spec.model_dump_json()))
                spec_rows.append({"video": path, "spec": spec.model_dump(mode="json")})
        _write_items(out / f"{split}.jsonl", items[split])
        _write_items(out / f"{split}_pointwise.jsonl", point)
    (out / "specs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in spec_rows), encoding="utf-8")
    write_prompts(out)
    (out / "episode.yaml").write_text(yaml.safe_dump(experiment_config().model_dump(mode="json")), encoding="utf-8")
    if workers > 1:
        with ProcessPoolExecutor(workers) as ex:
            list(ex.map(_render, jobs, chunksize=4))
    else:
        for job in jobs:
            _render(job)
    log.info("wrote %d videos and %s pairs under %s", len(jobs), {k: len(v) for k, v in items.items()}, out)
    return items


def _write_items(path: Path, items: list[Item]) -> None:
    path.write_text("".join(i.model_dump_json() + "\n" for i in items), encoding="utf-8")


def load_split(out: str | Path, split: str) -> list[Item]:
    path = Path(out) / f"{split}.jsonl"
    return [Item.model_validate_json(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


async def write_teacher_traces(out: str | Path, split: str, policy: str = "agentic",
                               concurrency: int = 8) -> tuple[Path, list[str]]:
    """Run the teacher through the real loop on a split; returns the traces file and the mismatching ids
    (pixel findings that contradict the labels; those traces are written too, flagged in meta)."""
    from agentrm.engines.scripted import ScriptedEngine
    from agentrm.episode import run_episode
    from agentrm.prompting import Prompts
    from agentrm.synth.teacher import Teacher
    from agentrm.trace import TraceWriter
    from agentrm.video import VideoPool

    out = Path(out)
    cfg = experiment_config()
    items = load_split(out, split)
    teacher = Teacher(items, cfg.episode, policy)
    engine = ScriptedEngine(responder=teacher, model_id=f"synth-teacher-{policy}")
    prompts = Prompts(out / "prompts")
    pool = VideoPool(cfg.episode.video)
    path = out / ("teacher" if policy == "agentic" else "teacher_uniform") / f"{split}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    sem = asyncio.Semaphore(concurrency)

    async def one(item: Item) -> object:
        async with sem:
            return await run_episode(engine, item, cfg.episode, pool, policy=policy,  # type: ignore[arg-type]
                                     prompts=prompts)

    traces = await asyncio.gather(*(one(i) for i in items))
    bad = set(teacher.stats.mismatches)
    with TraceWriter(path) as writer:
        for tr in traces:
            tr.inputs.meta["teacher_mismatch"] = tr.id in bad  # type: ignore[attr-defined]
            writer.write(tr)  # type: ignore[arg-type]
    pool.close()
    return path, sorted(bad)
