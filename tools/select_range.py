"""`select_range(video, start_s, end_s, count)`: `count` evenly spaced frames between two times (inclusive).

The FrameThinker-style "zoom into an interval" action. Times outside the video are errors, not clamped; a range too
short to hold `count` distinct frames is an error that says how many it holds.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from agentrm.errors import ToolError
from agentrm.tooling import ToolContext, ToolResult


class SelectRangeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video: int = Field(description="Which video: 1, or 2 in pairwise mode.")
    start_s: float = Field(description="Start time in seconds (inclusive).", ge=0)
    end_s: float = Field(description="End time in seconds (inclusive).", ge=0)
    count: int = Field(description="How many evenly spaced frames to return.", ge=1)
    detail: str | None = Field(None, description="Detail level (e.g. 'low' or 'high'); default high.")


def evenly_spaced(first: int, last: int, count: int) -> list[int]:
    """`count` distinct indices spread evenly over [first, last], both ends included when count > 1."""
    if count == 1:
        return [(first + last) // 2]
    step = (last - first) / (count - 1)
    return [first + round(k * step) for k in range(count)]


class SelectRange:
    name: ClassVar[str] = "select_range"
    description: ClassVar[str] = (
        "Look at `count` evenly spaced frames of a video between start_s and end_s (seconds). Returns each frame "
        "labelled with its index and timestamp."
    )
    Params: ClassVar[type[BaseModel]] = SelectRangeParams

    def __call__(self, params: SelectRangeParams, ctx: ToolContext) -> ToolResult:
        info = ctx.video(params.video)
        if params.end_s < params.start_s:
            raise ToolError(f"end_s {params.end_s} is before start_s {params.start_s}")
        last_t = (info.num_frames - 1) / info.fps
        if params.end_s > last_t + 1e-6:
            raise ToolError(
                f"end_s {params.end_s} is past the end of video {params.video} (last frame at {last_t:.2f} s)"
            )
        first = min(int(round(params.start_s * info.fps)), info.num_frames - 1)
        last = min(int(round(params.end_s * info.fps)), info.num_frames - 1)
        available = last - first + 1
        if params.count > available:
            raise ToolError(
                f"the range {params.start_s}-{params.end_s} s of video {params.video} holds only {available} "
                f"frame(s); ask for count <= {available} or a wider range"
            )
        detail = params.detail or ctx.config.detail.tool_default
        return ToolResult(frames=ctx.make_refs(params.video, evenly_spaced(first, last, params.count), detail))
