"""verl's custom reward function (`reward.custom_reward_function.path=<this file>`, `name=compute_score`).

A thin wrapper: the agent loop put the episode summary in the last row's extra_fields, which verl's reward manager
merges into `extra_info`; `agentrm.train.rewards` does the scoring. The return value is a dict, so verl keeps every
component as reward_extra_info (the trainer logs each as `reward/<name>/mean`).

verl loads this file by path in its reward workers; it needs no verl import itself.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from agentrm.train.grpo_config import GRPOConfig
from agentrm.train.rewards import RewardConfig, reward_from_extra_info


@lru_cache(maxsize=4)
def _weights(agentrm_config: str | None) -> RewardConfig:
    if not agentrm_config:
        return RewardConfig()
    return GRPOConfig.model_validate_json(Path(agentrm_config).read_text(encoding="utf-8")).reward


def compute_score(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: dict[str, Any] | None = None,
    agentrm_config: str | None = None, **kwargs: Any,
) -> dict[str, float]:
    """verl's reward-function signature -> {"score": total, <component>: value, ...}."""
    if not str(data_source).startswith("agentrm/"):
        raise ValueError(f"data_source {data_source!r} is not agentrm's; this reward function scores only rows "
                         "written by agentrm's data conversion")
    out = reward_from_extra_info(extra_info or {}, _weights(agentrm_config))
    return {"score": out.score, **out.components}
