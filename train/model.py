"""The trainable reward model and its checkpoints.

`RewardTrainModel` puts the backbone (peft LoRA or full), the reward head and the learnable logit scale in ONE
nn.Module whose forward computes every loss. DDP, FSDP and DeepSpeed wrap that module, so the whole step goes
through the wrapped forward (calling submodules of a wrapped model would bypass FSDP's unsharding and DDP's
reducer). The LM loss is computed only at labelled positions: no (batch, seq, vocab) logits are materialised for
the prompt and frame tokens.

Trainable by default: LoRA adapters on the language model's linears (or the whole language model), the
`<Reward>` row of the input embedding and of the LM head (the model writes `<Reward>` itself), the head and the
logit scale; the vision tower and merger stay frozen.

Checkpoints are agentrm checkpoints (`agentrm.checkpoint.save_checkpoint`: model or adapter + tokenizer/processor +
reward_head.safetensors + agentrm.json), plus `train_state.safetensors` (logit scale) for resuming. Pooling heads
(attn_pool, attn_query) are written in the same layout with their config in agentrm.json; `agentrm.load` reads
every head type (`agentrm.head.build_head`).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from agentrm.checkpoint import HEAD_FILE, SETTINGS_FILE, AgentrmSettings, save_checkpoint
from agentrm.errors import CheckpointError, ConfigError
from agentrm.head import AnyHeadConfig, HeadConfig, build_head
from agentrm.head_pooling import POOLING_TYPES, PoolingHeadConfig, needed_layers
from agentrm.losses import (
    LogitScale,
    apply_tie_policy,
    bce_pointwise,
    mse_pointwise,
    pairwise_correct,
    pairwise_loss,
)
from agentrm.models import ensure_reward_token, hidden_size, load_model_and_processor, load_processor, unwrap
from agentrm.train.data import IGNORE
from agentrm.train_config import HeadSection, LoraSection, LossSection

log = logging.getLogger(__name__)

TRAIN_STATE_FILE = "train_state.safetensors"


def head_config(section: HeadSection, num_outputs: int) -> AnyHeadConfig:
    if section.type in POOLING_TYPES:
        return PoolingHeadConfig(type=section.type, num_outputs=num_outputs, mlp_hidden=section.mlp_hidden,
                                 dropout=section.dropout, num_heads=section.num_heads, layers=section.layers)
    return HeadConfig(type=section.type, num_outputs=num_outputs, mlp_hidden=section.mlp_hidden,
                      dropout=section.dropout)


# ---------------------------------------------------------------------------------------------- checkpoints
def read_settings(path: Path) -> tuple[dict[str, Any], AnyHeadConfig]:
    """agentrm.json as a dict plus its head config (pooling heads included)."""
    try:
        raw = json.loads((path / SETTINGS_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path / SETTINGS_FILE}: cannot read it ({exc})") from exc
    head = raw.get("head", {})
    cfg: AnyHeadConfig = (PoolingHeadConfig if head.get("type") in POOLING_TYPES else HeadConfig).model_validate(head)
    return raw, cfg


def is_checkpoint(path: str) -> bool:
    return (Path(path) / SETTINGS_FILE).is_file()


def load_for_training(
    path: str, dtype: str, attn: str, reward_token: str, device: str = "cpu"
) -> tuple[Any, Any, int, dict[str, Any] | None]:
    """(model, processor, reward_id, settings dict or None). An agentrm checkpoint dir comes back with its LoRA
    adapter trainable (so stage 2 continues stage 1's adapter, whose base is still settings.base_model); a plain
    Qwen-VL model gets the reward token added."""
    model: Any
    if not is_checkpoint(path):
        model, processor = load_model_and_processor(path, dtype, device, attn)
        return model, processor, ensure_reward_token(model, processor.tokenizer, reward_token), None
    settings, _ = read_settings(Path(path))
    if settings.get("reward_token") != reward_token:
        raise ConfigError(f"{path}: checkpoint reward token {settings.get('reward_token')!r} != the traces' "
                          f"{reward_token!r}")
    if settings.get("format") == "lora":
        from peft import PeftModel

        model, _ = load_model_and_processor(settings["base_model"], dtype, device, attn)
        processor = load_processor(path)
        rid = ensure_reward_token(model, processor.tokenizer, reward_token)
        rows = settings.get("embedding_rows")
        if rows and model.get_input_embeddings().weight.shape[0] != rows:
            model.resize_token_embeddings(rows, mean_resizing=False)
        model = PeftModel.from_pretrained(model, path, is_trainable=True)
        return model, processor, rid, settings
    model, processor = load_model_and_processor(path, dtype, device, attn)
    return model, processor, ensure_reward_token(model, processor.tokenizer, reward_token), settings


def load_head_weights(head: nn.Module, path: Path) -> None:
    file = path / HEAD_FILE
    if not file.is_file():
        raise CheckpointError(f"{path}: no {HEAD_FILE}")
    found = load_file(str(file))
    try:
        head.load_state_dict(found)
    except RuntimeError as exc:
        raise CheckpointError(f"{file}: the head does not fit this model/config ({exc})") from exc


def save_reward_checkpoint(
    out: str | Path, model: Any, processor: Any, head: nn.Module, settings: dict[str, Any]
) -> Path:
    """An agentrm checkpoint. `settings`: base_model, dims, reward_token, episode (the head config is the head's)."""
    full = AgentrmSettings(head=head.config, **{k: v for k, v in settings.items() if k != "head"})
    return save_checkpoint(out, model, processor, head, full)


def export_merged(checkpoint: str, out: str, dtype: str = "auto") -> Path:
    """Fold a LoRA checkpoint into its base weights: a self-contained "full" agentrm checkpoint."""
    settings, cfg = read_settings(Path(checkpoint))
    model, processor, _, _ = load_for_training(checkpoint, dtype, "sdpa", settings["reward_token"])
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    head = build_head(cfg, hidden_size(unwrap(model)))
    load_head_weights(head, Path(checkpoint))
    names = ("base_model", "dims", "reward_token", "episode", "normalization")
    keep: dict[str, Any] = {k: settings[k] for k in names if k in settings}
    return save_reward_checkpoint(out, model, processor, head, keep)


# ---------------------------------------------------------------------------------------------- trainables
def lora_target(section: LoraSection) -> str | list[str]:
    if not section.language_model_only:
        return list(section.target_modules)
    names = "|".join(re.escape(n) for n in section.target_modules)
    return rf".*language_model.*\.({names})"


def set_trainable(model: Any, lora: LoraSection, reward_id: int, freeze_vision: bool) -> Any:
    """Apply LoRA (unless the model already has an adapter) or unfreeze the language model; freeze vision."""
    base = unwrap(model)
    if hasattr(model, "peft_config"):
        pass  # continued adapter: its trainable parts are already set
    elif lora.enabled:
        from peft import LoraConfig, get_peft_model

        tied = base.get_output_embeddings().weight.data_ptr() == base.get_input_embeddings().weight.data_ptr()
        tokens = {"embed_tokens": [reward_id]} if tied else {"embed_tokens": [reward_id], "lm_head": [reward_id]}
        config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                            target_modules=lora_target(lora), trainable_token_indices=tokens)
        model = get_peft_model(model, config)
    else:
        for p in base.parameters():
            p.requires_grad_(True)
    visual = getattr(unwrap(model).model, "visual", None)
    if visual is not None and freeze_vision:
        for p in visual.parameters():
            p.requires_grad_(False)
    return model


# ---------------------------------------------------------------------------------------------- the module
class RewardTrainModel(nn.Module):
    """Backbone + head + logit scale; forward returns the total loss and its parts."""

    accepts_loss_kwargs = False  # the loss is a per-batch mean: Trainer divides by the accumulation steps

    def __init__(self, backbone: Any, head: nn.Module, loss: LossSection) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head.float()
        self.loss_cfg = loss
        self.layers = needed_layers(head)
        self.logit_scale = LogitScale(loss.ce_init_scale, loss.ce_max_scale)
        self.logit_scale.log_scale.requires_grad_(loss.pairwise == "ce" and loss.ce_learn_scale)
        self._no_split_modules = getattr(unwrap(backbone), "_no_split_modules", None)  # FSDP auto-wrap

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict[str, Any] | None = None) -> None:
        kwargs = gradient_checkpointing_kwargs or {"use_reentrant": False}
        unwrap(self.backbone).gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)

    def lm_loss(self, base: Any, hidden: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Mean next-token loss over labelled tokens (token t predicted at position t-1)."""
        target = labels[:, 1:]
        sel = target != IGNORE
        logits = base.lm_head(hidden[:, :-1][sel]).float()
        n = int(sel.sum())
        if n == 0:
            return logits.sum() * 0.0, 0
        return F.cross_entropy(logits, target[sel]), n

    def head_loss(self, rewards: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        cfg = self.loss_cfg
        pairs, y = batch["pair_index"], batch["pair_y"].to(rewards.device)
        mask = apply_tie_policy(y, batch["pair_mask"].to(rewards.device), cfg.ties)
        d = rewards[pairs[:, 0]] - rewards[pairs[:, 1]] if pairs.numel() else rewards.new_zeros(y.shape)
        scale = self.logit_scale()
        parts = [pairwise_loss(cfg.pairwise, d, y, mask, k=cfg.btt_k, margin=cfg.margin,
                               label_smoothing=cfg.label_smoothing, scale=scale)]
        masks = [mask]
        points = batch["point_index"]
        if points.numel():
            s = rewards[points]
            t, pm = batch["point_target"].to(rewards.device), batch["point_mask"].to(rewards.device)
            parts.append(bce_pointwise(s, t, pm) if cfg.pointwise == "bce" else mse_pointwise(s, t, pm))
            masks.append(pm)
        n = torch.stack([m.sum() for m in masks]).sum()
        total = torch.stack([p.sum() for p in parts]).sum()
        # an empty batch still touches the head and the scale: DDP expects a gradient for every trainable
        loss = total / n if int(n) else rewards.sum() * 0.0 + scale * 0.0
        correct, counted = pairwise_correct(d.detach(), y, batch["pair_mask"].to(rewards.device))
        return {"loss": loss, "entries": int(n), "pair_d": d.detach(), "correct": correct, "counted": counted}

    def forward(self, **batch: torch.Tensor) -> dict[str, Any]:
        base = unwrap(self.backbone)
        vision = {k: batch[k] for k in ("pixel_values", "image_grid_thw", "mm_token_type_ids") if k in batch}
        out = base.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         output_hidden_states=self.layers is not None, **vision)
        hidden = out.last_hidden_state
        lm, n_tokens = self.lm_loss(base, hidden, batch["labels"])
        feats = hidden if self.layers is None else torch.stack([out.hidden_states[i] for i in self.layers])
        rewards = self.head(feats, batch["reward_mask"], batch["attention_mask"])
        head = self.head_loss(rewards, batch)
        loss = self.loss_cfg.lm_weight * lm + self.loss_cfg.head_weight * head["loss"]
        return {"loss": loss, "lm_loss": lm.detach(), "head_loss": head["loss"].detach(), "tokens": n_tokens,
                "head_entries": head["entries"],
                "rewards": rewards.detach(), "pair_d": head["pair_d"], "correct": head["correct"],
                "counted": head["counted"]}
