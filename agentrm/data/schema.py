"""The labelled item: what every loader produces and every episode consumes.

One record type for both modes keeps the loop simple: a pairwise item has two videos and labels "1" / "2" / "tie"
per dimension (VideoGen-RewardBench's A / B / same); a pointwise item has one video and numeric labels.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from agentrm.config import StrictModel

PairLabel = Literal["1", "2", "tie"]
PAIR_LABELS: tuple[str, ...] = ("1", "2", "tie")


class Item(StrictModel):
    id: str = Field(description="Unique sample id; the resume key of `agentrm score`.")
    mode: Literal["pairwise", "pointwise"]
    prompt: str = Field(description="The text prompt the video(s) were generated from.")
    videos: list[str] = Field(description="Video paths (files or frame directories): 2 pairwise, 1 pointwise.")
    labels: dict[str, str | float] = Field(
        default_factory=dict, description="Human labels per dimension: '1'/'2'/'tie' pairwise, numbers pointwise."
    )
    meta: dict[str, Any] = Field(default_factory=dict, description="Anything else from the source row.")

    @model_validator(mode="after")
    def _check(self) -> Item:
        want = 2 if self.mode == "pairwise" else 1
        if len(self.videos) != want:
            raise ValueError(f"{self.mode} item {self.id!r} needs {want} video(s), got {len(self.videos)}")
        for dim, label in self.labels.items():
            if self.mode == "pairwise" and label not in PAIR_LABELS:
                raise ValueError(f"item {self.id!r} label {dim}={label!r}: pairwise labels are '1', '2' or 'tie'")
            if self.mode == "pointwise" and not isinstance(label, int | float):
                raise ValueError(f"item {self.id!r} label {dim}={label!r}: pointwise labels are numbers")
        return self
