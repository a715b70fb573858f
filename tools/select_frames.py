"""`select_frames(video, frames=[...])`: exact frames by 0-based index.

Unlike VR-Thinker's tool, nothing is clamped or silently fixed: an index outside the video, a duplicate or too many
frames is a ToolError that tells the model the valid range, so it can correct itself (its users report models looping
on out-of-range errors that never said what the range was).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from agentrm.errors import ToolError
from agentrm.tooling import ToolContext, ToolResult


class SelectFramesParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video: int = Field(description="Which video: 1, or 2 in pairwise mode.")
    frames: list[int] = Field(description="0-based frame indices to look at, e.g. [120, 135, 150].", min_length=1)
    detail: str | None = Field(None, description="Detail level (e.g. 'low' or 'high'); default high.")


class SelectFrames:
    name: ClassVar[str] = "select_frames"
    description: ClassVar[str] = (
        "Look at specific frames of a video by their 0-based frame index. Returns each frame labelled with its "
        "index and timestamp."
    )
    Params: ClassVar[type[BaseModel]] = SelectFramesParams

    def __call__(self, params: SelectFramesParams, ctx: ToolContext) -> ToolResult:
        info = ctx.video(params.video)
        bad = [i for i in params.frames if not 0 <= i < info.num_frames]
        if bad:
            raise ToolError(
                f"frame(s) {bad} are outside video {params.video}, whose frames are 0..{info.num_frames - 1}"
            )
        dupes = sorted({i for i in params.frames if params.frames.count(i) > 1})
        if dupes:
            raise ToolError(f"frame(s) {dupes} are requested more than once; list each frame once")
        detail = params.detail or ctx.config.detail.tool_default
        return ToolResult(frames=ctx.make_refs(params.video, list(params.frames), detail))
