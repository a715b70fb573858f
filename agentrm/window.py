"""The bounded visual memory window.

The context holds the pinned overview (never evicted) plus the most recent tool frame groups that fit a budget in
frames and/or visual tokens. When a new group arrives, the oldest unpinned groups are evicted whole: their pixels
leave the context and a one-line text stub says what was there, so the model can ask again.

Why whole groups and oldest first: a tool result is one unit of evidence the model asked for in one turn; keeping
half of it would show frames without the ones they were compared with. Pinned groups stay first in the context so a
prefix cache (vLLM) survives every eviction.

Invariant (tested for any number of turns and any video length): the kept groups never exceed the budget. A group
that cannot fit even after evicting everything unpinned is refused before any frame is decoded (`fits`), and the
tool turns that into a ToolError the model can act on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agentrm.config import WindowConfig
from agentrm.errors import ConfigError
from agentrm.trace import FrameGroupState, FrameRef, WindowState


@dataclass
class FrameGroup:
    id: str
    pinned: bool
    frames: list[FrameRef]
    evicted: bool = False

    @property
    def tokens(self) -> int:
        return sum(f.tokens for f in self.frames)


@dataclass
class MemoryWindow:
    config: WindowConfig
    groups: list[FrameGroup] = field(default_factory=list)

    @property
    def kept(self) -> list[FrameGroup]:
        return [g for g in self.groups if not g.evicted]

    @property
    def visual_tokens(self) -> int:
        return sum(g.tokens for g in self.kept)

    @property
    def frames(self) -> int:
        return sum(len(g.frames) for g in self.kept)

    def _pinned_usage(self) -> tuple[int, int]:
        pinned = [g for g in self.groups if g.pinned]
        return sum(g.tokens for g in pinned), sum(len(g.frames) for g in pinned)

    def capacity(self) -> tuple[int | None, int | None]:
        """(tokens, frames) a single unpinned group may use at most: the budget minus the pinned overview."""
        tokens, frames = self._pinned_usage()
        cap_t = None if self.config.max_visual_tokens is None else self.config.max_visual_tokens - tokens
        cap_f = None if self.config.max_frames is None else self.config.max_frames - frames
        return cap_t, cap_f

    def fits(self, tokens: int, frames: int) -> bool:
        """Whether a group of this size can enter the window (after evicting every unpinned group)."""
        cap_t, cap_f = self.capacity()
        return (cap_t is None or tokens <= cap_t) and (cap_f is None or frames <= cap_f)

    def _over(self) -> bool:
        c = self.config
        return (c.max_visual_tokens is not None and self.visual_tokens > c.max_visual_tokens) or (
            c.max_frames is not None and self.frames > c.max_frames
        )

    def pin(self, group: FrameGroup) -> None:
        group.pinned = True
        self.groups.append(group)
        if self._over():
            c = self.config
            raise ConfigError(
                f"the pinned overview needs {self.visual_tokens} visual tokens / {self.frames} frames but the window "
                f"budget is max_visual_tokens={c.max_visual_tokens}, max_frames={c.max_frames}: raise "
                "episode.window.max_visual_tokens/max_frames, or lower episode.overview.frames_per_video or the "
                "overview detail level"
            )

    def add(self, group: FrameGroup) -> list[FrameGroup]:
        """Add a tool group, evicting the oldest unpinned groups until the budget holds. Returns the evicted."""
        if not self.fits(group.tokens, len(group.frames)):
            raise ValueError(f"group {group.id} ({group.tokens} tokens) can never fit; check fits() first")
        self.groups.append(group)
        evicted: list[FrameGroup] = []
        for old in self.groups:
            if not self._over():
                break
            if old.pinned or old.evicted or old is group:
                continue
            old.evicted = True
            evicted.append(old)
        return evicted

    def state(self) -> WindowState:
        return WindowState(
            groups=[
                FrameGroupState(group=g.id, pinned=g.pinned, frames=list(g.frames), evicted=g.evicted)
                for g in self.groups
            ],
            visual_tokens=self.visual_tokens,
            frames=self.frames,
        )
