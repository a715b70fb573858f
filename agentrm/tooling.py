"""The tool protocol: what a frame tool is, how its arguments are validated and how its schema is shown.

A tool is a name, a description, a pydantic `Params` model (the JSON schema the model sees is generated from it, so
the schema and the validation can never disagree) and `__call__(params, ctx) -> ToolResult`. A `ToolError` raised
anywhere in a call goes back to the model as the tool result and the episode goes on; any other exception is a bug.

Tools only *choose* frames (`ToolResult.frames` are FrameRefs). The episode loop decodes them through the frame
source, so decoding happens in one place, off the event loop, and with one cache.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ValidationError

from agentrm.config import EpisodeConfig
from agentrm.errors import ConfigError, ToolError
from agentrm.trace import FrameRef, VideoInfo


@dataclass
class ToolResult:
    frames: list[FrameRef]
    note: str = ""  # extra text shown with the frames (e.g. how a range was sampled)


@dataclass
class ToolContext:
    """What a tool may look at: the videos' metadata, the limits, the budget left and what was asked before."""

    config: EpisodeConfig
    videos: dict[int, VideoInfo]
    factor: int
    frame_size: Callable[[int, str], tuple[int, int]]  # (video, detail) -> (height, width) after resizing
    frames_returned: int = 0
    window_capacity: tuple[int | None, int | None] = (None, None)  # (tokens, frames) one call may use
    seen_calls: set[str] = field(default_factory=set)

    def video(self, number: int) -> VideoInfo:
        if number not in self.videos:
            choices = ", ".join(str(v) for v in sorted(self.videos))
            raise ToolError(f"video {number} does not exist; choose one of: {choices}")
        return self.videos[number]

    def timestamp(self, video: int, index: int) -> float:
        info = self.videos[video]
        return round(index / info.fps, 3) if info.fps > 0 else 0.0

    def make_refs(self, video: int, indices: list[int], detail: str) -> list[FrameRef]:
        """FrameRefs for `indices`, after checking the per-call, total and window budgets (before decoding)."""
        limits = self.config.limits
        if detail not in self.config.detail.levels:
            raise ToolError(f"detail {detail!r} is not one of {sorted(self.config.detail.levels)}")
        if len(indices) > limits.max_frames_per_call:
            raise ToolError(
                f"{len(indices)} frames requested but one call may return at most {limits.max_frames_per_call}"
            )
        left = limits.max_total_frames - self.frames_returned
        if len(indices) > left:
            raise ToolError(
                f"{len(indices)} frames requested but only {left} of the episode's {limits.max_total_frames} "
                "frames are left; ask for fewer frames or give your answer"
            )
        h, w = self.frame_size(video, detail)
        tokens = (h // self.factor) * (w // self.factor)
        cap_t, cap_f = self.window_capacity
        if (cap_t is not None and tokens * len(indices) > cap_t) or (cap_f is not None and len(indices) > cap_f):
            fit = len(indices)
            while fit > 0 and ((cap_t is not None and tokens * fit > cap_t) or (cap_f is not None and fit > cap_f)):
                fit -= 1
            raise ToolError(
                f"{len(indices)} frames at detail {detail!r} ({tokens} visual tokens each) do not fit in the memory "
                f"window; ask for at most {fit} frames at this detail, or a lower detail level"
            )
        return self.make_refs_unchecked(video, indices, detail)

    def make_refs_unchecked(self, video: int, indices: list[int], detail: str) -> list[FrameRef]:
        """FrameRefs without budget checks (the pinned overview, which the window validates itself)."""
        h, w = self.frame_size(video, detail)
        tokens = (h // self.factor) * (w // self.factor)
        return [
            FrameRef(video=video, index=i, timestamp_s=self.timestamp(video, i), detail=detail, width=w, height=h,
                     tokens=tokens)
            for i in indices
        ]


class Tool(Protocol):
    name: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[BaseModel]]

    def __call__(self, params: Any, ctx: ToolContext) -> ToolResult: ...


def tool_schema(tool: Tool) -> dict[str, Any]:
    """The function schema shown to the model (Qwen/Hermes `tools` format), generated from `Params`."""
    params = tool.Params.model_json_schema()
    params.pop("title", None)
    for prop in params.get("properties", {}).values():
        prop.pop("title", None)
    return {"type": "function", "function": {"name": tool.name, "description": tool.description, "parameters": params}}


def _describe_validation_error(tool: Tool, err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "arguments"
        if e["type"] == "extra_forbidden":
            allowed = ", ".join(tool.Params.model_fields)
            parts.append(f"unknown argument {key!r} (arguments are: {allowed})")
        elif e["type"] == "missing":
            parts.append(f"missing argument {key!r}")
        else:
            parts.append(f"argument {key!r}: {e['msg']}")
    return f"invalid arguments for {tool.name}: " + "; ".join(parts)


def call_key(name: str, arguments: dict[str, Any]) -> str:
    """Canonical form of a call, to notice repeats regardless of key order."""
    return name + json.dumps(arguments, sort_keys=True)


def run_tool(tool: Tool, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
    """Validate `arguments` with the tool's Params model and run it. Raises ToolError for the model to read."""
    try:
        params = tool.Params.model_validate(arguments)
    except ValidationError as err:
        raise ToolError(_describe_validation_error(tool, err)) from None
    return tool(params, ctx)


def get_tools(names: list[str]) -> dict[str, Tool]:
    """Tools by name from the `agentrm.tools` registry."""
    from agentrm.tools import REGISTRY

    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ConfigError(f"unknown tool(s) {unknown} in episode.tools; available: {sorted(REGISTRY)}")
    return {n: REGISTRY[n]() for n in names}
