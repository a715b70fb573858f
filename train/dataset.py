"""Traces -> a torch Dataset of training units, with head targets, CoT dropping and a padding collator.

A unit is what one dataset index yields; a batch holds `per_device_train_batch_size` units:
- "lm":         one non-answer turn (per-turn mode): next-token loss only.
- "pair":       the answer turn of a pairwise trace: next-token loss + the head on its two <Reward> tokens
                (video 1, video 2) against the per-dimension labels ("1" -> +1, "2" -> -1, "tie" -> 0).
- "point":      the answer turn of a pointwise trace: the head on its one <Reward> token against the absolute
                labels scaled to [0, 1] (loss.pointwise = bce or mse).
- "point_pair": loss.pointwise = bt: the answer turns of two pointwise traces with the same prompt (paired in
                id order within a prompt; an odd one out is trained by next-token loss only), compared by label
                order per dimension (equal labels are a tie).

CoT dropping (probability `cot_drop_prob`, one draw per head unit, both rows of a point_pair together): the head
reads an extra copy of the answer turn whose <think> content is removed (`train.data.drop_cot`); the original row
keeps its next-token labels and is not read by the head, so the LM never learns to skip its reasoning while the
head learns to score without leaning on it. Each draw is a function of (data.seed, epoch, unit): the same in every
data-loader worker, different in each epoch, and exact when a run resumes.

The dev split (without dev files) holds out whole prompts, by a hash of (seed, prompt).
"""

from __future__ import annotations

import logging
import random
import zlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import Dataset

from agentrm.config import VideoConfig
from agentrm.errors import DataError
from agentrm.losses import LABEL_SIGN
from agentrm.prompting import Prompts
from agentrm.trace import Trace, iter_traces
from agentrm.train.data import (
    IGNORE,
    IMAGE_KEYS,
    Row,
    RowPlan,
    TurnEncoder,
    check_frame_sizes,
    drop_cot,
    episode_config,
    plan_trace,
    resolve_video,
    trace_fetcher,
    turn_contexts,
)
from agentrm.video import VideoPool

log = logging.getLogger(__name__)

UnitKind = Literal["lm", "pair", "point", "point_pair"]


@dataclass(frozen=True)
class Unit:
    kind: UnitKind
    rows: tuple[RowPlan, ...]


@dataclass
class PlanStats:
    traces: int = 0
    skipped_unanswered: int = 0
    trajectory: int = 0
    trajectory_fallback: int = 0
    rows_too_long: int = 0
    units: Counter[str] | None = None


def read_trace_files(paths: Sequence[str], labels: dict[str, dict[str, str | float]] | None) -> list[Trace]:
    traces: list[Trace] = []
    for path in paths:
        if not Path(path).is_file():
            raise DataError(f"trace file {path} not found (data.train / data.dev)")
        errors: list[str] = []
        traces.extend(iter_traces(path, errors))
        if errors:
            log.warning("%s: skipped %d bad line(s), first: %s", path, len(errors), errors[0])
    if labels:
        for t in traces:
            key = str(t.inputs.meta.get("rs_source_id", t.inputs.sample_id))
            if key in labels:
                t.inputs.labels = dict(labels[key])
    return traces


def split_dev(traces: list[Trace], fraction: float, seed: int) -> tuple[list[Trace], list[Trace]]:
    def held_out(t: Trace) -> bool:
        return zlib.crc32(f"{seed}:{t.inputs.prompt}".encode()) / 2**32 < fraction

    return [t for t in traces if not held_out(t)], [t for t in traces if held_out(t)]


def plan_units(
    traces: list[Trace], encoder: TurnEncoder, prompts: Prompts, *, trajectory: bool, pointwise_bt: bool,
    max_length: int | None, lm_only_units: bool = True,
) -> tuple[list[Unit], PlanStats]:
    stats = PlanStats(traces=len(traces), units=Counter())
    units: list[Unit] = []
    head_rows: dict[int, RowPlan] = {}
    for i, trace in enumerate(traces):
        plans, used = plan_trace(i, trace, encoder, prompts, trajectory)
        stats.trajectory += used
        stats.trajectory_fallback += trajectory and not used
        for p in plans:
            if max_length is not None and p.length > max_length:
                stats.rows_too_long += 1
                continue
            if p.head:
                want = episode_config(trace).num_videos
                if p.reward_tokens != want:
                    raise DataError(f"trace {trace.id!r}: the answer turn has {p.reward_tokens} reward tokens, "
                                    f"expected {want}")
                head_rows[i] = p
            elif p.lm and lm_only_units:
                units.append(Unit("lm", (p,)))
    pointwise = [i for i in head_rows if traces[i].inputs.mode == "pointwise"]
    for i, p in head_rows.items():
        if traces[i].inputs.mode == "pairwise":
            units.append(Unit("pair", (p,)))
        elif not pointwise_bt:
            units.append(Unit("point", (p,)))
    if pointwise_bt:
        by_prompt: dict[str, list[int]] = defaultdict(list)
        for i in pointwise:
            by_prompt[traces[i].inputs.prompt].append(i)
        for members in by_prompt.values():
            members.sort(key=lambda i: traces[i].id)
            for a, b in zip(members[0::2], members[1::2], strict=False):
                units.append(Unit("point_pair", (head_rows[a], head_rows[b])))
            if len(members) % 2:
                odd = head_rows[members[-1]]
                units.append(Unit("lm", (RowPlan(odd.trace, odd.turn, odd.lm, False, odd.length, odd.spans),)))
    for u in units:
        stats.units[u.kind] += 1  # type: ignore[index]
    return units, stats


class TraceDataset(Dataset[dict[str, Any]]):
    """Units rendered on demand: contexts re-rendered from the trace, pixels fetched through a VideoPool."""

    def __init__(
        self,
        traces: list[Trace],
        units: list[Unit],
        encoder: TurnEncoder,
        prompts: Prompts,
        dims: list[str],
        *,
        cot_drop_prob: float = 0.0,
        seed: int = 0,
        video_root: str | None = None,
        video_config: VideoConfig | None = None,
    ) -> None:
        self.traces, self.units, self.encoder, self.prompts, self.dims = traces, units, encoder, prompts, dims
        self.cot_drop_prob, self.seed, self.video_root = cot_drop_prob, seed, video_root
        self.epoch = 0  # set by EpochCallback at each epoch start
        self.video_config = video_config or VideoConfig()
        self._pool: VideoPool | None = None
        for t in traces:
            check_frame_sizes(t, encoder.factor)
            for v in t.videos:
                if not Path(resolve_video(v.path, video_root)).exists():
                    raise DataError(f"trace {t.id!r}: video {v.path} not found; set data.video_root")

    def __len__(self) -> int:
        return len(self.units)

    def __getstate__(self) -> dict[str, Any]:  # data-loader workers open their own videos
        return {**self.__dict__, "_pool": None}

    @property
    def pool(self) -> VideoPool:
        if self._pool is None:
            self._pool = VideoPool(self.video_config)
        return self._pool

    def dropped(self, index: int) -> bool:
        # a pure function of (seed, epoch, unit): the same in every data-loader worker, different each epoch, and
        # exact on resume (global RNG draws would depend on how far the loader had prefetched at the checkpoint)
        if self.cot_drop_prob <= 0:
            return False
        return random.Random(f"{self.seed}:{self.epoch}:{index}").random() < self.cot_drop_prob

    def _rows(self, plan: RowPlan, drop: bool) -> list[Row]:
        trace = self.traces[plan.trace]
        fetch = trace_fetcher(trace, self.pool, self.encoder.factor, self.video_root)
        (turn,) = turn_contexts(trace, fetch, self.prompts, only=plan.turn)
        enc = self.encoder
        if not (plan.head and drop) or drop_cot(turn.completion) == turn.completion:
            return [enc.encode(turn.context, turn.completion, lm=plan.lm, head=plan.head, spans=plan.spans)]
        return [
            enc.encode(turn.context, turn.completion, lm=plan.lm, head=False, spans=plan.spans),
            enc.encode(turn.context, drop_cot(turn.completion), lm=False, head=True),
        ]

    def label_signs(self, trace: Trace) -> tuple[list[float], list[bool]]:
        labels = trace.inputs.labels
        ys = [float(LABEL_SIGN.get(str(labels.get(d)), 0)) for d in self.dims]
        return ys, [str(labels.get(d)) in LABEL_SIGN for d in self.dims]

    def point_target(self, trace: Trace) -> tuple[list[float], list[bool]]:
        lo, hi = episode_config(trace).score_range
        labels = trace.inputs.labels
        vals = [labels.get(d) for d in self.dims]
        ok = [isinstance(v, int | float) for v in vals]
        return [min(1.0, max(0.0, (float(v) - lo) / (hi - lo))) if isinstance(v, int | float) else 0.0
                for v in vals], ok

    def __getitem__(self, index: int) -> dict[str, Any]:
        unit = self.units[index]
        drop = unit.kind != "lm" and self.dropped(index)
        rows = [r for plan in unit.rows for r in self._rows(plan, drop)]
        item: dict[str, Any] = {"rows": rows, "pairs": [], "points": []}
        if unit.kind == "pair":  # reward vectors in order: the head row's video 1, video 2
            ys, mask = self.label_signs(self.traces[unit.rows[0].trace])
            item["pairs"].append((0, 1, ys, mask))
        elif unit.kind == "point":
            target, mask = self.point_target(self.traces[unit.rows[0].trace])
            item["points"].append((0, target, mask))
        elif unit.kind == "point_pair":
            (ta, ma), (tb, mb) = (self.point_target(self.traces[p.trace]) for p in unit.rows)
            ys = [float((a > b) - (a < b)) for a, b in zip(ta, tb, strict=True)]
            item["pairs"].append((0, 1, ys, [x and y for x, y in zip(ma, mb, strict=True)]))
        return item


class Collator:
    """Right-pads rows (labels with -100, masks with 0), concatenates images in row order and re-indexes the
    head targets into the flat list of reward vectors of the batch (row by row, left to right)."""

    def __init__(self, pad_id: int, num_dims: int) -> None:
        self.pad_id, self.num_dims = pad_id, num_dims

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        rows: list[Row] = []
        pairs, pair_y, pair_mask, points, point_t, point_mask = [], [], [], [], [], []
        for item in items:
            base = sum(r.reward_count for r in rows)
            rows.extend(item["rows"])
            for a, b, ys, mask in item["pairs"]:
                pairs.append([base + a, base + b])
                pair_y.append(ys)
                pair_mask.append(mask)
            for a, target, mask in item["points"]:
                points.append(base + a)
                point_t.append(target)
                point_mask.append(mask)
        width = max(int(r.tensors["input_ids"].shape[0]) for r in rows)
        pads = {"input_ids": self.pad_id, "labels": IGNORE, "attention_mask": 0, "reward_mask": False,
                "mm_token_type_ids": 0}
        batch: dict[str, torch.Tensor] = {}
        for key, value in pads.items():
            if key not in rows[0].tensors:
                continue
            batch[key] = torch.stack([
                torch.cat([r.tensors[key], torch.full((width - r.tensors[key].shape[0],), value,
                                                      dtype=r.tensors[key].dtype)]) for r in rows
            ])
        for key in IMAGE_KEYS:
            parts = [r.tensors[key] for r in rows if key in r.tensors]
            if parts:
                batch[key] = torch.cat(parts)
        d = self.num_dims
        batch["pair_index"] = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2)
        batch["pair_y"] = torch.tensor(pair_y, dtype=torch.float32).reshape(-1, d)
        batch["pair_mask"] = torch.tensor(pair_mask, dtype=torch.bool).reshape(-1, d)
        batch["point_index"] = torch.tensor(points, dtype=torch.long)
        batch["point_target"] = torch.tensor(point_t, dtype=torch.float32).reshape(-1, d)
        batch["point_mask"] = torch.tensor(point_mask, dtype=torch.bool).reshape(-1, d)
        return batch
