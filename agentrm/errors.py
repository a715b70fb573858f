"""The one exception hierarchy of agentrm.

Every error a user can cause (bad config, bad video, bad data row, bad checkpoint) is an `AgentrmError` whose message
names the input (file, field, line) and the fix. Anything else that escapes is a bug in agentrm.

`ToolError` is special: it is not a failure of the run. Its message is shown to the model as the tool result and the
episode goes on (the inspect_ai convention).
"""

from __future__ import annotations


class AgentrmError(Exception):
    """Base class of every error agentrm raises on purpose."""


class ConfigError(AgentrmError, ValueError):
    """A config file or override is invalid; the message names the key, the file and the allowed values."""


class VideoError(AgentrmError):
    """A video cannot be used; the message names the file and what is wrong with it."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class VideoNotFoundError(VideoError, FileNotFoundError):
    """The video path does not exist."""


class VideoDecodeError(VideoError):
    """The file exists but cannot be decoded (corrupt, truncated, unsupported codec, zero frames)."""


class DecodeTimeoutError(VideoDecodeError):
    """Decoding took longer than the configured timeout (a hung decoder is turned into this error)."""


class FrameIndexError(VideoError, IndexError):
    """A requested frame index or timestamp is outside the video."""


class ToolError(AgentrmError):
    """Invalid tool arguments or a refused call. The message goes back to the model; the episode continues."""


class ParseError(AgentrmError):
    """The model's turn does not follow the output format. `kind` names which rule it broke (tested per kind)."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


class DataError(AgentrmError):
    """An input row (CSV/JSONL) is invalid; the message names the file and line."""


class CheckpointError(AgentrmError):
    """A checkpoint cannot be loaded as asked (missing file, head shape that does not fit the model, ...)."""


class EngineError(AgentrmError):
    """The engine cannot run the request (e.g. context longer than the model allows, missing optional extra)."""
