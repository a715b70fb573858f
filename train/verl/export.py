"""verl actor checkpoint -> agentrm checkpoint, so `agentrm.load` works on GRPO output.

verl's FSDP checkpoint (`<default_local_dir>/global_step_N/actor/model_world_size_W_rank_R.pt`) holds the wrapped
module's sharded state dict: the Qwen-VL weights *and* the reward head (`agentrm_head.*`, attached by
AgentrmRewardEngine). `export_checkpoint` merges the shards (1-D FSDP mesh, as verl's own merger supports) keeping
each tensor's dtype (verl's merger casts to bf16; the head is float32), splits off the head, loads both into the
prepared model dir's model + head, and saves an agentrm checkpoint (format "full") with the GRPO episode settings.
Needs only torch (the shards are pickled DTensors); no GPU, no verl import.

    agentrm train grpo --export out/grpo          # latest step -> out/grpo/final
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import torch

from agentrm.errors import CheckpointError

log = logging.getLogger(__name__)

HEAD_PREFIX = "agentrm_head."


def latest_actor_dir(checkpoints: str | Path) -> Path:
    """`<checkpoints>/global_step_<latest>/actor` (verl's latest_checkpointed_iteration.txt, else the max step)."""
    root = Path(checkpoints)
    marker = root / "latest_checkpointed_iteration.txt"
    if marker.is_file():
        step = int(marker.read_text().strip())
    else:
        steps = [int(m.group(1)) for p in root.glob("global_step_*") if (m := re.fullmatch(r"global_step_(\d+)",
                                                                                             p.name))]
        if not steps:
            raise CheckpointError(f"{root}: no global_step_* checkpoints; did the run save any (trainer.save_freq)?")
        step = max(steps)
    actor = root / f"global_step_{step}" / "actor"
    if not actor.is_dir():
        raise CheckpointError(f"{actor}: missing; verl saves the actor under global_step_N/actor")
    return actor


def merge_fsdp_shards(actor_dir: str | Path) -> dict[str, torch.Tensor]:
    """The full state dict of an FSDP (1-D mesh) actor checkpoint, dtypes kept."""
    from torch.distributed.tensor import DTensor, Shard

    actor = Path(actor_dir)
    cfg_file = actor / "fsdp_config.json"
    if not cfg_file.is_file():
        raise CheckpointError(f"{actor}: no fsdp_config.json; not a verl FSDP actor checkpoint")
    world = int(json.loads(cfg_file.read_text())["world_size"])
    shards = [torch.load(actor / f"model_world_size_{world}_rank_{r}.pt", map_location="cpu", weights_only=False)
              for r in range(world)]
    merged: dict[str, torch.Tensor] = {}
    for key, first in shards[0].items():
        if isinstance(first, DTensor):
            placements = [p for p in first.placements if isinstance(p, Shard)]
            if first.device_mesh.ndim != 1:
                raise CheckpointError(f"{actor}: {key} is sharded on a {first.device_mesh.ndim}-D mesh; only 1-D "
                                      "FSDP meshes are supported (as by verl's model merger)")
            local = [s[key]._local_tensor for s in shards]
            merged[key] = torch.cat(local, dim=placements[0].dim) if placements else local[0]
            merged[key] = merged[key][tuple(slice(0, n) for n in first.shape)]  # drop uneven-shard padding
        else:
            merged[key] = first
    return merged


def export_checkpoint(actor_dir: str | Path, prepared_dir: str | Path, out: str | Path) -> Path:
    """Write an agentrm checkpoint from a verl actor checkpoint and the dir GRPO started from."""
    import agentrm
    from agentrm.checkpoint import save_checkpoint

    state = merge_fsdp_shards(actor_dir)
    head_state = {k[len(HEAD_PREFIX):]: v for k, v in state.items() if k.startswith(HEAD_PREFIX)}
    model_state = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIX)}
    if not head_state:
        raise CheckpointError(f"{actor_dir}: no {HEAD_PREFIX}* weights; the run did not use AgentrmRewardEngine "
                              "(actor_rollout_ref.model.model_type=agentrm_reward_lm)")
    rm = agentrm.load(str(prepared_dir), device="cpu", dtype="float32")
    missing, unexpected = rm.model.load_state_dict(model_state, strict=False)
    if unexpected or [m for m in missing if not m.endswith("lm_head.weight")]:
        raise CheckpointError(f"{actor_dir}: weights do not fit {prepared_dir}: missing {missing[:5]}, unexpected "
                              f"{unexpected[:5]}; export with the model dir the run was launched from")
    rm.head.load_state_dict(head_state)
    path = save_checkpoint(out, rm.model, rm.processor, rm.head, rm.settings)
    log.info("exported %s (+ head) -> %s", actor_dir, path)
    return path
