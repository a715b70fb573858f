"""Stage 1 (cold start) and stage 2 (SFT on rejection-sampled traces): one recipe, read top to bottom.

    agentrm train cold-start --config configs/cold_start.yaml [key=value ...]
    agentrm train sft --config configs/rs_sft.yaml
    torchrun --nproc_per_node 8 -m agentrm train cold-start --config configs/cold_start.yaml
    accelerate launch --config_file configs/accelerate/fsdp.yaml -m agentrm train cold-start --config ...

Loss = next-token loss on the model-written tokens of each trace + λ · head loss on the rewards read at the
`<Reward>` tokens of the answer turn (BT / BTT / margin BT / CE with a learnable scale; ties kept; BCE or MSE on
absolute labels for pointwise data). With probability `data.cot_drop_prob` the head reads a copy of the answer turn
without its reasoning (DeScore's CoT dropping). Training contexts are rendered by `agentrm.render.build_context`,
the function the loop uses, so what the model learns from is what it will see.

What this simplifies vs the papers: DeScore puts the CoT in the prompt and appends `<Reward>` by code; here the
model writes `<think>`, the answer and the `<Reward>` tokens itself, one layout for SFT, RL and inference. The LM
loss is a per-batch token mean (not normalised across gradient-accumulation steps).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from transformers import TrainingArguments, set_seed

from agentrm.errors import ConfigError, DataError
from agentrm.models import hidden_size, unwrap
from agentrm.prompting import Prompts, default_prompts
from agentrm.trace import Trace
from agentrm.train.data import TurnEncoder, episode_config
from agentrm.train.dataset import Collator, TraceDataset, plan_units, read_trace_files, split_dev
from agentrm.train.model import (
    RewardTrainModel,
    build_head,
    head_config,
    load_for_training,
    load_head_weights,
    read_settings,
    set_trainable,
)
from agentrm.train.trainer import EpochCallback, JsonlLogger, RewardTrainer, plot_curves
from agentrm.train_config import TrainConfig

log = logging.getLogger(__name__)


def load_traces(cfg: TrainConfig) -> tuple[list[Trace], list[Trace]]:
    """(train, dev) traces: labels optionally replaced from an items file; unanswered traces dropped."""
    labels = None
    if cfg.data.labels:
        from agentrm.data.loaders import load_items

        labels = {i.id: dict(i.labels) for i in load_items(cfg.data.labels, check_videos=False).items}
    train = read_trace_files(cfg.data.train, labels)
    dev = read_trace_files(cfg.data.dev, labels) if cfg.data.dev else []
    if not cfg.data.dev and cfg.data.dev_fraction > 0:
        train, dev = split_dev(train, cfg.data.dev_fraction, cfg.data.seed)
    if cfg.data.only_answered:
        kept = [t for t in train if t.termination == "answer"]
        if len(kept) < len(train):
            log.info("dropped %d of %d train traces that did not end with an answer", len(train) - len(kept),
                     len(train))
        train, dev = kept, [t for t in dev if t.termination == "answer"]
    if not train:
        raise DataError(f"no usable training traces in {cfg.data.train}")
    return train, dev


def check_consistent(traces: list[Trace]) -> tuple[list[str], str]:
    """All traces must share dims and reward token (the head's outputs); returns them."""
    first = episode_config(traces[0])
    for t in traces[1:]:
        ep = episode_config(t)
        if ep.dims != first.dims or ep.reward_token != first.reward_token:
            raise DataError(f"trace {t.id!r} has dims {ep.dims} / reward token {ep.reward_token!r} but trace "
                            f"{traces[0].id!r} has {first.dims} / {first.reward_token!r}; train on one setting")
    return list(first.dims), first.reward_token


def model_device(cfg: TrainConfig) -> str:
    """Where to load the weights: the local GPU for plain/DDP runs; CPU when FSDP/DeepSpeed shard them."""
    extra = cfg.training.extra
    if cfg.training.use_cpu or not torch.cuda.is_available() or extra.get("fsdp") or extra.get("deepspeed"):
        return "cpu"
    return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"


def training_arguments(cfg: TrainConfig, has_dev: bool) -> TrainingArguments:
    t = cfg.training
    kwargs: dict[str, Any] = dict(
        output_dir=t.output_dir, max_steps=t.max_steps, num_train_epochs=t.num_train_epochs,
        learning_rate=t.learning_rate, weight_decay=t.weight_decay,
        per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=t.per_device_eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps, warmup_steps=t.warmup_steps,
        lr_scheduler_type=t.lr_scheduler_type, max_grad_norm=t.max_grad_norm, logging_steps=t.logging_steps,
        logging_first_step=True, save_steps=t.save_steps, save_total_limit=t.save_total_limit,
        eval_strategy="steps" if has_dev else "no", eval_steps=t.eval_steps or t.save_steps, seed=t.seed,
        bf16=t.bf16, gradient_checkpointing=t.gradient_checkpointing,
        dataloader_num_workers=t.dataloader_num_workers, use_cpu=t.use_cpu, disable_tqdm=t.disable_tqdm,
        remove_unused_columns=False, label_names=["labels"], report_to="none",
        dataloader_pin_memory=torch.cuda.is_available() and not t.use_cpu,
        # every trainable parameter gets a gradient each step (empty batches still touch the head), so DDP need not
        # search for unused ones (that search also breaks with gradient checkpointing)
        ddp_find_unused_parameters=False,
    )
    kwargs.update(t.extra)
    try:
        return TrainingArguments(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"training: TrainingArguments rejected the settings ({exc}); check training.extra") from exc


def main(cfg: TrainConfig) -> Path:
    # 1. data: traces, the dims the head scores, the episode settings they were recorded with
    train_traces, dev_traces = load_traces(cfg)
    dims, reward_token = check_consistent(train_traces + dev_traces)
    episode = episode_config(train_traces[0])
    set_seed(cfg.training.seed)

    # 2. model: backbone (+ LoRA), head, loss module
    model, processor, reward_id, ckpt = load_for_training(
        cfg.model.path, cfg.model.dtype, cfg.model.attn_implementation, reward_token, model_device(cfg))
    model = set_trainable(model, cfg.lora, reward_id, cfg.model.freeze_vision)
    if ckpt is not None:  # continue from an agentrm checkpoint: its head and dims
        _, head_cfg = read_settings(Path(cfg.model.path))
        if ckpt["dims"] != dims:
            raise ConfigError(f"{cfg.model.path} scores dims {ckpt['dims']}, the traces have {dims}")
    else:
        head_cfg = head_config(cfg.head, len(dims))
    head = build_head(head_cfg, hidden_size(unwrap(model)))
    if ckpt is not None:
        load_head_weights(head, Path(cfg.model.path))
    reward_model = RewardTrainModel(model, head, cfg.loss)

    # 3. examples: contexts rendered by the loop's own code, tokenised like the inference engine
    prompts = Prompts(cfg.data.prompt_dir) if cfg.data.prompt_dir else default_prompts()
    encoder = TurnEncoder(processor, reward_token, cfg.data.end_of_turn_token)

    def dataset(traces: list[Trace], train: bool) -> TraceDataset:
        units, stats = plan_units(traces, encoder, prompts, trajectory=cfg.data.mode == "trajectory",
                                  pointwise_bt=cfg.loss.pointwise == "bt", max_length=cfg.data.max_length,
                                  lm_only_units=cfg.loss.lm_weight > 0 or not train)
        log.info("%s: %d traces -> units %s; trajectory rows %d (fell back to per-turn: %d); too long: %d",
                 "train" if train else "dev", stats.traces, dict(stats.units or {}), stats.trajectory,
                 stats.trajectory_fallback, stats.rows_too_long)
        return TraceDataset(traces, units, encoder, prompts, dims, cot_drop_prob=cfg.data.cot_drop_prob if train
                            else 0.0, seed=cfg.data.seed, video_root=cfg.data.video_root, video_config=episode.video)

    train_ds = dataset(train_traces, True)
    dev_ds = dataset(dev_traces, False) if dev_traces else None
    pad_id = processor.tokenizer.pad_token_id
    collator = Collator(encoder.eot_id if pad_id is None else int(pad_id), len(dims))

    # 4. train: Trainer with agentrm's loss, dev head accuracy and checkpoint format
    # a continued adapter keeps its base; anything else (plain model, full checkpoint) is the base of what we save
    base_model = ckpt["base_model"] if ckpt and ckpt.get("format") == "lora" else cfg.model.path
    settings = {"base_model": base_model, "dims": dims,
                "reward_token": reward_token, "episode": episode.model_dump(mode="json")}
    trainer = RewardTrainer(
        model=reward_model, args=training_arguments(cfg, dev_ds is not None), train_dataset=train_ds,
        eval_dataset=dev_ds, data_collator=collator, callbacks=[JsonlLogger(), EpochCallback(train_ds)],
        processor=processor,
        settings=settings, dims=dims, head_learning_rate=cfg.training.head_learning_rate,
    )
    trainer.train(resume_from_checkpoint=cfg.training.resume_from_checkpoint)
    final = Path(cfg.training.output_dir) / "final"
    trainer.save_model(str(final))
    if dev_ds is not None and trainer.state.global_step % int(trainer.args.eval_steps or 1):
        trainer.evaluate()  # the last step was not an evaluation step
    if cfg.training.plot and trainer.is_world_process_zero():
        plot_curves(trainer.state.log_history, Path(cfg.training.output_dir) / "curves.png")
    return final
