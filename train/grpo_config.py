"""The GRPO recipe's config: one validated pydantic model; verl's hydra overrides are *derived* from it.

Users edit `configs/grpo/*.yaml` (+ `a.b=value` overrides); `agentrm.train.verl.config.build_overrides` turns the
validated model into verl's ~40 overrides, so a typo fails here with the allowed keys instead of deep inside a Ray
actor. `verl_overrides` is the escape hatch for verl settings this model does not cover (passed last, verbatim).

Lengths are not set twice: verl's prompt/response lengths per row come from the episode limits (one row per turn:
the prompt is the turn's windowed context, the response is that turn's tokens).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from agentrm.config import EpisodeConfig, StrictModel
from agentrm.head import HeadConfig
from agentrm.train.rewards import RewardConfig


class GRPOData(StrictModel):
    train: str = Field(description="Labelled items: agentrm JSONL or a benchmark file (see agentrm.data.loaders).")
    val: str | None = Field(None, description="Validation items (same formats); none = no validation.")
    format: str = Field("auto", description="Loader format for train/val files (auto-detected by default).")
    video_root: str | None = Field(None, description="Relative video paths resolve here (default: file's dir).")
    max_items: int | None = Field(None, ge=1, description="Use only the first N items (smoke runs).")
    split_pairs: bool = Field(
        False, description="Pairwise items become two pointwise rows sharing a pair id (pointwise training)."
    )
    shuffle: bool = Field(True, description="Shuffle train rows (pairs stay adjacent when split_pairs is on).")


class GRPOModel(StrictModel):
    path: str = Field(description="agentrm checkpoint (cold start output) or a plain Qwen-VL dir / hub id.")
    head: HeadConfig | None = Field(None, description="Head of a plain model (ignored for agentrm checkpoints).")
    lora_rank: int = Field(0, ge=0, description="0 = full fine-tuning; >0 = verl's FSDP LoRA of that rank.")
    lora_alpha: int = Field(16, ge=1)
    gradient_checkpointing: bool = True
    attn_implementation: Literal["flash_attention_2", "sdpa", "eager"] = Field(
        "flash_attention_2", description="GPU nodes: flash_attention_2; CPU dry runs: sdpa."
    )
    remove_padding: bool = Field(
        True, description="verl's packed sequences (needs flash-attn); false = padded batches (CPU tests)."
    )


class AuxLossConfig(StrictModel):
    """The auxiliary Bradley-Terry loss on the reward head, added to the policy loss inside verl's actor."""

    coef: float = Field(5e-3, ge=0, description="lambda in loss = pg + lambda * BT (DeScore used 5e-3); 0 = off.")
    kind: Literal["bt", "btt"] = Field("bt", description="bt = Bradley-Terry; btt = Rao-Kupper with ties.")
    ties: Literal["keep", "drop"] = Field("drop", description="drop = DeScore (ties ignored); keep = ties trained.")
    btt_k: float = Field(5.0, gt=1, description="Rao-Kupper tie parameter k (VideoAlign: 5).")


class GRPOAlgo(StrictModel):
    n: int = Field(8, ge=2, description="Rollouts per item (the GRPO group).")
    lr: float = Field(1e-6, gt=0)
    kl_coef: float = Field(0.01, ge=0, description="KL loss to the reference policy; 0 = no reference model.")
    entropy_coeff: float = Field(0.0, ge=0)
    train_batch_size: int = Field(32, ge=1, description="Items per step (x n rollouts, x turns rows).")
    ppo_mini_batch_size: int = Field(16, ge=1, description="Items per optimizer step (verl multiplies by n).")
    micro_batch_size_per_gpu: int = Field(1, ge=1, description="Rows per forward pass.")
    total_epochs: int = Field(1, ge=1)
    total_training_steps: int | None = Field(None, ge=1, description="Stop after N steps (overrides epochs).")
    temperature: float = Field(1.0, gt=0, description="Rollout sampling temperature.")
    top_p: float = Field(1.0, gt=0, le=1)
    val_temperature: float = Field(0.0, ge=0, description="Validation: 0 = greedy.")
    loss_agg_mode: Literal["token-mean", "seq-mean-token-sum", "seq-mean-token-mean"] = "token-mean"

    @model_validator(mode="after")
    def _batches(self) -> GRPOAlgo:
        if self.train_batch_size % self.ppo_mini_batch_size:
            raise ValueError(
                f"algo.train_batch_size={self.train_batch_size} must be a multiple of "
                f"algo.ppo_mini_batch_size={self.ppo_mini_batch_size}"
            )
        return self


class GRPOCluster(StrictModel):
    nnodes: int = Field(1, ge=1, description="Nodes of the Ray cluster (multi-node: start Ray first, see docs).")
    n_gpus_per_node: int = Field(8, ge=1)
    strategy: Literal["fsdp", "fsdp2"] = "fsdp2"
    rollout: Literal["vllm", "sglang"] = "vllm"
    rollout_tp: int = Field(1, ge=1, description="Tensor parallel size of each vLLM replica.")
    gpu_memory_utilization: float = Field(0.5, gt=0, le=1)
    agent_workers: int = Field(8, ge=1, description="Agent-loop worker actors (each runs many episodes).")
    param_offload: bool = False
    optimizer_offload: bool = False


class GRPOConfig(StrictModel):
    """`agentrm train grpo --config configs/grpo/<name>.yaml [a.b=value ...]`."""

    episode: EpisodeConfig = Field(default_factory=EpisodeConfig)
    data: GRPOData
    model: GRPOModel
    algo: GRPOAlgo = Field(default_factory=GRPOAlgo)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    aux: AuxLossConfig = Field(default_factory=AuxLossConfig)
    cluster: GRPOCluster = Field(default_factory=GRPOCluster)
    output_dir: str = Field("out/grpo", description="verl checkpoints, rollout traces, the exported checkpoint.")
    project_name: str = "agentrm"
    experiment_name: str = "grpo"
    save_freq: int = Field(50, ge=1, description="Save a verl checkpoint every N steps (and at the last step).")
    test_freq: int = Field(-1, description="Validate every N steps (-1 = never).")
    logger: list[str] = Field(default_factory=lambda: ["console"], description="verl loggers: console, wandb, ...")
    trace_rollouts: bool = Field(True, description="Write every rollout as an agentrm Trace (agentrm view).")
    verl_overrides: list[str] = Field(
        default_factory=list, description="Extra verl hydra overrides, applied last (escape hatch)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> GRPOConfig:
        mode = "pointwise" if self.data.split_pairs else self.episode.mode
        if mode != self.episode.mode:
            raise ValueError("data.split_pairs makes pointwise rows: set episode.mode=pointwise as well")
        if self.data.split_pairs and self.algo.train_batch_size % 2:
            raise ValueError(
                f"algo.train_batch_size={self.algo.train_batch_size} is odd but data.split_pairs=true makes each "
                "pair two adjacent rows, so a pair would straddle two steps; use an even algo.train_batch_size"
            )
        if self.model.head is not None and self.model.head.num_outputs != len(self.episode.dims):
            raise ValueError(
                f"model.head.num_outputs={self.model.head.num_outputs} != len(episode.dims)={len(self.episode.dims)}"
            )
        if self.aux.coef > 0 and self.model.lora_rank > 0:
            raise ValueError(
                "the auxiliary BT loss trains the head inside verl's actor, which needs full fine-tuning of the "
                "wrapped module; set model.lora_rank=0, or aux.coef=0 for LoRA policy-only runs"
            )
        return self

    @property
    def prompt_length(self) -> int:
        return self.episode.limits.max_context_tokens

    @property
    def response_length(self) -> int:
        return self.episode.limits.max_new_tokens
