"""The pointwise-pair layout check, shared by `--dry-run` (config.validate) and the trainer (AgentrmTrainer).

A pointwise run with the auxiliary BT loss joins each row with its partner (the other video of its pair) inside one
training batch (see trainer.py's docstring). That holds only under some verl settings; `pair_layout_problems` lists
the ones that break it, each with its fix. It lives here, apart from trainer.py, because it reads only the composed
config: the dry run can refuse a bad config without importing ray, transfer_queue or torch.
"""

from __future__ import annotations

from typing import Any

from agentrm.errors import ConfigError

HEADER = "pointwise pairs with the auxiliary BT loss need both videos of a pair in one training batch:"


def pointwise_pairs(config: Any) -> bool:
    """Whether the run trains pointwise split pairs (the `+agentrm.pointwise_pairs` flag build_overrides sets)."""
    return bool((config.get("agentrm") or {}).get("pointwise_pairs", False))


def parameter_sync_step(config: Any) -> int:
    """The value verl's trainer reads (v1/trainer_base.py:130, before AgentrmTrainer renames its mode to sync)."""
    v1 = config.trainer.v1
    return int((v1.get(v1.trainer_mode, None) or {}).get("parameter_sync_step", 1))


def pair_layout_problems(config: Any, parameter_sync_step: int) -> list[str]:
    """verl settings under which a pair's two rows may not share a training batch (each names its fix)."""
    data, algo, sampler = config.data, config.algorithm, config.trainer.v1.sampler
    problems = []
    for key in ("train_batch_size", "gen_batch_size"):
        size = data.get(key)
        if size is not None and size % 2:
            problems.append(f"data.{key}={size} is odd: a pair's two rows would straddle batches; use an even "
                            "algo.train_batch_size (and gen_batch_size)")
    if data.get("shuffle", False):
        problems.append("data.shuffle=true separates a pair's adjacent rows; set it false (agentrm's data "
                        "conversion shuffles whole pairs instead)")
    if (algo.get("filter_groups") or {}).get("enable", False):
        problems.append("algorithm.filter_groups (DAPO) evicts and refills single rows; disable it")
    if sampler.get("sync_refill_failed_groups", False):
        problems.append("trainer.v1.sampler.sync_refill_failed_groups refills single rows; disable it")
    if (sampler.get("custom_sampler") or {}).get("path"):
        problems.append("trainer.v1.sampler.custom_sampler may select part of a step's rows; remove it")
    if (algo.get("rollout_correction") or {}).get("bypass_mode", False):
        problems.append("algorithm.rollout_correction.bypass_mode skips the old-log-prob pass that computes the "
                        "head scores; disable it")
    if parameter_sync_step != 1:
        problems.append(f"parameter_sync_step={parameter_sync_step} trains a step's rows in sub-batches of "
                        "arbitrary order; use 1")
    return problems


def check_pair_layout(config: Any, parameter_sync_step: int) -> None:
    """Raise ConfigError listing every problem when the run trains pointwise pairs; no-op otherwise."""
    problems = pair_layout_problems(config, parameter_sync_step) if pointwise_pairs(config) else []
    if problems:
        raise ConfigError(HEADER + "\n- " + "\n- ".join(problems))
