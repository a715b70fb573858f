"""verl's FSDP LM engine plus agentrm's reward head and the auxiliary Bradley-Terry loss.

verl's policy-loss registry never sees hidden states, so the head has to live in the engine. `AgentrmRewardEngine`
subclasses `FSDPEngineWithLMHead` and is registered under model_type "agentrm_reward_lm" (selected with
`actor_rollout_ref.model.model_type=agentrm_reward_lm`, shipped by `external_lib=agentrm.train.verl.plugin`):

- `_build_module`: the HF model as verl builds it, then the `RewardHead` attached as the submodule `agentrm_head`
  *before* FSDP wrapping (and listed in `_no_split_modules`, so it is its own FSDP unit that can be called after the
  backbone's forward). Its weights come from the model dir's reward_head.safetensors; they ride in verl's FSDP
  checkpoints with the rest of the module, and `get_per_tensor_param*` filter them out of the weights synced to
  vLLM (vLLM's Qwen-VL has no such parameter).
- `forward_step`: a forward hook on the language model's final norm captures the last-layer hidden states; the head
  reads them at the `<Reward>` tokens of the *response* of each row flagged `agentrm_answer_row` (the final turn of
  an answered episode); the loss becomes `pg + coef * BT`.
  Pairwise rows hold both videos' rewards (video 1's `<Reward>` first), so BT is computed within the row.
  Pointwise rows compare against the partner's stop-gradient score, which the old-log-prob pass stored as
  `agentrm_scores` and the trainer joined by pair id into `agentrm_partner_scores` (batch balancing may put the
  partner on another rank, so it cannot be read from this micro-batch).
- No try/except around the loss: an error fails the step (DeScore silently zeroed the BT loss). Rows that cannot
  contribute (no answer, no labels, partner missing) are counted in metrics instead.

Limits: Ulysses sequence parallelism (>1) is refused (the hook would see a slice of the sequence); LoRA runs are
refused by the config (peft would freeze the head).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from tensordict import TensorDict
from verl.workers.engine import EngineRegistry
from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead

from agentrm.checkpoint import HEAD_FILE, SETTINGS_FILE, AgentrmSettings
from agentrm.errors import CheckpointError, ConfigError
from agentrm.head import HeadConfig, RewardHead
from agentrm.losses import LABEL_SIGN, apply_tie_policy, masked_mean, pairwise_loss
from agentrm.models import hidden_size
from agentrm.train.grpo_config import AuxLossConfig
from agentrm.train.grpo_prepare import AUX_FILE

log = logging.getLogger(__name__)

MODEL_TYPE = "agentrm_reward_lm"
HEAD_ATTR = "agentrm_head"


def _final_norm(module: torch.nn.Module) -> torch.nn.Module:
    """The language model's final norm (its output is the last-layer hidden state agentrm's head reads)."""
    for name in ("model.language_model.norm", "language_model.norm", "model.norm"):
        try:
            return module.get_submodule(name)
        except AttributeError:
            continue
    raise CheckpointError(f"{type(module).__name__}: cannot find the language model's final norm; agentrm's head "
                          "supports Qwen2.5-VL / Qwen3-VL layouts (model.language_model.norm)")


def _row_value(data: TensorDict, key: str, i: int) -> Any:
    if key not in data.keys():  # noqa: SIM118 (TensorDict refuses `in`)
        return None
    value = data[key]
    try:
        item = value[i]
    except (IndexError, TypeError):
        return None
    return getattr(item, "data", item)


def pair_labels(extra_info: dict[str, Any], dims: list[str]) -> tuple[list[int], list[bool]]:
    """(sign of s1 - s2 per dim, labelled per dim) of a row, from the Item JSON the data conversion stored."""
    item = json.loads(extra_info["item"]) if isinstance(extra_info.get("item"), str) else {}
    labels = item.get("labels") or item.get("meta", {}).get("pair_labels") or {}
    signs = [LABEL_SIGN.get(str(labels.get(d)), 0) for d in dims]
    return signs, [d in labels and str(labels[d]) in LABEL_SIGN for d in dims]


@EngineRegistry.register(model_type=MODEL_TYPE, backend=["fsdp", "fsdp2"], device=["cuda", "npu", "cpu"])
class AgentrmRewardEngine(FSDPEngineWithLMHead):
    """FSDPEngineWithLMHead + reward head + auxiliary BT/BTT loss (see module docstring)."""

    def _build_module(self) -> torch.nn.Module:
        if self.ulysses_sequence_parallel_size > 1:
            raise ConfigError("agentrm's reward head needs whole sequences: set ulysses_sequence_parallel_size=1")
        wanted = self.model_config.model_type
        self.model_config.model_type = "language_model"  # let verl build the plain LM as usual
        try:
            module = super()._build_module()
        finally:
            self.model_config.model_type = wanted
        local = Path(self.model_config.local_path or self.model_config.path)
        if not (local / SETTINGS_FILE).is_file():
            raise CheckpointError(f"{local}: no {SETTINGS_FILE}; GRPO starts from a dir prepared by `agentrm train "
                                  "grpo` (it adds the reward token, the head and its settings)")
        self.settings = AgentrmSettings.model_validate_json((local / SETTINGS_FILE).read_text())
        aux_file = local / AUX_FILE
        self.aux = AuxLossConfig.model_validate_json(aux_file.read_text()) if aux_file.is_file() else AuxLossConfig()
        self.rm_mode = (self.settings.episode or {}).get("mode", "pairwise")
        tokenizer = self.model_config.tokenizer
        self.reward_id = int(tokenizer.convert_tokens_to_ids(self.settings.reward_token))
        if not isinstance(self.settings.head, HeadConfig):
            raise ConfigError(f"{local}: head type {self.settings.head.type!r} reads whole sequences / several "
                              "layers; GRPO's engine supports the position heads (linear, mlp) only")
        head = RewardHead(self.settings.head, hidden_size(module.config))
        if (local / HEAD_FILE).is_file():
            head.load_state_dict(load_file(str(local / HEAD_FILE)))
        head.to(torch.float32)
        module.add_module(HEAD_ATTR, head)
        # its own FSDP unit: called after the backbone's forward, it must unshard itself
        module._no_split_modules = [*(getattr(module, "_no_split_modules", None) or []), type(head).__name__]
        return module

    # ------------------------------------------------------------------------------------------ head scores
    def _head(self) -> RewardHead:
        head: RewardHead = getattr(self.module, HEAD_ATTR)
        return head

    def _layout(self, data: TensorDict, hidden: torch.Tensor) -> tuple[torch.Tensor, list[tuple[int, int, int]]]:
        """Flat (N, H) view of the hidden states and, per row, (start, prompt_len, length) in that view."""
        input_ids = data["input_ids"]
        offsets = input_ids.offsets().tolist()
        lengths = [b - a for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
        has_prompts = "prompts" in data.keys()  # noqa: SIM118 (TensorDict refuses `in`)
        prompt_lens = data["prompts"].offsets().diff().tolist() if has_prompts else [0] * len(lengths)
        if hidden.shape[0] == 1 and hidden.shape[1] >= offsets[-1]:  # packed (remove padding): (1, total, H)
            flat = hidden[0]
            return flat, [(offsets[i], prompt_lens[i], lengths[i]) for i in range(len(lengths))]
        width = hidden.shape[1]  # padded (B, T, H), right padding
        return hidden.reshape(-1, hidden.shape[-1]), [(i * width, prompt_lens[i], lengths[i])
                                                      for i in range(len(lengths))]

    def head_scores(self, data: TensorDict, hidden: torch.Tensor) -> tuple[list[torch.Tensor | None], torch.Tensor]:
        """Per row: (K, dims) head outputs at the response's reward tokens of an answer row, else None; and the
        head output tensor itself. The head module is called exactly once per micro-batch, even with no reward
        token: it is an FSDP unit, and every rank must run the same all-gathers."""
        flat, layout = self._layout(data, hidden)
        ids = data["input_ids"].values()
        offsets = data["input_ids"].offsets().tolist()
        want = 2 if self.rm_mode == "pairwise" else 1
        picks: list[list[int]] = []
        for i, (start, prompt_len, _length) in enumerate(layout):
            fields = _row_value(data, "extra_fields", i) or {}
            pos: list[int] = []
            if fields.get("agentrm_answer_row", False):
                row = ids[offsets[i]: offsets[i + 1]]
                found = [int(p) for p in (row == self.reward_id).nonzero().flatten() if int(p) >= prompt_len]
                # the parser accepted the answer, so a wrong count means truncation: counted, not scored
                pos = [start + p for p in found] if len(found) == want else []
            picks.append(pos)
        mask = torch.zeros(flat.shape[0], dtype=torch.bool, device=flat.device)
        for pos in picks:
            mask[pos] = True
        out = self._head()(flat[None], mask[None])  # (N, dims), row-major == the order of `picks`
        scores: list[torch.Tensor | None] = []
        k = 0
        for pos in picks:
            scores.append(out[k: k + len(pos)] if pos else None)
            k += len(pos)
        return scores, out

    def aux_loss(
        self, data: TensorDict, scores: list[torch.Tensor | None], head_out: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """coef * mean BT/BTT over labelled (pair, dim) entries of this micro-batch, and its metrics."""
        dims = self.settings.dims
        ds, ys, masks = [], [], []
        missing_partner = 0
        for i, s in enumerate(scores):
            if s is None:
                continue
            extra_info = _row_value(data, "extra_info", i) or {}
            signs, labelled = pair_labels(extra_info, dims)
            if self.rm_mode == "pairwise":
                d = s[0] - s[1]
            else:
                partner = _row_value(data, "agentrm_partner_scores", i)
                if partner is None or not torch.isfinite(torch.as_tensor(partner)).all():
                    missing_partner += 1
                    continue
                partner_t = torch.as_tensor(partner, dtype=s.dtype, device=s.device).reshape(-1)[: len(dims)]
                d = (s[0] - partner_t) if extra_info.get("pair_role") == "1" else (partner_t - s[0])
            ds.append(d)
            ys.append(torch.tensor(signs, dtype=d.dtype, device=d.device))
            masks.append(torch.tensor(labelled, dtype=torch.bool, device=d.device))
        if not ds:
            zero = head_out.sum() * 0.0  # no labelled pair here; the head stays in the graph on every rank
            return zero, {"agentrm/bt_loss": 0.0, "agentrm/bt_pairs": 0, "agentrm/bt_head_acc": float("nan"),
                          "agentrm/bt_missing_partner": missing_partner}
        d_all, y_all = torch.stack(ds), torch.stack(ys)
        mask = apply_tie_policy(y_all, torch.stack(masks), self.aux.ties)
        per = pairwise_loss(self.aux.kind, d_all, y_all, mask, k=self.aux.btt_k)
        loss = masked_mean(per, mask)
        counted = mask & (y_all != 0)
        acc = ((torch.sign(d_all) == y_all) & counted).sum() / counted.sum().clamp(min=1)
        return loss, {"agentrm/bt_loss": loss.detach().item(), "agentrm/bt_pairs": int(mask.sum()),
                      "agentrm/bt_head_acc": acc.item(), "agentrm/bt_missing_partner": missing_partner}

    # -------------------------------------------------------------------------------------------- forward
    def forward_step(self, micro_batch: TensorDict, loss_function: Any, forward_only: bool) -> Any:
        captured: dict[str, torch.Tensor] = {}
        handle = _final_norm(self.module).register_forward_hook(
            lambda _m, _i, out: captured.__setitem__("hidden", out[0] if isinstance(out, tuple) else out)
        )
        wrapped = None
        if loss_function is not None:
            def wrapped(model_output: Any, data: TensorDict, dp_group: Any = None) -> Any:
                loss, metrics = loss_function(model_output=model_output, data=data, dp_group=dp_group)
                if forward_only or self.aux.coef == 0:
                    return loss, metrics
                bt, bt_metrics = self.aux_loss(data, *self.head_scores(data, captured["hidden"]))
                metrics = dict(metrics)
                metrics.update(bt_metrics)
                return loss + self.aux.coef * bt, metrics
        try:
            loss, output = super().forward_step(micro_batch, loss_function=wrapped, forward_only=forward_only)
            if forward_only:
                output["model_output"]["agentrm_scores"] = self._score_tensor(micro_batch, captured["hidden"])
        finally:
            handle.remove()
        return loss, output

    def _score_tensor(self, data: TensorDict, hidden: torch.Tensor) -> torch.Tensor:
        """(B, K*dims) detached head scores for the old-log-prob pass; NaN where a row has none."""
        with torch.no_grad():
            scores, _ = self.head_scores(data, hidden.detach())
        k = 2 if self.rm_mode == "pairwise" else 1
        out = torch.full((len(scores), k * len(self.settings.dims)), float("nan"))
        for i, s in enumerate(scores):
            if s is not None:
                out[i] = s.detach().float().reshape(-1).cpu()
        return out

    # ------------------------------------------------------------------------------ weights sent to vLLM
    def get_per_tensor_param(self, *args: Any, **kwargs: Any) -> Any:
        params, peft_config = super().get_per_tensor_param(*args, **kwargs)
        return ((n, p) for n, p in params if HEAD_ATTR not in n), peft_config

    def get_per_tensor_param_shard(self, **kwargs: Any) -> Any:
        gen, extra = super().get_per_tensor_param_shard(**kwargs)
        return ((n, p, spec) for n, p, spec in gen if HEAD_ATTR not in n), extra
