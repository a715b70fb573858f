"""The evaluation report's records: report.json is `EvalReport.model_dump_json()`, versioned like traces.

`agentrm.eval.report` computes them; the markdown, the plots and `--eps-from` read only these models.
Bump REPORT_SCHEMA_VERSION on a breaking change.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import Field, model_validator

from agentrm.config import StrictModel

REPORT_SCHEMA_VERSION = "1"
Source = Literal["margin", "verdict"]


class EvalSettings(StrictModel):
    overall_dim: str = Field("OA", description="The overall dimension (headline, buckets, plots).")
    length_buckets_s: list[float] = Field(
        default_factory=lambda: [60.0, 120.0, 300.0],
        description="Edges of the video-length buckets, seconds.",
    )
    frames_bins: list[int] = Field(
        default_factory=lambda: [1, 9, 17, 25, 33, 49], description="Edges of the frames-viewed bins."
    )
    n_boot: int = Field(1000, ge=0, description="Bootstrap resamples for the 95% CIs (0 = no CIs).")
    seed: int = Field(0, description="Seed of the bootstrap.")
    alpha: float = Field(0.05, gt=0, lt=1, description="1 - confidence level of the intervals.")
    eps: dict[str, float] | None = Field(
        None, description="Fixed tie threshold per dimension ('*' = every dimension); others are tuned."
    )
    eps_from: str | None = Field(
        None, description="A report.json (dev split) whose eps per dimension is used."
    )

    @model_validator(mode="after")
    def _sorted(self) -> EvalSettings:
        for name in ("length_buckets_s", "frames_bins"):
            edges = getattr(self, name)
            if not edges or any(b <= a for a, b in zip(edges, edges[1:], strict=False)) or min(edges) <= 0:
                raise ValueError(f"{name} must be increasing positive edges, got {edges}")
        return self


class Metric(StrictModel):
    value: float | None = Field(description="None when there was nothing to measure.")
    ci: tuple[float, float] | None = None
    n: int = Field(description="Items in the denominator.")
    n_missing: int = Field(0, description="Items without a verdict/reward among n (counted wrong).")


class TiesMetric(Metric):
    eps: float
    eps_tuned: bool
    eps_source: str


class PairDimReport(StrictModel):
    dim: str
    n_pairs: int
    n_tie_labels: int
    margin_no_ties: Metric | None = None
    margin_ties: TiesMetric | None = None
    verdict_no_ties: Metric | None = None
    verdict_ties: Metric | None = None
    agreement: Metric | None = None


class PointDimReport(StrictModel):
    dim: str
    n: int
    n_missing_verdict: int
    n_missing_reward: int
    verdict_pearson: float | None = None
    verdict_spearman: float | None = None
    reward_pearson: float | None = None
    reward_spearman: float | None = None


class BucketReport(StrictModel):
    label: str
    accuracy: Metric


class EpisodeStats(StrictModel):
    n: int
    terminations: dict[str, int]
    no_verdict: int
    no_reward: int
    turns: dict[str, float | None]
    frames_viewed: dict[str, float | None]


class RunReport(StrictModel):
    name: str
    source: str
    kind: Literal["traces", "scores"]
    policy: str | None
    n_episodes: int = Field(description="Labelled episodes evaluated.")
    n_unlabelled: int
    n_duplicates: int
    n_bad_lines: int
    n_label_mismatches: int
    primary: Source | None
    pairwise: list[PairDimReport] = Field(default_factory=list)
    pointwise: list[PointDimReport] = Field(default_factory=list)
    stats: EpisodeStats | None = None
    by_length: list[BucketReport] = Field(default_factory=list)
    by_frames: list[BucketReport] = Field(default_factory=list)
    bucket_dim: str | None = Field(None, description="Dimension of by_length / by_frames (the overall one).")

    def dim(self, name: str) -> PairDimReport | None:
        return next((d for d in self.pairwise if d.dim == name), None)


class DeltaReport(StrictModel):
    run: str
    baseline: str
    dim: str
    metric: Literal["no_ties", "ties"]
    run_source: Source
    baseline_source: Source
    delta: Metric


class EvalReport(StrictModel):
    schema_version: str = REPORT_SCHEMA_VERSION
    created_at: float = Field(default_factory=time.time)
    settings: EvalSettings
    benchmark: str | None = None
    benchmark_format: str | None = None
    benchmark_items: int | None = None
    benchmark_skipped: int = 0
    runs: list[RunReport]
    deltas: list[DeltaReport] = Field(default_factory=list)
    plots: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
