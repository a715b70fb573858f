"""Runs to evaluate: a traces JSONL (our model, agentic or uniform policy) or a scores CSV (any reward model),
reduced to light `Episode` records joined with human labels.

Traces are streamed and only what evaluation needs is kept (no events), so a 26k-episode run fits in memory.
A scores CSV becomes the same records (rewards, no verdicts, no episode statistics), so other models' outputs
are measured by exactly the same code as ours.

Scores CSV columns (one row per pair):
- `id` (required): the sample id, used to join `--benchmark` labels.
- labels, optional when `--benchmark` is given: `label` (the overall dimension), `label_<DIM>`, or bare
  dimension columns `VQ`, `MQ`, `TA`, `OA`, `Overall`; values A / B / tie (also same, 1, 2).
- scores: `score_A`, `score_B` (overall dimension), `score_A_<DIM>` / `score_B_<DIM>`, or VideoAlign's
  `reward_<DIM>_A` / `reward_<DIM>_B`. An empty or non-numeric score is a missing score: it counts as wrong.
Dimension names go through `canonical_dim` (Overall / ALL -> OA), as in the VideoGen-RewardBench loader.

Labels: the `--benchmark` file wins over the labels a trace carries; disagreements are counted and reported.
A trace whose id has no labels is counted as unlabelled and left out of the metrics (its number is reported).
"""

from __future__ import annotations

import csv
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agentrm.data.loaders import PAIR_LABEL_ALIASES, RowProblem
from agentrm.data.schema import Item
from agentrm.errors import DataError
from agentrm.trace import iter_traces

log = logging.getLogger(__name__)

OVERALL_ALIASES = {"overall": "OA", "all": "OA", "oa": "OA"}


def canonical_dim(name: str) -> str:
    """Overall / ALL / oa -> OA; other names unchanged (VQ, MQ, TA, Safety, ...)."""
    return OVERALL_ALIASES.get(name.strip().lower(), name.strip())


@dataclass
class Episode:
    """What evaluation needs from one trace (or one scores row)."""

    id: str
    mode: Literal["pairwise", "pointwise"] = "pairwise"
    labels: dict[str, str | float] = field(default_factory=dict)
    verdicts: dict[str, str | float] | None = None
    rewards: list[dict[str, float]] | None = None
    termination: str | None = None
    num_turns: int | None = None
    frames_viewed: int | None = None
    duration_s: float | None = None  # the longest video of the item
    judged: tuple[str, ...] = ()  # dimensions the run judges (trace inputs.dims, or the scores' columns)

    def margin(self, dim: str) -> float:
        """reward(video 1) - reward(video 2) for dim; NaN when the episode has no such reward."""
        r = self.rewards
        if self.mode != "pairwise" or not r or len(r) < 2 or dim not in r[0] or dim not in r[1]:
            return math.nan
        m = float(r[0][dim]) - float(r[1][dim])
        return m if math.isfinite(m) else math.nan

    def verdict(self, dim: str) -> str | float | None:
        return None if self.verdicts is None else self.verdicts.get(dim)

    def reward(self, dim: str) -> float:
        """Pointwise: the one video's reward (NaN when missing)."""
        if not self.rewards or dim not in self.rewards[0]:
            return math.nan
        return float(self.rewards[0][dim])


@dataclass
class Run:
    name: str
    source: str
    kind: Literal["traces", "scores"]
    episodes: list[Episode]
    policies: dict[str, int] = field(default_factory=dict)
    bad_lines: list[str] = field(default_factory=list)
    duplicates: int = 0
    unlabelled: int = 0
    label_mismatches: int = 0
    cache: dict[str, Any] = field(default_factory=dict, repr=False)  # per-dimension arrays (eval.report)

    @property
    def policy(self) -> str | None:
        if not self.policies:
            return None
        return next(iter(self.policies)) if len(self.policies) == 1 else "mixed"

    @property
    def has_verdicts(self) -> bool:
        return any(e.verdicts for e in self.episodes)

    @property
    def has_rewards(self) -> bool:
        return any(e.rewards for e in self.episodes)

    def labelled_dims(self) -> list[str]:
        """Labelled dimensions, agentrm's order first (VQ, MQ, TA, OA), then the rest as met."""
        seen: dict[str, None] = {}
        for e in self.episodes:
            seen.update(dict.fromkeys(e.labels))
        order = ["VQ", "MQ", "TA", "OA"]
        return [d for d in order if d in seen] + [d for d in seen if d not in order]

    def dims(self) -> list[str]:
        """Dimensions evaluated: labelled and judged by the run (a model that only scores OA is not marked
        wrong on VQ). Runs that do not say what they judge are evaluated on every labelled dimension."""
        judged = {d for e in self.episodes for d in e.judged}
        return [d for d in self.labelled_dims() if d in judged or not judged]


def load_trace_run(path: str | Path, name: str | None = None) -> Run:
    """Stream a traces JSONL into a Run. Later traces of the same id replace earlier ones (a resumed run)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: traces file not found")
    errors: list[str] = []
    by_id: dict[str, Episode] = {}
    policies: Counter[str] = Counter()
    duplicates = 0
    for t in iter_traces(p, errors):
        durations = [v.duration_s for v in t.videos if v.duration_s is not None]
        if t.id in by_id:
            duplicates += 1
        policies[t.policy] += 1
        by_id[t.id] = Episode(
            id=t.id,
            mode=t.inputs.mode,
            labels=dict(t.inputs.labels),
            verdicts=dict(t.verdicts) if t.verdicts is not None else None,
            rewards=[dict(r) for r in t.rewards] if t.rewards is not None else None,
            termination=t.termination,
            num_turns=t.num_turns,
            frames_viewed=t.frames_viewed,
            duration_s=max(durations) if durations else None,
            judged=tuple(t.inputs.dims),
        )
    if duplicates:
        log.warning("%s: %d trace(s) repeat an earlier id; the last one of each id is used", p, duplicates)
    return Run(
        name=name or p.stem,
        source=str(p),
        kind="traces",
        episodes=list(by_id.values()),
        policies=dict(policies),
        bad_lines=errors,
        duplicates=duplicates,
    )


def _score_columns(header: list[str], overall: str) -> dict[str, tuple[str, str]]:
    """dim -> (column of video A's score, column of video B's score)."""
    cols: dict[str, tuple[str, str]] = {}
    if "score_A" in header and "score_B" in header:
        cols[overall] = ("score_A", "score_B")
    for h in header:
        if h.startswith("score_A_") and f"score_B_{h[8:]}" in header:
            cols[canonical_dim(h[8:])] = (h, f"score_B_{h[8:]}")
        if h.startswith("reward_") and h.endswith("_A") and f"{h[:-2]}_B" in header:
            cols[canonical_dim(h[7:-2])] = (h, f"{h[:-2]}_B")
    return cols


def _label_columns(header: list[str], overall: str) -> dict[str, str]:
    """dim -> label column."""
    cols: dict[str, str] = {}
    for h in header:
        if h == "label":
            cols[overall] = h
        elif h.startswith("label_"):
            cols[canonical_dim(h[6:])] = h
        elif h in ("VQ", "MQ", "TA", "OA", "Overall"):
            cols[canonical_dim(h)] = h
    return cols


def _float(value: str | None) -> float:
    try:
        x = float(value) if value is not None else math.nan
    except ValueError:
        return math.nan
    return x if math.isfinite(x) else math.nan


def load_scores_run(
    path: str | Path, name: str | None = None, overall_dim: str = "OA", strict: bool = False
) -> Run:
    """Read another reward model's scores CSV (format in the module docstring) as a Run."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: scores file not found")
    with p.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        scores, labels = _score_columns(header, overall_dim), _label_columns(header, overall_dim)
        if "id" not in header or not scores:
            raise DataError(
                f"{p}:1: a scores CSV needs an 'id' column and score columns (score_A, score_B or "
                f"score_A_<DIM>, score_B_<DIM>); the header has {', '.join(header) or 'nothing'}"
            )
        by_id: dict[str, Episode] = {}
        problems: list[str] = []
        duplicates = 0
        for row in reader:
            line = reader.line_num
            try:
                ep = _scores_row(row, scores, labels)
            except ValueError as exc:
                problem = str(RowProblem(file=str(p), line=line, problem=str(exc)))
                if strict:
                    raise DataError(f"{problem} (strict mode: fix the row, or drop --strict)") from None
                problems.append(problem)
                continue
            duplicates += ep.id in by_id
            by_id[ep.id] = ep
    if problems:
        log.warning("%s: skipped %d bad row(s), first: %s", p, len(problems), problems[0])
    return Run(
        name=name or p.stem,
        source=str(p),
        kind="scores",
        episodes=list(by_id.values()),
        bad_lines=problems,
        duplicates=duplicates,
    )


def _scores_row(
    row: dict[str, str | None], scores: dict[str, tuple[str, str]], labels: dict[str, str]
) -> Episode:
    sid = (row.get("id") or "").strip()
    if not sid:
        raise ValueError("empty id")
    ep_labels: dict[str, str | float] = {}
    for dim, col in labels.items():
        raw = (row.get(col) or "").strip()
        if raw == "":
            continue  # no label for this dimension in this row
        if raw.lower() not in PAIR_LABEL_ALIASES:
            raise ValueError(f"unknown label {raw!r} in column {col!r} (expected A, B or tie)")
        ep_labels[dim] = PAIR_LABEL_ALIASES[raw.lower()]
    reward_a = {dim: _float(row.get(a)) for dim, (a, _) in scores.items()}
    reward_b = {dim: _float(row.get(b)) for dim, (_, b) in scores.items()}
    return Episode(id=sid, labels=ep_labels, rewards=[reward_a, reward_b], judged=tuple(scores))


def attach_labels(run: Run, items: list[Item] | None) -> None:
    """Use the benchmark's labels (when given) and drop episodes with no labels, counting both effects."""
    if items is not None:
        by_id = {it.id: it for it in items}
        for ep in run.episodes:
            item = by_id.get(ep.id)
            if item is None:
                ep.labels = {}
                continue
            if ep.labels and ep.labels != item.labels:
                run.label_mismatches += 1
            ep.labels = dict(item.labels)
            ep.mode = item.mode
    kept = [ep for ep in run.episodes if ep.labels]
    run.unlabelled = len(run.episodes) - len(kept)
    if run.unlabelled:
        log.warning("%s: %d episode(s) have no labels and are left out", run.source, run.unlabelled)
    if run.label_mismatches:
        log.warning(
            "%s: %d episode(s) carry labels that differ from the benchmark's",
            run.source,
            run.label_mismatches,
        )
    run.episodes = kept
    run.cache.clear()
