"""The trace: a versioned record of one episode, and its JSONL reader/writer.

A trace holds everything needed to understand (viewer), evaluate (eval), re-render (training parity) and resume
(`agentrm score`) an episode. Frames are referenced by (video, index, timestamp), never embedded: the viewer and the
trainer fetch pixels again through the frame source.

Events are a discriminated union on `kind`, in the order they happened. Bump SCHEMA_VERSION on any breaking change.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from agentrm.config import StrictModel

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1"

Termination = Literal[
    "answer",  # the model answered in the format; verdicts (and rewards, if the engine scores) are set
    "max_turns",  # the turn limit was hit and the forced final turn did not answer
    "max_frames",  # the frame budget was used up and the next turn did not answer
    "max_new_tokens",  # a turn was cut at max_new_tokens and the next turn did not answer
    "max_context",  # the next prompt would exceed limits.max_context_tokens
    "format",  # the final turn after a limit was malformed
    "video_error",  # a video could not be opened/decoded: the sample fails, the run goes on
    "error",  # an unexpected error in the engine (recorded, the run goes on)
]


class FrameRef(StrictModel):
    """One frame as the model saw it: which video, which frame, when, and what it cost."""

    video: int = Field(description="1-based video number within the item.")
    index: int = Field(description="0-based frame number in presentation order.")
    timestamp_s: float
    detail: str = Field(description="Detail level name (pixel budget) the frame was rendered at.")
    width: int
    height: int
    tokens: int = Field(description="Visual tokens this frame costs in context.")


class FrameGroupState(StrictModel):
    """A group of frames in the memory window (the overview of a video, or one tool result)."""

    group: str = Field(description="Group id: 'overview-<video>' or 'turn-<t>'.")
    pinned: bool
    frames: list[FrameRef]
    evicted: bool = False


class WindowState(StrictModel):
    groups: list[FrameGroupState]
    visual_tokens: int = Field(description="Visual tokens with pixels in context (kept groups).")
    frames: int = Field(description="Frames with pixels in context.")


class ModelTurnEvent(StrictModel):
    kind: Literal["model"] = "model"
    turn: int
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    latency_s: float


class ToolCallEvent(StrictModel):
    kind: Literal["tool_call"] = "tool_call"
    turn: int
    name: str
    arguments: dict[str, Any]


class ToolResultEvent(StrictModel):
    kind: Literal["tool_result"] = "tool_result"
    turn: int
    name: str
    text: str = Field(description="The text the model was shown with the frames.")
    frames: list[FrameRef]
    repeated: bool = Field(False, description="The call repeated an earlier one; answered with a notice.")


class ToolErrorEvent(StrictModel):
    kind: Literal["tool_error"] = "tool_error"
    turn: int
    name: str
    message: str


class ParseErrorEvent(StrictModel):
    kind: Literal["parse_error"] = "parse_error"
    turn: int
    error: str = Field(description="Which format rule broke, e.g. malformed_json, missing_reward_token.")
    message: str


class LimitEvent(StrictModel):
    kind: Literal["limit"] = "limit"
    turn: int
    limit: str
    message: str


class WindowEvent(StrictModel):
    kind: Literal["window"] = "window"
    turn: int
    state: WindowState


class AnswerEvent(StrictModel):
    kind: Literal["answer"] = "answer"
    turn: int
    verdicts: dict[str, str | float]


Event = Annotated[
    ModelTurnEvent
    | ToolCallEvent
    | ToolResultEvent
    | ToolErrorEvent
    | ParseErrorEvent
    | LimitEvent
    | WindowEvent
    | AnswerEvent,
    Field(discriminator="kind"),
]


class VideoInfo(StrictModel):
    video: int
    path: str
    num_frames: int
    fps: float
    duration_s: float
    width: int
    height: int


class TraceInputs(StrictModel):
    sample_id: str
    mode: Literal["pairwise", "pointwise"]
    prompt: str
    videos: list[str]
    dims: list[str]
    labels: dict[str, str | float] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)


class Trace(StrictModel):
    schema_version: str = SCHEMA_VERSION
    id: str = Field(description="Sample id (unique within a run).")
    inputs: TraceInputs
    videos: list[VideoInfo] = Field(default_factory=list)
    policy: Literal["agentic", "uniform"] = "agentic"
    events: list[Event] = Field(default_factory=list)
    verdicts: dict[str, str | float] | None = None
    rewards: list[dict[str, float]] | None = Field(
        None, description="Head rewards per video (list index = video-1), per dimension, after normalisation."
    )
    raw_rewards: list[dict[str, float]] | None = Field(None, description="Head outputs before normalisation.")
    termination: Termination | None = None
    error: str | None = None
    num_turns: int = 0
    frames_viewed: int = Field(0, description="Distinct frames returned by tools (overview excluded).")
    timings: dict[str, float] = Field(default_factory=dict)
    engine: dict[str, str] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict, description="EpisodeConfig snapshot.")
    created_at: float = Field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.termination == "answer"


class TraceWriter:
    """Appends one trace per line and flushes (and fsyncs) each record, so a killed run loses at most the line
    being written; `read_traces` skips such a torn last line."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_torn_tail()
        self._fh = self.path.open("a", encoding="utf-8")

    def _repair_torn_tail(self) -> None:
        """A line without its newline is a torn write: drop it so the next record starts on a fresh line."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with self.path.open("rb+") as fh:
            data = fh.read()
            if data.endswith(b"\n"):
                return
            cut = data.rfind(b"\n") + 1
            log.warning("%s: dropping a torn last line (%d bytes) left by a killed run", self.path, len(data) - cut)
            fh.truncate(cut)

    def write(self, trace: Trace) -> None:
        self._fh.write(trace.model_dump_json() + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_traces(path: str | Path, errors: list[str] | None = None) -> Iterator[Trace]:
    """Yield traces from a JSONL file. Bad lines are skipped and described in `errors` (file:line: why)."""
    with Path(path).open("r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield Trace.model_validate(json.loads(line))
            except (json.JSONDecodeError, ValidationError) as exc:
                torn = not line.endswith("\n")
                why = "torn last line (killed writer?)" if torn else f"invalid trace: {str(exc).splitlines()[0]}"
                msg = f"{path}:{lineno}: {why}"
                log.warning("%s", msg)
                if errors is not None:
                    errors.append(msg)


def read_traces(path: str | Path, errors: list[str] | None = None) -> list[Trace]:
    return list(iter_traces(path, errors))


def trace_json_schema() -> dict[str, Any]:
    return Trace.model_json_schema()
