"""Configs of the training stages (cold start, rejection-sampling SFT, rejection sampling): pydantic, validated on
load, no torch import, so `agentrm train --help` and config errors stay fast.

    cfg = load_config(TrainConfig, "configs/cold_start.yaml", ["training.max_steps=2"])

`TrainConfig.training` holds the usual `transformers.TrainingArguments` knobs; anything else TrainingArguments
accepts (fsdp, fsdp_config, deepspeed, report_to, ...) goes verbatim into `training.extra`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from agentrm.config import ScoreConfig, StrictModel

LLM_LINEARS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class ModelSection(StrictModel):
    path: str = Field(
        "", description="Base Qwen-VL (hub id or dir), or an agentrm checkpoint to continue from (its head, "
        "reward token and LoRA adapter are reused)."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype. The head and the losses always run in float32."
    )
    attn_implementation: str = Field("sdpa", description="Passed to from_pretrained (sdpa, flash_attention_2, eager).")
    freeze_vision: bool = Field(True, description="Keep the vision tower (and its merger) frozen.")


class LoraSection(StrictModel):
    enabled: bool = Field(True, description="LoRA via peft; false = full fine-tuning of the language model.")
    r: int = Field(64, ge=1)
    alpha: int = Field(128, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(
        default_factory=lambda: list(LLM_LINEARS), description="Linear module names that get LoRA adapters."
    )
    language_model_only: bool = Field(
        True,
        description="Match target_modules only inside the language model (Qwen2.5-VL's vision MLP also has "
        "gate/up/down_proj).",
    )


class HeadSection(StrictModel):
    type: Literal["linear", "mlp", "attn_pool", "attn_query"] = Field(
        "linear",
        description="linear/mlp on the state at <Reward> (DeScore, VideoAlign); attn_pool = learnable-query "
        "attention pooling (LightRFT); attn_query = attention-query pooling over several layers (SoliReward).",
    )
    mlp_hidden: int = Field(256, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    num_heads: int = Field(4, ge=1, description="attn_pool/attn_query: attention heads of the pooling.")
    layers: list[int] = Field(default_factory=lambda: [-1], description="attn_query: hidden-state layers to pool.")


class LossSection(StrictModel):
    lm_weight: float = Field(1.0, ge=0.0, description="Weight of the next-token loss on model-written tokens.")
    head_weight: float = Field(1.0, ge=0.0, description="λ: weight of the head loss.")
    pairwise: Literal["bt", "btt", "margin_bt", "ce"] = Field(
        "btt", description="Pairwise head loss (see agentrm.losses): bt, btt (Rao-Kupper ties), margin_bt, ce."
    )
    ties: Literal["keep", "drop"] = Field("keep", description="keep ties in the head loss; drop = DeScore.")
    btt_k: float = Field(5.0, gt=1.0, description="btt: Rao-Kupper parameter k (VideoAlign uses 5).")
    margin: float = Field(3.0, ge=0.0, description="margin_bt: margin m (SoliReward uses 3).")
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5, description="bt/margin_bt: label smoothing ε.")
    ce_init_scale: float = Field(1.0 / 0.07, gt=0.0, description="ce: initial logit scale (CLIP: 1/0.07).")
    ce_max_scale: float = Field(100.0, gt=0.0, description="ce: the learnable scale is clamped here.")
    ce_learn_scale: bool = Field(True, description="ce: learn the logit scale (LightRFT found it matters).")
    pointwise: Literal["bce", "mse", "bt"] = Field(
        "bce",
        description="Pointwise data: bce/mse on the absolute label scaled to [0, 1] by episode.score_range; bt = "
        "pair traces of the same prompt and use the pairwise loss on their label order.",
    )

    @model_validator(mode="after")
    def _scale(self) -> LossSection:
        if self.ce_max_scale < self.ce_init_scale:
            raise ValueError("loss.ce_max_scale must be >= loss.ce_init_scale")
        if self.lm_weight == 0 and self.head_weight == 0:
            raise ValueError("loss.lm_weight and loss.head_weight are both 0: nothing to train")
        return self


class DataSection(StrictModel):
    train: list[str] = Field(default_factory=list, description="Trace JSONL files (agentrm Trace format).")
    dev: list[str] = Field(default_factory=list, description="Dev trace files (head accuracy); optional.")
    dev_fraction: float = Field(
        0.0, ge=0.0, lt=1.0, description="Without dev files: hold out this fraction of items (by hashed id)."
    )
    labels: str | None = Field(
        None, description="Optional items file (CSV/JSONL); its labels replace the traces' labels by sample id."
    )
    video_root: str | None = Field(None, description="Resolve relative video paths in traces against this dir.")
    mode: Literal["per_turn", "trajectory"] = Field(
        "per_turn",
        description="per_turn: one example per model turn; trajectory: one example per trace, all turns "
        "labelled, used only where it is token-identical to the per-turn examples (no eviction).",
    )
    only_answered: bool = Field(True, description="Train only on traces that ended with a valid answer.")
    cot_drop_prob: float = Field(
        0.5, ge=0.0, le=1.0, description="Probability that the head reads a copy of the final turn with its "
        "<think> content removed (DeScore uses 0.5)."
    )
    max_length: int | None = Field(None, ge=16, description="Skip examples longer than this many tokens.")
    prompt_dir: str | None = Field(None, description="Custom prompt templates (must match inference).")
    end_of_turn_token: str = Field("<|im_end|>", description="Token that ends an assistant turn (trained).")
    seed: int = Field(0, description="Seed of the CoT-dropping draws and the dev split.")

    @model_validator(mode="after")
    def _some_data(self) -> DataSection:
        if not self.train:
            raise ValueError("data.train is empty; give trace JSONL file(s), e.g. data.train=[traces.jsonl]")
        return self


class TrainingSection(StrictModel):
    output_dir: str = Field("runs/cold_start", description="Checkpoints (checkpoint-N/), logs and curves.png.")
    max_steps: int = Field(-1, description="Optimizer steps; -1 = num_train_epochs.")
    num_train_epochs: float = Field(1.0, gt=0.0)
    learning_rate: float = Field(2e-5, gt=0.0)
    head_learning_rate: float | None = Field(None, gt=0.0, description="LR of the head (+ logit scale).")
    weight_decay: float = Field(0.0, ge=0.0)
    per_device_train_batch_size: int = Field(1, ge=1, description="Examples (units) per device per step.")
    per_device_eval_batch_size: int = Field(1, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    warmup_steps: float = Field(0.0, ge=0.0, description="Warm-up steps (a float < 1 is a fraction).")
    lr_scheduler_type: str = Field("cosine")
    max_grad_norm: float = Field(1.0, ge=0.0)
    logging_steps: int = Field(10, ge=1)
    save_steps: int = Field(500, ge=1)
    save_total_limit: int | None = Field(2, ge=1)
    eval_steps: int | None = Field(None, ge=1, description="Evaluate on dev every N steps (default: at saves).")
    seed: int = 42
    bf16: bool = False
    gradient_checkpointing: bool = False
    dataloader_num_workers: int = Field(0, ge=0)
    use_cpu: bool = Field(False, description="Train on CPU even when a GPU is visible.")
    disable_tqdm: bool = False
    resume_from_checkpoint: str | bool | None = Field(
        None, description="A checkpoint-N dir, or true for the last one in output_dir."
    )
    plot: bool = Field(True, description="Write curves.png (loss parts, head accuracy, lr) at the end.")
    extra: dict[str, Any] = Field(
        default_factory=dict, description="More TrainingArguments, verbatim (fsdp, fsdp_config, deepspeed, ...)."
    )


class TrainConfig(StrictModel):
    """`agentrm train cold-start` and `agentrm train sft`: one recipe, two configs."""

    model: ModelSection = Field(default_factory=ModelSection)
    lora: LoraSection = Field(default_factory=LoraSection)
    head: HeadSection = Field(default_factory=HeadSection)
    loss: LossSection = Field(default_factory=LossSection)
    data: DataSection
    training: TrainingSection = Field(default_factory=TrainingSection)

    @model_validator(mode="after")
    def _model(self) -> TrainConfig:
        if not self.model.path:
            raise ValueError("model.path is empty; set model.path=<Qwen-VL hub id, dir, or agentrm checkpoint>")
        return self


class AcceptSection(StrictModel):
    require_head: bool = Field(
        False, description="Also require the head's preference (video 1 vs 2) to agree with every non-tie label."
    )
    head_tie_margin: float | None = Field(
        None, ge=0.0, description="With require_head: a tie label needs |head diff| <= this (None: ties unchecked)."
    )
    allow_format_errors: bool = Field(
        False, description="Keep traces that had a parse error earlier and recovered (default: any error rejects)."
    )
    pointwise_tolerance: float = Field(0.0, ge=0.0, description="Pointwise: |verdict - label| allowed.")


class RSSampleConfig(StrictModel):
    """`agentrm train rs-sample`: K episodes per labelled item, keep the fully correct ones."""

    score: ScoreConfig = Field(default_factory=ScoreConfig, description="Engine, episode and concurrency.")
    k: int = Field(4, ge=1, description="Episodes sampled per item.")
    accept: AcceptSection = Field(default_factory=AcceptSection)

    @model_validator(mode="after")
    def _sampled(self) -> RSSampleConfig:
        if self.k > 1 and self.score.engine.sampling.temperature == 0 and self.score.engine.kind != "scripted":
            raise ValueError(
                f"k={self.k} samples at temperature 0 are identical; set score.engine.sampling.temperature "
                "(e.g. 0.7) or k=1"
            )
        if self.accept.require_head and self.score.episode.mode == "pointwise":
            raise ValueError("accept.require_head compares two videos; it needs pairwise items")
        return self
