"""The reward as verl loads and calls it, and the trainer's reward metrics (its hooks: test_grpo_trainer_hooks)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.verl


def test_verl_loads_and_calls_the_reward_function(tmp_path: Path, items_jsonl: Path) -> None:
    from verl.trainer.ppo.reward import get_custom_reward_fn

    from agentrm.train.grpo_config import GRPOConfig
    from agentrm.train.rewards import EpisodeSummary
    from agentrm.train.verl.config import RunPaths, build_overrides, compose

    cfg = GRPOConfig.model_validate({"data": {"train": str(items_jsonl)}, "model": {"path": "m"},
                                     "output_dir": str(tmp_path), "reward": {"format": 0.5}})
    paths = RunPaths.under(tmp_path, False)
    paths.snapshot.parent.mkdir(parents=True)
    paths.snapshot.write_text(cfg.model_dump_json())
    fn = get_custom_reward_fn(compose(build_overrides(cfg, paths)))
    assert fn is not None
    summary = EpisodeSummary(mode="pairwise", dims=["OA"], overall_dim="OA", labels={"OA": "1"},
                             verdicts={"OA": "1"}, termination="answer")
    out = fn(data_source="agentrm/pairwise", solution_str="<answer>...</answer>", ground_truth="{}",
             extra_info={"agentrm_summary": summary.model_dump_json()})
    assert out["score"] == pytest.approx(0.4 + 0.5)  # the snapshot's weights were used (format 0.5)
    assert out["overall_acc"] == 1.0 and set(out) >= {"dims_acc", "tool_use", "limit_hit", "invalid"}
    with pytest.raises(ValueError, match="not agentrm"):
        fn(data_source="gsm8k", solution_str="", ground_truth="", extra_info={})


def test_reward_metrics_count_each_episode_once() -> None:
    from agentrm.train.verl.trainer import reward_metrics

    info = {"overall_acc": 1.0, "dims_acc": float("nan"), "tool_use": 0.5}
    rows = [{"agentrm_last_row": False, "reward_extra_info": info},  # a copy on an earlier turn row
            {"agentrm_last_row": True, "reward_extra_info": info},
            {"agentrm_last_row": True, "reward_extra_info": {**info, "overall_acc": 0.0}}]
    m = reward_metrics(rows)
    assert m == {"reward/overall_acc/mean": 0.5, "reward/tool_use/mean": 0.5, "reward/episodes": 2.0}
    # verl's padding rows copy a real row's extra_fields (last-row flag included): not episodes
    assert reward_metrics([*rows, rows[2]], padding=[False, False, False, True]) == m
