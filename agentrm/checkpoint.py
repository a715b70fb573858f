"""The agentrm checkpoint: a model, its reward head, and the settings that make the head mean something.

Layout of a checkpoint dir (local or on the hub):

    agentrm.json             AgentrmSettings: schema_version, format, base_model, dims, reward_token, head
                             config, embedding rows, optional per-dimension normalisation, EpisodeConfig
                             snapshot
    reward_head.safetensors  RewardHead state dict (float32)
    tokenizer + processor    with the reward token already added
    format "full":  config.json + model weights (a plain HF model dir)
    format "lora":  adapter_config.json + adapter weights (peft); the base comes from `base_model`

`agentrm.load(path)` restores all of it; a plain Qwen-VL dir (no agentrm.json) loads too, with the reward
token added and a fresh (untrained, deterministic) head, and a warning. A head that does not fit the model
fails loudly (CheckpointError naming the file, the expected and found shapes, and the fix) instead of
DeScore's silent "hidden size 4096 hard-coded" trap.

    rm = agentrm.load("out/coldstart/ckpt")
    rm.save("out/copy")
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import torch
from pydantic import Field, ValidationError, model_validator
from safetensors.torch import load_file, save_file
from torch import nn

from agentrm.config import DEFAULT_DIMS, EpisodeConfig, StrictModel
from agentrm.errors import CheckpointError
from agentrm.head import AnyHeadConfig, HeadConfig, build_head
from agentrm.head_pooling import needed_layers
from agentrm.models import (
    ensure_reward_token,
    hidden_size,
    load_model_and_processor,
    load_processor,
    unwrap,
    vision_factor,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = "1"
SETTINGS_FILE = "agentrm.json"
HEAD_FILE = "reward_head.safetensors"
ADAPTER_FILE = "adapter_config.json"


class NormStats(StrictModel):
    mean: float
    std: float = Field(gt=0, description="Standard deviation of the raw score; normalised = (raw - mean) / std.")


class AgentrmSettings(StrictModel):
    """agentrm.json: everything besides weights needed to use the head as trained."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    format: Literal["full", "lora"] = Field(
        "full",
        description="full = HF model dir; lora = peft adapter on top of base_model (set by save_checkpoint).",
    )
    base_model: str = Field(description="Hub id or path of the base Qwen-VL model (the LoRA base for format=lora).")
    dims: list[str] = Field(description="Judged dimensions, in head output order.")
    reward_token: str = Field("<Reward>", description="Special token whose last-layer hidden state the head reads.")
    head: AnyHeadConfig
    embedding_rows: int | None = Field(None, description="Rows of the input embedding the weights were saved with.")
    normalization: dict[str, NormStats] | None = Field(
        None, description="Optional per-dimension {mean, std} of raw scores (e.g. on a validation set)."
    )
    episode: dict[str, Any] | None = Field(
        None,
        description="EpisodeConfig snapshot (window, tools, limits) the model was trained/evaluated with.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> AgentrmSettings:
        if self.head.num_outputs != len(self.dims):
            raise ValueError(
                f"head.num_outputs={self.head.num_outputs} but dims has {len(self.dims)} entries "
                f"{self.dims}; they must match (one output per dimension)"
            )
        if self.normalization is not None and (unknown := set(self.normalization) - set(self.dims)):
            raise ValueError(f"normalization names dims {sorted(unknown)} that are not in dims {self.dims}")
        return self

    @classmethod
    def for_episode(cls, episode: EpisodeConfig, base_model: str, head: AnyHeadConfig | None = None) -> AgentrmSettings:
        """Settings whose dims/reward token come from `episode` (head defaults to linear over its dims)."""
        head = head or HeadConfig(num_outputs=len(episode.dims))
        return cls(
            base_model=base_model,
            dims=list(episode.dims),
            reward_token=episode.reward_token,
            head=head,
            episode=episode.model_dump(mode="json"),
        )

    def episode_config(self) -> EpisodeConfig | None:
        return None if self.episode is None else EpisodeConfig.model_validate(self.episode)


@dataclass
class RewardModel:
    """A loaded reward model: backbone (maybe peft-wrapped), processor, head and settings."""

    model: Any
    processor: Any
    head: nn.Module  # RewardHead or a pooling head (agentrm.head.build_head)
    settings: AgentrmSettings
    reward_token_id: int
    source: str = ""

    @property
    def dims(self) -> list[str]:
        return self.settings.dims

    @property
    def factor(self) -> int:
        return vision_factor(unwrap(self.model))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def hidden_states(self, inputs: dict[str, Any]) -> torch.Tensor:
        """Last-layer hidden states (after the final norm), (B, T, H). Runs the backbone only: no LM head,
        so no (B, T, vocab) logits are ever materialised."""
        layers = needed_layers(self.head)
        if layers is None:
            return unwrap(self.model).model(**inputs).last_hidden_state
        out = unwrap(self.model).model(**inputs, output_hidden_states=True)  # multi-layer head: (L, B, T, H)
        return torch.stack([out.hidden_states[i] for i in layers])

    def rewards(self, inputs: dict[str, Any]) -> torch.Tensor:
        """Head outputs at every reward token of the batch, (N, dims) float32, row by row, left to right."""
        hidden = self.hidden_states(inputs)
        mask = inputs["input_ids"] == self.reward_token_id
        return self.head(hidden, mask, inputs.get("attention_mask"))

    def normalize(self, scores: list[float]) -> list[float]:
        """(raw - mean) / std per dimension when the checkpoint has normalisation stats, else unchanged."""
        norm = self.settings.normalization
        if not norm:
            return list(scores)
        return [(s - norm[d].mean) / norm[d].std if d in norm else s for s, d in zip(scores, self.dims, strict=True)]

    def save(self, out_dir: str | Path) -> Path:
        return save_checkpoint(out_dir, self.model, self.processor, self.head, self.settings)


def _is_peft(model: Any) -> bool:
    return hasattr(model, "peft_config") and callable(getattr(model, "get_base_model", None))


def save_checkpoint(
    out_dir: str | Path, model: Any, processor: Any, head: nn.Module, settings: AgentrmSettings
) -> Path:
    """Write an agentrm checkpoint. A peft-wrapped model is saved as its adapter (format "lora", on top of
    `settings.base_model`); merge it first (`model.merge_and_unload()`) for a self-contained "full" dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if head.num_outputs != len(settings.dims) or head.config != settings.head:
        raise CheckpointError(
            f"{out}: head {head.config} does not match settings.head {settings.head} / dims {settings.dims}; "
            "build the settings from the head you save"
        )
    lora = _is_peft(model)
    base = settings.base_model
    if lora and not base:
        base = next(iter(model.peft_config.values())).base_model_name_or_path or ""
    if lora and not base:
        raise CheckpointError(f"{out}: a LoRA checkpoint needs settings.base_model (the hub id or dir of the base)")
    rows = int(unwrap(model).get_input_embeddings().weight.shape[0])
    final = settings.model_copy(
        update={"format": "lora" if lora else "full", "base_model": base, "embedding_rows": rows}
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in head.state_dict().items()}
    save_file(state, str(out / HEAD_FILE), metadata={"agentrm_schema_version": SCHEMA_VERSION})
    (out / SETTINGS_FILE).write_text(json.dumps(final.model_dump(mode="json"), indent=2) + "\n")
    return out


def _fetch(path_or_id: str, filename: str) -> Path | None:
    """`filename` from a local dir or a hub repo (via the HF cache); None when it has no such file."""
    local = Path(path_or_id)
    if local.is_dir():
        return local / filename if (local / filename).is_file() else None
    if local.exists() or path_or_id.startswith((".", "/", "~")):
        raise CheckpointError(f"{path_or_id}: not a directory; pass a checkpoint dir or a hub id")
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(path_or_id, filename))
    except LocalEntryNotFoundError as exc:  # offline/unreachable and not cached: is the repo cached at all?
        known = ("config.json", ADAPTER_FILE, SETTINGS_FILE)
        if any(isinstance(try_to_load_from_cache(path_or_id, f), str) for f in known):
            return None  # the repo is in the cache, this file is not part of it
        raise CheckpointError(
            f"{path_or_id}: not a local dir, and the hub is unreachable with no cached copy ({exc}). Pass an "
            "existing dir, or download the repo once (HF_HUB_OFFLINE=1 then uses the cache)."
        ) from exc
    except EntryNotFoundError:
        return None  # e.g. a plain Qwen-VL repo has no agentrm.json
    except Exception as exc:  # noqa: BLE001 - no such repo, gated, invalid id, HTTP error
        raise CheckpointError(f"{path_or_id}: not a local dir nor a usable hub repo ({exc})") from exc


def _read_settings(path: Path) -> AgentrmSettings:
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot read it as JSON ({exc})") from exc
    version = str(raw.get("schema_version", "")) if isinstance(raw, dict) else ""
    if version != SCHEMA_VERSION:
        raise CheckpointError(
            f"{path}: schema_version {version or '<missing>'!r} is not supported (this agentrm reads "
            f"{SCHEMA_VERSION!r}); upgrade agentrm or re-save the checkpoint with this version"
        )
    try:
        return AgentrmSettings.model_validate(raw)
    except ValidationError as exc:
        raise CheckpointError(f"{path}: invalid settings:\n{exc}") from exc


def _load_head(path: Path | None, settings: AgentrmSettings, hidden: int, source: str) -> nn.Module:
    head = build_head(settings.head, hidden)
    if path is None:
        raise CheckpointError(f"{source}: has {SETTINGS_FILE} but no {HEAD_FILE}; copy the head file next to it")
    found = load_file(str(path))
    expected = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in found.items()}
    if expected != got:
        raise CheckpointError(
            f"{path}: reward head does not fit: expected tensors {expected} (head {settings.head.type}, "
            f"hidden size {hidden} of the model, {len(settings.dims)} dims {settings.dims}), found {got}. "
            "Fix: load it with the base model it was trained on (agentrm.json "
            f"base_model={settings.base_model!r}) and make agentrm.json dims/head match the head file, "
            "or retrain the head for this model."
        )
    head.load_state_dict(found)
    return head


def _check_episode(settings: AgentrmSettings, episode: EpisodeConfig | None, source: str) -> None:
    if episode is None:
        return
    if list(episode.dims) != settings.dims or episode.reward_token != settings.reward_token:
        raise CheckpointError(
            f"{source}: checkpoint was trained for dims {settings.dims} with reward token "
            f"{settings.reward_token!r}, but the episode config asks for dims {episode.dims} with "
            f"{episode.reward_token!r}; set episode.dims={settings.dims} and "
            f"episode.reward_token={settings.reward_token!r}, or use a checkpoint trained for your dims"
        )


def load(
    path_or_id: str | Path,
    *,
    dtype: str = "auto",
    device: str = "auto",
    attn_implementation: str = "sdpa",
    episode: EpisodeConfig | None = None,
    head: AnyHeadConfig | None = None,
    merge_lora: bool = False,
) -> RewardModel:
    """Load an agentrm checkpoint (or a plain Qwen-VL model) from a dir or hub id.

    `episode` is checked against the checkpoint's dims/reward token (CheckpointError on mismatch); for a plain
    model it chooses them (default: DEFAULT_DIMS and "<Reward>"), and `head` chooses the fresh head's type.
    `merge_lora` folds a LoRA adapter into the base weights (faster inference, no more adapter training)."""
    source = str(path_or_id)
    settings_path = _fetch(source, SETTINGS_FILE)
    if settings_path is None:
        return _load_plain(source, dtype, device, attn_implementation, episode, head)
    settings = _read_settings(settings_path)
    _check_episode(settings, episode, source)
    if head is not None and head != settings.head:
        raise CheckpointError(
            f"{source}: the checkpoint's head is {settings.head}, not the requested {head}; drop the head "
            "argument (it only shapes the fresh head of a plain model)"
        )
    if settings.format == "lora" and _fetch(source, ADAPTER_FILE) is None:
        raise CheckpointError(f"{source}: {SETTINGS_FILE} says format=lora but there is no {ADAPTER_FILE}")
    model: Any
    if settings.format == "lora":
        model, _ = load_model_and_processor(settings.base_model, dtype, device, attn_implementation)
        processor = load_processor(source)
    else:
        model, processor = load_model_and_processor(source, dtype, device, attn_implementation)
    tokenizer = processor.tokenizer
    if settings.reward_token not in tokenizer.get_vocab():
        raise CheckpointError(
            f"{source}: the saved tokenizer lacks the reward token {settings.reward_token!r} named in "
            f"{SETTINGS_FILE}; save the tokenizer after ensure_reward_token (save_checkpoint does)"
        )
    reward_id = ensure_reward_token(model, tokenizer, settings.reward_token)
    rows = settings.embedding_rows
    if rows is not None and model.get_input_embeddings().weight.shape[0] != rows:
        model.resize_token_embeddings(rows, mean_resizing=False)  # the shape the adapter was trained on
    if settings.format == "lora":
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, source)
        if merge_lora:
            model = model.merge_and_unload()
        model.eval()
    reward_head = _load_head(_fetch(source, HEAD_FILE), settings, hidden_size(unwrap(model)), source)
    reward_head.to(next(model.parameters()).device)
    return RewardModel(model, processor, reward_head, settings, reward_id, source)


def _load_plain(
    source: str,
    dtype: str,
    device: str,
    attn_implementation: str,
    episode: EpisodeConfig | None,
    head: AnyHeadConfig | None,
) -> RewardModel:
    given = episode
    episode = episode or EpisodeConfig(dims=list(DEFAULT_DIMS))
    head_cfg = head or HeadConfig(num_outputs=len(episode.dims))
    if head_cfg.num_outputs != len(episode.dims):
        raise CheckpointError(f"head.num_outputs={head_cfg.num_outputs} != len(dims)={len(episode.dims)}")
    log.warning(
        "%s has no %s: loading it as a plain Qwen-VL model with %r added and a FRESH, UNTRAINED %s head over "
        "dims %s; its scores are meaningless until trained",
        source,
        SETTINGS_FILE,
        episode.reward_token,
        head_cfg.type,
        episode.dims,
    )
    model, processor = load_model_and_processor(source, dtype, device, attn_implementation)
    reward_id = ensure_reward_token(model, processor.tokenizer, episode.reward_token)
    settings = AgentrmSettings.for_episode(episode, base_model=source, head=head_cfg)
    if given is None:
        settings = settings.model_copy(update={"episode": None})  # record only what the caller chose
    reward_head = build_head(head_cfg, hidden_size(model)).to(next(model.parameters()).device)
    return RewardModel(model, processor, reward_head, settings, reward_id, source)
