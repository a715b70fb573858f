"""The engine protocol and the context it consumes.

The episode loop speaks only this: a `Context` (chat messages whose image parts carry already-resized frames) goes
in, a `Completion` comes out; `score` reads the reward head at the `<Reward>` tokens of a finished answer. The loop
never imports torch; engines do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from agentrm.config import SamplingConfig
from agentrm.trace import FrameRef

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class ImagePart:
    """A frame shown to the model. `pixels` is HxWx3 uint8, already resized to a multiple of the model's
    patch*merge factor, so processors must not resize it again."""

    ref: FrameRef
    pixels: np.ndarray = field(repr=False, compare=False)


Part = TextPart | ImagePart


@dataclass
class Message:
    role: Role
    parts: list[Part]

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))


@dataclass
class Context:
    """The prompt of one turn: messages in order. Images are in `parts`, in the order they appear."""

    messages: list[Message]
    sample_id: str = ""  # which episode asks (scripted engines replay per sample; seeds are offset by it)
    turn: int = 0

    @property
    def images(self) -> list[ImagePart]:
        return [p for m in self.messages for p in m.parts if isinstance(p, ImagePart)]

    def visual_tokens(self) -> int:
        return sum(p.ref.tokens for p in self.images)

    def to_chat(self) -> list[dict[str, object]]:
        """HF chat-template form: images as {"type": "image"} placeholders, pixels passed separately in order."""
        out: list[dict[str, object]] = []
        for m in self.messages:
            content: list[dict[str, str]] = []
            for p in m.parts:
                if isinstance(p, ImagePart):
                    content.append({"type": "image"})
                else:
                    content.append({"type": "text", "text": p.text})
            out.append({"role": m.role, "content": content})
        return out


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: Literal["stop", "length"]


@runtime_checkable
class Engine(Protocol):
    """What the loop needs from a model. Implementations: HFEngine, VLLMEngine, ScriptedEngine."""

    name: str
    model_id: str
    factor: int  # patch_size * spatial_merge_size: frame sides are multiples of it (28 Qwen2.5-VL, 32 Qwen3-VL)

    async def generate(self, context: Context, sampling: SamplingConfig, max_new_tokens: int) -> Completion:
        """One assistant turn for `context` (generation prompt added by the engine)."""
        ...

    async def score(self, context: Context, completion: str) -> list[list[float]] | None:
        """Head outputs at each reward token of `completion` appended to `context`: one list (per dimension) per
        reward token. None when the engine has no head (e.g. scripted without scores)."""
        ...

    def count_tokens(self, context: Context) -> int:
        """Prompt tokens (text + visual) the context costs, for the max_context_tokens limit."""
        ...
