"""`RewardTrainer`: the transformers Trainer with agentrm's loss, logs, dev metric and checkpoint format.

What it changes, and nothing else:
- `compute_loss`: the model (`RewardTrainModel`) returns LM loss + λ·head loss; the parts are accumulated and
  added to every training log as `lm_loss`, `head_loss`, `head_acc` (train pairs, non-tie, all dims).
- `evaluate`: head pairwise accuracy on the dev split (`eval_head_acc`, per dimension `eval_head_acc_<dim>`, ties
  excluded) plus the dev losses. Summed over processes.
- `_save` / `_load_from_checkpoint`: checkpoints are agentrm checkpoints (adapter or model + processor + head +
  agentrm.json) plus `train_state.safetensors` (logit scale); Trainer's own files (optimizer, scheduler, RNG,
  trainer_state.json) sit next to them, so `resume_from_checkpoint` continues the step count. FSDP and DeepSpeed
  resume through Trainer's own sharded files; their gathered state dict is split here into backbone and head.
- `create_optimizer`: an optional separate learning rate for the head (and logit scale).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from agentrm.train.model import (
    TRAIN_STATE_FILE,
    RewardTrainModel,
    build_head,
    load_head_weights,
    save_reward_checkpoint,
)

log = logging.getLogger(__name__)


class _Gathered:
    """A model whose save_pretrained writes a gathered (FSDP/DeepSpeed) state dict instead of its live weights."""

    def __init__(self, model: Any, state_dict: dict[str, torch.Tensor]) -> None:
        self._model, self._state = model, state_dict

    def save_pretrained(self, out: Any, **kw: Any) -> None:
        self._model.save_pretrained(out, state_dict=self._state, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


class RewardTrainer(Trainer):
    def __init__(self, *args: Any, processor: Any, settings: dict[str, Any], dims: list[str],
                 head_learning_rate: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.processor, self.settings, self.dims = processor, settings, dims
        self.head_learning_rate = head_learning_rate
        self._sums = torch.zeros(6, dtype=torch.float64)  # lm sum, lm batches, head sum, head batches, correct, counted

    @staticmethod
    def _parts(out: dict[str, Any]) -> torch.Tensor:
        """Per-batch log parts; a batch without labelled tokens (or head pairs) does not dilute that mean."""
        has_lm, has_head = float(out["tokens"] > 0), float(out["head_entries"] > 0)
        return torch.tensor([float(out["lm_loss"]) * has_lm, has_lm, float(out["head_loss"]) * has_head, has_head,
                             float(out["correct"].sum()), float(out["counted"].sum())], dtype=torch.float64)

    @property
    def reward_model(self) -> RewardTrainModel:
        model = self.accelerator.unwrap_model(self.model)
        assert isinstance(model, RewardTrainModel)
        return model

    # ---- loss and logs -----------------------------------------------------------------------------------------
    def compute_loss(self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        out = model(**inputs)
        if model.training:
            self._sums += self._parts(out)
        return (out["loss"], out) if return_outputs else out["loss"]

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            sums = self._sums.to(self.args.device)
            if self.accelerator.num_processes > 1:
                sums = self.accelerator.reduce(sums, reduction="sum")
            lm, n_lm, head, n_head, correct, counted = (float(x) for x in sums)
            if n_lm:
                logs["lm_loss"] = round(lm / n_lm, 6)
            if n_head:
                logs["head_loss"] = round(head / n_head, 6)
            if counted:
                logs["head_acc"] = round(correct / counted, 4)
            scale = self.reward_model.logit_scale
            if scale.log_scale.requires_grad:
                logs["logit_scale"] = round(float(scale().detach()), 4)
            self._sums.zero_()
        super().log(logs, start_time)

    @torch.no_grad()
    def evaluate(self, eval_dataset: Any = None, ignore_keys: list[str] | None = None,
                 metric_key_prefix: str = "eval") -> dict[str, float]:
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None:
            return {}
        loader = self.get_eval_dataloader(dataset)  # type: ignore[arg-type]
        model = self.model_wrapped if self.model_wrapped is not None else self.model
        model.eval()
        d = len(self.dims)
        sums = torch.zeros(4 + 2 * d, dtype=torch.float64, device=self.args.device)
        for batch in loader:
            out = model(**self._prepare_inputs(batch))
            sums[:4] += self._parts(out)[:4].to(sums)
            sums[4 : 4 + d] += out["correct"].to(sums)
            sums[4 + d :] += out["counted"].to(sums)
        if self.accelerator.num_processes > 1:
            sums = self.accelerator.reduce(sums, reduction="sum")
        correct, counted = sums[4 : 4 + d], sums[4 + d :]
        p = metric_key_prefix
        metrics: dict[str, float] = {}
        if float(sums[1]):
            metrics[f"{p}_lm_loss"] = float(sums[0] / sums[1])
        if float(sums[3]):
            metrics[f"{p}_head_loss"] = float(sums[2] / sums[3])
        if float(counted.sum()):
            metrics[f"{p}_head_acc"] = float(correct.sum() / counted.sum())
        for i, dim in enumerate(self.dims):
            if float(counted[i]):
                metrics[f"{p}_head_acc_{dim}"] = float(correct[i] / counted[i])
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    # ---- optimizer -----------------------------------------------------------------------------------------------
    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        if self.optimizer is not None or self.head_learning_rate is None:
            return super().create_optimizer()
        rm = self.reward_model
        head_ids = {id(p) for p in [*rm.head.parameters(), *rm.logit_scale.parameters()]}
        decay = set(self.get_decay_parameter_names(rm))
        groups: list[dict[str, Any]] = []
        for is_head in (False, True):
            for decayed in (True, False):
                params = [p for n, p in rm.named_parameters()
                          if p.requires_grad and (id(p) in head_ids) == is_head and (n in decay) == decayed]
                if params:
                    group: dict[str, Any] = {"params": params,
                                             "weight_decay": self.args.weight_decay if decayed else 0.0}
                    if is_head:
                        group["lr"] = self.head_learning_rate
                    groups.append(group)
        cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, rm)
        self.optimizer = cls(groups, **kwargs)
        return self.optimizer

    # ---- checkpoints -----------------------------------------------------------------------------------------------
    def _save(self, output_dir: str | None = None, state_dict: dict[str, Any] | None = None) -> None:
        out = Path(output_dir or str(self.args.output_dir))
        rm = self.reward_model
        backbone: Any = rm.backbone
        head: nn.Module = rm.head
        scale = {"logit_scale": rm.logit_scale.log_scale.detach().cpu().float().reshape(1)}
        if state_dict:  # gathered by FSDP / DeepSpeed: split it
            sub = {k.removeprefix("backbone."): v for k, v in state_dict.items() if k.startswith("backbone.")}
            backbone = _Gathered(rm.backbone, sub)
            head = build_head(rm.head.config, rm.head.hidden_size)
            head.load_state_dict({k.removeprefix("head."): v.float().cpu() for k, v in state_dict.items()
                                  if k.startswith("head.")})
            if "logit_scale.log_scale" in state_dict:
                scale["logit_scale"] = state_dict["logit_scale.log_scale"].detach().cpu().float().reshape(1)
        save_reward_checkpoint(out, backbone, self.processor, head, self.settings)
        save_file(scale, str(out / TRAIN_STATE_FILE))
        torch.save(self.args, out / "training_args.bin")

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        if self.is_fsdp_enabled or self.is_deepspeed_enabled:
            super()._load_from_checkpoint(resume_from_checkpoint, model)
            return
        ckpt = Path(resume_from_checkpoint)
        rm = self.reward_model
        if hasattr(rm.backbone, "peft_config"):
            from peft import set_peft_model_state_dict

            adapter = ckpt / "adapter_model.safetensors"
            if not adapter.is_file():
                raise FileNotFoundError(f"{ckpt}: no adapter_model.safetensors to resume the LoRA adapter from")
            result = set_peft_model_state_dict(rm.backbone, load_file(str(adapter)))
            unexpected = getattr(result, "unexpected_keys", None)
            if unexpected:
                raise RuntimeError(f"{adapter}: unexpected keys {list(unexpected)[:5]}")
        else:  # full weights: load them with the model's own class (it knows its checkpoint key layout)
            saved = type(rm.backbone).from_pretrained(str(ckpt), dtype=next(rm.backbone.parameters()).dtype)
            rm.backbone.load_state_dict(saved.state_dict(), strict=True)
            del saved
        load_head_weights(rm.head, ckpt)
        state = ckpt / TRAIN_STATE_FILE
        if state.is_file():
            with torch.no_grad():
                rm.logit_scale.log_scale.copy_(load_file(str(state))["logit_scale"][0])
        log.info("resumed weights from %s", ckpt)


class EpochCallback(TrainerCallback):
    """Tells the training dataset which epoch starts (its CoT-dropping draws depend on it)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def on_epoch_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        self.dataset.epoch = int((state.epoch or 0.0) + 1e-6)


class JsonlLogger(TrainerCallback):
    """Appends every log record to <output_dir>/metrics.jsonl (tail it while training)."""

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if state.is_world_process_zero and logs:
            out = str(args.output_dir)
            os.makedirs(out, exist_ok=True)
            with open(os.path.join(out, "metrics.jsonl"), "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"step": state.global_step, **logs}) + "\n")


def plot_curves(history: list[dict[str, Any]], out: str | Path) -> Path:
    """curves.png: loss parts, head accuracy (train and dev) and learning rate against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("loss", ["loss", "lm_loss", "head_loss", "eval_lm_loss", "eval_head_loss"]),
              ("head pairwise accuracy", ["head_acc", "eval_head_acc"]), ("learning rate", ["learning_rate"])]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6))
    for ax, (title, keys) in zip(axes, panels, strict=True):
        for key in keys:
            pts = [(h["step"], h[key]) for h in history if key in h]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o" if len(pts) < 30 else None, label=key)
        ax.set_title(title)
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(out)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
