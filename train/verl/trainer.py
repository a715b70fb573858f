"""verl's V1 trainer with agentrm's two additions, and the Ray task runner that loads them.

`AgentrmTrainer` (trainer_mode "agentrm_sync", a `PPOTrainerSync`):
- logs every reward component as `reward/<name>/mean` (verl's V1 trainer logs only the total), once per episode
  (the row flagged `agentrm_last_row`; the other rows of an episode carry copies);
- pointwise runs: after the old-log-prob pass (where `AgentrmRewardEngine` stores each answer row's head scores as
  `agentrm_scores`), joins each row with its partner's scores by (pair_id, rollout index) - rollout j of video A with
  rollout j of video B, as DeScore pairs them - and writes them back as `agentrm_partner_scores` (stop-gradient:
  they are data, not graph). Rows whose partner has no score get NaN and are counted by the engine, not scored.

`AgentrmTaskRunner` is verl's `TaskRunnerV1` that imports the plugin and this module before verl looks the trainer up.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import ray
import torch
from verl.trainer.main_ppo import TaskRunnerV1
from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY, register_trainer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

log = logging.getLogger(__name__)

TRAINER_MODE = "agentrm_sync"


def reward_metrics(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean of each reward component over episodes (rows flagged agentrm_last_row), NaN-aware."""
    values: dict[str, list[float]] = defaultdict(list)
    for fields in rows:
        if not fields or not fields.get("agentrm_last_row"):
            continue
        for key, value in (fields.get("reward_extra_info") or {}).items():
            if isinstance(value, int | float) and not math.isnan(float(value)):
                values[key].append(float(value))
    return {f"reward/{k}/mean": float(np.mean(v)) for k, v in sorted(values.items()) if v}


def partner_scores(
    pair_ids: Sequence[str], roles: Sequence[str], rollouts: Sequence[int], scores: Sequence[torch.Tensor | None],
    dims: int,
) -> torch.Tensor:
    """(B, dims): for each row, the score of the other video of its pair in the same rollout index; NaN if none."""
    table: dict[tuple[str, str, int], torch.Tensor] = {}
    for pid, role, r, s in zip(pair_ids, roles, rollouts, scores, strict=True):
        if pid and s is not None and torch.isfinite(s).all():
            table[(pid, role, int(r))] = s.reshape(-1)[:dims]
    out = torch.full((len(pair_ids), dims), float("nan"))
    for i, (pid, role, r) in enumerate(zip(pair_ids, roles, rollouts, strict=True)):
        other = {"1": "2", "2": "1"}.get(role)
        if pid and other is not None and (pid, other, int(r)) in table:
            out[i] = table[(pid, other, int(r))]
    return out


def _tolist(value: Any) -> list[Any]:
    if hasattr(value, "tolist"):
        return list(value.tolist())
    return [getattr(v, "data", v) for v in value]


if TRAINER_MODE not in TRAINER_REGISTRY:

    @register_trainer(TRAINER_MODE)
    class AgentrmTrainer(PPOTrainerSync):
        def _compute_old_log_prob(self, batch: Any, metrics: dict[str, Any]) -> Any:
            batch = super()._compute_old_log_prob(batch, metrics)
            if not self.config.get("agentrm", {}).get("pointwise_pairs", False):
                return batch
            import transfer_queue as tq
            from tensordict import TensorDict

            data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id,
                                   select_fields=["agentrm_scores", "extra_info", "session_id"])
            infos = _tolist(data["extra_info"])
            scores = [None if s is None else torch.as_tensor(s).float() for s in data["agentrm_scores"].unbind()]
            dims = int(self.config.agentrm.dims)
            partner = partner_scores([str(i.get("pair_id", "")) for i in infos],
                                     [str(i.get("pair_role", "")) for i in infos],
                                     [int(x) for x in _tolist(data["session_id"])], scores, dims)
            metrics["agentrm/partner_found"] = float(torch.isfinite(partner).all(-1).float().mean())
            tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id,
                            fields=TensorDict({"agentrm_partner_scores": partner}, batch_size=len(batch.keys)))
            return batch

        def _compute_metrics(self, batch: Any, metrics: dict[str, Any], timing_raw: dict[str, Any],
                             global_steps: int, epoch: int) -> None:
            super()._compute_metrics(batch, metrics, timing_raw, global_steps, epoch)
            import transfer_queue as tq

            data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["extra_fields"])
            metrics.update(reward_metrics([f or {} for f in _tolist(data["extra_fields"])]))


@ray.remote
class AgentrmTaskRunner(TaskRunnerV1.__ray_actor_class__):  # type: ignore[name-defined]
    """verl's V1 task runner, with agentrm's plugin and trainer registered in the actor process first."""

    def run(self, config: Any) -> None:
        import agentrm.train.verl.plugin  # noqa: F401
        import agentrm.train.verl.trainer  # noqa: F401

        super().run(config)
