"""verl's V1 sync trainer with agentrm's additions, and the Ray task runner that loads them.

`AgentrmTrainer` (trainer_mode "agentrm_sync", a `PPOTrainerSync`):
- runs as verl's *sync* trainer: verl 0.9.1 branches on the literal `trainer_mode == "sync"`
  (v1/trainer_base.py:153 replay buffer, :731 gen_batch_size, :902/:912/:1004 TransferQueue checkpointing, :1499);
  under any other name a sync trainer silently got the async replay buffer, one-row dataloader fetches and
  single-row refills of failed groups - which shift every later pair across a step boundary;
- logs every reward component as `reward/<name>/mean` (verl's V1 trainer logs only the total), once per episode
  (the row flagged `agentrm_last_row`; the other rows of an episode carry copies, verl's padding rows too);
- pointwise runs: after the old-log-prob pass (where `AgentrmRewardEngine` stores each answer row's head scores as
  `agentrm_scores`), joins each row with its partner's scores and writes them back as `agentrm_partner_scores`
  (stop-gradient: they are data, not graph).

How the partner is found. verl gives each dataset row a fresh uuid4 `uid` (v1/trainer_base.py:1476) and runs its n
rollouts as `session_id = 0..n-1` (v1/agent_loop_tq.py:123-126); each rollout's output rows are stored under
`{uid}_{session_id}_{turn}` (agent_loop_tq.py:193). The two videos of a pair are two dataset rows, so two uids; the
agent loop stamps every output row with (pair id, role, rollout index = session_id) in its extra_fields
(`agentrm.train.grpo_data.pair_fields`), and rollout j of video 1 pairs with rollout j of video 2 (as DeScore does).
Both videos are in the same batch because the split rows are adjacent, the dataloader is sequential and a sync step
trains exactly the prompts it submitted; `pairs.pair_layout_problems` refuses the settings that break this (at
`--dry-run` and launch too). verl's padding rows (padding_utils.py:177-192) copy the first row's extra_fields, so they
are excluded by their `is_padding` tag.
Rows whose partner has no score (absent, failed, unanswered, truncated) get NaN: the engine skips them and counts
them (`agentrm/bt_missing_partner`); the join logs `agentrm/pairs/*` counts. Nothing is silently scored as zero.

`AgentrmTaskRunner` is verl's `TaskRunnerV1` that imports the plugin and this module before verl looks the trainer up.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import ray
import torch
import transfer_queue as tq
from tensordict import TensorDict
from verl.trainer.main_ppo import TaskRunnerV1
from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY, register_trainer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

from agentrm.errors import ConfigError
from agentrm.train.grpo_data import PairKey, pair_key, partner_key
from agentrm.train.verl.pairs import check_pair_layout, pointwise_pairs
from agentrm.train.verl.pairs import pair_layout_problems as pair_layout_problems  # re-export (it lived here)

log = logging.getLogger(__name__)

TRAINER_MODE = "agentrm_sync"
SCORES = "agentrm_scores"  # written by AgentrmRewardEngine in the old-log-prob pass
PARTNER_SCORES = "agentrm_partner_scores"  # read by AgentrmRewardEngine.aux_loss


# ------------------------------------------------------------------------------------------------ pure helpers
def reward_metrics(rows: Sequence[Any], padding: Sequence[bool] | None = None) -> dict[str, float]:
    """Mean of each reward component over episodes (rows flagged agentrm_last_row, not padding), NaN-aware."""
    values: dict[str, list[float]] = defaultdict(list)
    episodes = 0
    for i, fields in enumerate(rows):
        if not isinstance(fields, Mapping) or not fields.get("agentrm_last_row") or (padding and padding[i]):
            continue
        episodes += 1
        for key, value in (fields.get("reward_extra_info") or {}).items():
            if isinstance(value, int | float) and not math.isnan(float(value)):
                values[key].append(float(value))
    out = {f"reward/{k}/mean": float(np.mean(v)) for k, v in sorted(values.items()) if v}
    if episodes:
        out["reward/episodes"] = float(episodes)
    return out


def join_partner_scores(
    keys: Sequence[PairKey | None], scores: torch.Tensor, padding: Sequence[bool] | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    """(B, dims) partner score of each row (NaN where none) and the join's counts over scored rows.

    `scores` is (B, dims), NaN on rows without a head score. A row's partner is the one scored row with
    `partner_key(key)`. Counts (scored = non-padding rows with a finite score): found, missing (no scored partner in
    the batch), ambiguous (the key or the partner's key is held by several scored rows: a layout bug; both get NaN),
    unkeyed (scored rows without a pair key: not split-pair data, or no rollout index). Padding rows never join.
    """
    if scores.ndim != 2 or scores.shape[0] != len(keys):
        raise ValueError(f"scores {tuple(scores.shape)} do not match {len(keys)} rows")
    pad = list(padding) if padding is not None else [False] * len(keys)
    finite = torch.isfinite(scores).all(dim=1).tolist()
    owners: dict[PairKey, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        if key is not None and finite[i] and not pad[i]:
            owners[key].append(i)
    partner = torch.full(tuple(scores.shape), float("nan"), dtype=torch.float32)
    counts: Counter[str] = Counter()
    for i, key in enumerate(keys):
        if pad[i]:
            continue
        scored = bool(finite[i])
        counts["scored"] += scored
        if key is None:
            counts["unkeyed"] += scored
            continue
        theirs, mine = owners.get(partner_key(key), []), owners.get(key, [])
        if len(theirs) > 1 or len(mine) > 1:
            counts["ambiguous"] += scored
        elif theirs:
            partner[i] = scores[theirs[0]].float()
            counts["found"] += scored
        else:
            counts["missing"] += scored
    metrics = {f"agentrm/pairs/{k}": float(counts[k]) for k in ("scored", "found", "missing", "ambiguous", "unkeyed")}
    if counts["scored"]:
        metrics["agentrm/pairs/found_frac"] = counts["found"] / counts["scored"]
    return partner, metrics


# --------------------------------------------------------------------------------- TransferQueue (thin part)
def _rows(value: Any) -> list[Any]:
    """A non-tensor TransferQueue field as a list (it comes back as a LinkedList, NonTensorStack or array)."""
    if hasattr(value, "tolist"):
        return list(value.tolist())
    return [getattr(v, "data", v) for v in value]


def _padding(batch: Any) -> list[bool]:
    return [bool(tag.get("is_padding", False)) for tag in batch.tags]


def attach_partner_scores(batch: Any, dims: int, metrics: dict[str, Any]) -> Any:
    """Read `agentrm_scores` + extra_fields of `batch` (a KVBatchMeta), write `agentrm_partner_scores` (B, dims)."""
    data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=[SCORES, "extra_fields"])
    if SCORES not in data.keys():  # noqa: SIM118 (TensorDict refuses `in`); TransferQueue omits missing fields
        raise ConfigError(f"no '{SCORES}' after the old-log-prob pass: pointwise pairs need "
                          "actor_rollout_ref.model.model_type=agentrm_reward_lm and a recomputed old log-prob "
                          "(algorithm.rollout_correction.bypass_mode=false)")
    rows = [torch.as_tensor(t).float().reshape(-1) for t in data[SCORES].unbind()]
    if any(r.numel() != dims for r in rows):
        raise ConfigError(f"'{SCORES}' rows have {sorted({r.numel() for r in rows})} values but agentrm.dims={dims}: "
                          "the model dir was prepared for another mode (a pairwise head scores 2 x dims)")
    keys = [pair_key(f) for f in _rows(data["extra_fields"])]
    partner, counts = join_partner_scores(keys, torch.stack(rows), _padding(batch))
    metrics.update(counts)
    if counts["agentrm/pairs/ambiguous"] or counts["agentrm/pairs/unkeyed"]:
        log.warning("pointwise partner join: %s (rows without a unique pair key are not scored by BT)", counts)
    return tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id,
                           fields=TensorDict({PARTNER_SCORES: partner}, batch_size=[len(batch.keys)]))


def episode_reward_metrics(batch: Any) -> dict[str, float]:
    data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["extra_fields"])
    if "extra_fields" not in data.keys():  # noqa: SIM118
        return {}
    return reward_metrics(_rows(data["extra_fields"]), _padding(batch))


if TRAINER_MODE not in TRAINER_REGISTRY:

    @register_trainer(TRAINER_MODE)
    class AgentrmTrainer(PPOTrainerSync):
        def __init__(self, config: Any) -> None:
            super().__init__(config)
            self.pointwise_pairs = pointwise_pairs(config)
            self.pair_dims = int((config.get("agentrm") or {}).get("dims", 0))
            check_pair_layout(config, self.parameter_sync_step)

        def _build_replay_buffer(self) -> Any:
            # called by PPOTrainer.__init__ right after it reads trainer_mode: the one place to make verl's
            # `trainer_mode == "sync"` branches (see the module docstring) take the sync path for this subclass
            self.trainer_mode = "sync"
            return super()._build_replay_buffer()

        def _compute_old_log_prob(self, batch: Any, metrics: dict[str, Any]) -> Any:
            batch = super()._compute_old_log_prob(batch, metrics)
            if not self.pointwise_pairs:
                return batch
            return attach_partner_scores(batch, self.pair_dims, metrics)

        def _compute_metrics(self, batch: Any, metrics: dict[str, Any], timing_raw: dict[str, Any],
                             global_steps: int, epoch: int) -> None:
            super()._compute_metrics(batch, metrics, timing_raw, global_steps, epoch)
            metrics.update(episode_reward_metrics(batch))


@ray.remote
class AgentrmTaskRunner(TaskRunnerV1.__ray_actor_class__):  # type: ignore[name-defined]
    """verl's V1 task runner, with agentrm's plugin and trainer registered in the actor process first."""

    def run(self, config: Any) -> None:
        import agentrm.train.verl.plugin  # noqa: F401
        import agentrm.train.verl.trainer  # noqa: F401

        super().run(config)
