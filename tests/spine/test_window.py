"""The memory window: eviction order, pinned content, and the budget invariant for any sequence of groups."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentrm.config import WindowConfig
from agentrm.errors import ConfigError
from agentrm.trace import FrameRef
from agentrm.window import FrameGroup, MemoryWindow


def refs(n: int, tokens: int, video: int = 1) -> list[FrameRef]:
    return [FrameRef(video=video, index=i, timestamp_s=i / 10, detail="high", width=56, height=56, tokens=tokens)
            for i in range(n)]


def test_pinned_overview_that_exceeds_budget_is_a_config_error() -> None:
    w = MemoryWindow(WindowConfig(max_visual_tokens=100, max_frames=None))
    with pytest.raises(ConfigError, match="episode.window.max_visual_tokens"):
        w.pin(FrameGroup("overview-1", True, refs(4, 30)))


def test_oldest_unpinned_groups_go_first_and_pinned_never() -> None:
    w = MemoryWindow(WindowConfig(max_visual_tokens=None, max_frames=6))
    w.pin(FrameGroup("overview-1", True, refs(2, 10)))
    assert w.capacity() == (None, 4)
    assert w.add(FrameGroup("turn-1", False, refs(2, 10))) == []
    assert w.add(FrameGroup("turn-2", False, refs(2, 10))) == []
    evicted = w.add(FrameGroup("turn-3", False, refs(3, 10)))
    assert [g.id for g in evicted] == ["turn-1", "turn-2"]
    assert [g.id for g in w.kept] == ["overview-1", "turn-3"] and w.frames == 5
    state = w.state()
    assert [(g.group, g.evicted) for g in state.groups] == [("overview-1", False), ("turn-1", True),
                                                           ("turn-2", True), ("turn-3", False)]


def test_a_group_that_can_never_fit_is_refused() -> None:
    w = MemoryWindow(WindowConfig(max_visual_tokens=50, max_frames=None))
    w.pin(FrameGroup("overview-1", True, refs(1, 20)))
    assert not w.fits(31, 1) and w.fits(30, 1)
    with pytest.raises(ValueError, match="can never fit"):
        w.add(FrameGroup("turn-1", False, refs(1, 31)))


def test_window_config_needs_a_budget() -> None:
    with pytest.raises(ValueError, match="set window.max_visual_tokens or window.max_frames"):
        WindowConfig(max_visual_tokens=None, max_frames=None)


@settings(max_examples=200, deadline=None)
@given(
    budget=st.integers(60, 400),
    frames_budget=st.one_of(st.none(), st.integers(3, 30)),
    pinned=st.integers(1, 3),
    groups=st.lists(st.tuples(st.integers(1, 8), st.sampled_from([4, 15, 45])), max_size=40),
)
def test_budget_holds_for_any_sequence(budget: int, frames_budget: int | None, pinned: int,
                                       groups: list[tuple[int, int]]) -> None:
    w = MemoryWindow(WindowConfig(max_visual_tokens=budget, max_frames=frames_budget))
    w.pin(FrameGroup("overview-1", True, refs(pinned, 15)))
    for t, (n, tok) in enumerate(groups, 1):
        if w.fits(n * tok, n):
            w.add(FrameGroup(f"turn-{t}", False, refs(n, tok)))
            assert not w.groups[-1].evicted  # the newest group is always kept
        assert w.visual_tokens <= budget
        assert frames_budget is None or w.frames <= frames_budget
        assert w.groups[0].id == "overview-1" and not w.groups[0].evicted
