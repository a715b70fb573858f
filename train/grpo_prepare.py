"""Prepare the model dir verl trains from: a full (merged) HF dir with the reward token, the head and its settings.

verl's FSDP engine loads `actor_rollout_ref.model.path` with `from_pretrained`, and vLLM serves the same dir, so it
must be a plain HF model dir. The cold-start output may be a LoRA checkpoint, and a plain Qwen-VL has no `<Reward>`
token: `prepare_model_dir` loads either through `agentrm.load` (merging LoRA), records the GRPO episode config in
agentrm.json (the engine reads mode/dims from it) and the aux-loss settings in agentrm_aux.json, and saves.
No verl import. Cost: one load + save of the model on the launching host (minutes for a 7B model, on CPU).
"""

from __future__ import annotations

import logging
from pathlib import Path

from agentrm.config import EpisodeConfig
from agentrm.head import HeadConfig
from agentrm.train.grpo_config import AuxLossConfig

log = logging.getLogger(__name__)

AUX_FILE = "agentrm_aux.json"


def prepare_model_dir(
    source: str, out: str | Path, episode: EpisodeConfig, aux: AuxLossConfig, head: HeadConfig | None = None,
) -> Path:
    """Write the verl-ready model dir to `out` (returned)."""
    import agentrm
    from agentrm.checkpoint import save_checkpoint

    rm = agentrm.load(source, dtype="auto", device="cpu", episode=episode, head=head, merge_lora=True)
    settings = rm.settings.model_copy(update={"episode": episode.model_dump(mode="json")})
    out_dir = save_checkpoint(out, rm.model, rm.processor, rm.head, settings)
    (out_dir / AUX_FILE).write_text(aux.model_dump_json(indent=2) + "\n", encoding="utf-8")
    log.info("prepared %s from %s (reward token %s, head %s)", out_dir, source, settings.reward_token,
             settings.head.type)
    return out_dir
