"""Stage 2a, rejection sampling: K episodes per labelled item, keep the ones that got everything right.

    agentrm train rs-sample --config configs/rs_sample.yaml --input items.jsonl --out runs/rs [key=value ...]
    agentrm train sft --config configs/rs_sft.yaml          # stage 2b: the cold-start recipe on runs/rs/kept.jsonl

Each item is expanded into K samples (`<id>#<k>`, meta `rs_source_id`/`rs_k`) and run through the same loop and
resumable scorer as `agentrm score` (any engine: HF, vLLM, scripted), with the sampling seed offset per sample and
turn so the K samples differ. A sample is kept when (VR-Thinker's RS-SFT rule):
- the episode ended with a valid answer and, unless `accept.allow_format_errors`, no turn broke the format;
- every labelled dimension's verdict equals the label (pointwise: within `accept.pointwise_tolerance`) and the
  overall dimension is labelled (an answer whose overall verdict cannot be checked is not kept);
- optionally (`accept.require_head`) the head prefers the labelled video on every non-tie dimension (and, with
  `accept.head_tie_margin`, |difference| <= margin on ties).

Outputs in --out: `samples.jsonl` (every sample; the resume record: re-running skips finished samples),
`kept.jsonl` (accepted traces, rewritten from samples.jsonl at the end of every run) and `stats.json` (acceptance
overall, per dimension, per item, rejection reasons, items with zero accepted samples).
"""

from __future__ import annotations

import json
import os
import zlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentrm.config import EpisodeConfig, SamplingConfig
from agentrm.data.schema import Item
from agentrm.engines.base import Completion, Context, Engine
from agentrm.scoring import ScoreSummary, score_items
from agentrm.trace import ParseErrorEvent, Trace, TraceWriter, iter_traces
from agentrm.train_config import AcceptSection, RSSampleConfig

SAMPLES, KEPT, STATS = "samples.jsonl", "kept.jsonl", "stats.json"


class SeededEngine:
    """Passes everything to `engine`, offsetting the sampling seed by (sample id, turn): K samples of one item
    then draw different tokens, and each sample is still reproducible."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.name, self.model_id, self.factor = engine.name, engine.model_id, engine.factor

    async def generate(self, context: Context, sampling: SamplingConfig, max_new_tokens: int) -> Completion:
        if sampling.seed is not None:
            offset = zlib.crc32(f"{context.sample_id}:{context.turn}".encode())
            sampling = sampling.model_copy(update={"seed": (sampling.seed + offset) % 2**31})
        return await self.engine.generate(context, sampling, max_new_tokens)

    async def score(self, context: Context, completion: str) -> list[list[float]] | None:
        return await self.engine.score(context, completion)

    def count_tokens(self, context: Context) -> int:
        return self.engine.count_tokens(context)

    def __getattr__(self, name: str) -> Any:  # anything else the scorer asks (e.g. normalization stats)
        return getattr(self.engine, name)


def expand(items: Sequence[Item], k: int) -> list[Item]:
    return [
        item.model_copy(update={"id": f"{item.id}#{j}", "meta": {**item.meta, "rs_source_id": item.id, "rs_k": j}})
        for item in items for j in range(k)
    ]


def source_id(trace: Trace) -> str:
    return str(trace.inputs.meta.get("rs_source_id", trace.id))


@dataclass
class Judgement:
    accepted: bool
    reasons: list[str] = field(default_factory=list)
    correct: dict[str, bool] = field(default_factory=dict)  # per labelled dimension


def _verdict_ok(verdict: Any, label: Any, mode: str, tolerance: float) -> bool:
    if verdict is None:
        return False
    if mode == "pairwise":
        return str(verdict) == str(label)
    return abs(float(verdict) - float(label)) <= tolerance


def judge(trace: Trace, accept: AcceptSection, episode: EpisodeConfig) -> Judgement:
    """Whether `trace` is kept for SFT, and why not."""
    labels, verdicts = trace.inputs.labels, trace.verdicts or {}
    mode = trace.inputs.mode
    correct = {d: _verdict_ok(verdicts.get(d), labels[d], mode, accept.pointwise_tolerance)
               for d in episode.dims if d in labels}
    reasons = []
    if trace.termination != "answer":
        reasons.append(f"termination:{trace.termination}")
    if not accept.allow_format_errors and any(isinstance(e, ParseErrorEvent) for e in trace.events):
        reasons.append("format_error")
    if episode.overall_dim not in labels:
        reasons.append("no_overall_label")
    reasons += [f"wrong:{d}" for d, ok in correct.items() if not ok and trace.termination == "answer"]
    if accept.require_head and trace.termination == "answer":
        reasons += _head_disagreements(trace, accept, episode)
    return Judgement(not reasons, reasons, correct)


def _head_disagreements(trace: Trace, accept: AcceptSection, episode: EpisodeConfig) -> list[str]:
    raw = trace.raw_rewards
    if not raw or len(raw) != 2:
        return ["head_missing"]
    out = []
    for d, label in trace.inputs.labels.items():
        if d not in episode.dims:
            continue
        diff = raw[0][d] - raw[1][d]
        if label == "tie":
            if accept.head_tie_margin is not None and abs(diff) > accept.head_tie_margin:
                out.append(f"head:{d}")
        elif (diff > 0) != (label == "1") or diff == 0:
            out.append(f"head:{d}")
    return out


def filter_samples(out_dir: str | Path, accept: AcceptSection, episode: EpisodeConfig) -> dict[str, Any]:
    """Judge every sample in out_dir/samples.jsonl; write kept.jsonl and stats.json; return the stats."""
    out = Path(out_dir)
    traces = list(iter_traces(out / SAMPLES))
    per_item: dict[str, dict[str, int]] = defaultdict(lambda: {"sampled": 0, "accepted": 0})
    reasons: Counter[str] = Counter()
    dim_ok: Counter[str] = Counter()
    dim_n: Counter[str] = Counter()
    tmp = out / (KEPT + ".tmp")
    tmp.unlink(missing_ok=True)
    with TraceWriter(tmp) as writer:
        for trace in traces:
            j = judge(trace, accept, episode)
            item = per_item[source_id(trace)]
            item["sampled"] += 1
            item["accepted"] += j.accepted
            reasons.update(j.reasons)
            for d, ok in j.correct.items():
                dim_n[d] += 1
                dim_ok[d] += ok
            if j.accepted:
                writer.write(trace)
    os.replace(tmp, out / KEPT)
    accepted = sum(v["accepted"] for v in per_item.values())
    stats = {
        "items": len(per_item),
        "samples": len(traces),
        "accepted": accepted,
        "acceptance": accepted / len(traces) if traces else 0.0,
        "items_with_accepted": sum(1 for v in per_item.values() if v["accepted"]),
        "per_dimension": {d: dim_ok[d] / dim_n[d] for d in episode.dims if dim_n[d]},
        "reasons": dict(reasons.most_common()),
        "per_item": {k: {**v, "acceptance": v["accepted"] / v["sampled"]} for k, v in sorted(per_item.items())},
        "zero_accepted": sorted(k for k, v in per_item.items() if not v["accepted"]),
    }
    (out / STATS).write_text(json.dumps(stats, indent=2) + "\n")
    return stats


async def rs_sample(
    items: Sequence[Item], engine: Engine, cfg: RSSampleConfig, out_dir: str | Path, on_done: Any = None
) -> tuple[ScoreSummary, dict[str, Any]]:
    """Sample (resumably) then filter. Returns the scoring summary and the stats."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = await score_items(expand(items, cfg.k), SeededEngine(engine), cfg.score, out / SAMPLES, on_done=on_done)
    return summary, filter_samples(out, cfg.accept, cfg.score.episode)
