"""agentrm: an agentic "thinking-with-frames" video reward model.

The model sees a small pinned overview of each video, calls frame tools to look closer, keeps only a bounded
window of frames in context, writes per-dimension judgments and ends with `<Reward>` tokens whose hidden
states a small head turns into scalar rewards.

`agentrm.load(path_or_id)` returns a `RewardModel`; imported lazily, so `import agentrm` stays free of torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from agentrm.checkpoint import RewardModel, load, save_checkpoint

_LAZY = {"load", "RewardModel", "save_checkpoint"}
__all__ = ["RewardModel", "__version__", "load", "save_checkpoint"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from agentrm import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module 'agentrm' has no attribute {name!r}")
