"""verl's config, built from agentrm's validated `GRPOConfig` (no 40-line shell scripts).

`build_overrides(cfg, paths)` derives the hydra overrides of verl's `ppo_trainer` config; `compose(...)` composes
them with verl's own config files (from the installed package) and runs verl's validation; `dry_run` does both and
returns the YAML that `agentrm train grpo --dry-run` prints (validation includes the pointwise pair-layout check, see
pairs.py). Composition and validation run on CPU: nothing here needs a GPU, Ray or the model weights.
"""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentrm.errors import ConfigError
from agentrm.train.grpo_config import GRPOConfig
from agentrm.train.verl.pairs import check_pair_layout, parameter_sync_step

AGENT_LOOP_NAME = "agentrm"


@dataclass(frozen=True)
class RunPaths:
    """Files the launcher writes before verl starts (all under cfg.output_dir/verl)."""

    train_parquet: Path
    val_parquet: Path | None
    model_dir: Path
    snapshot: Path  # the GRPOConfig as JSON, read by the agent loop and the reward function
    agent_loops: Path  # agent_loop_config_path

    @classmethod
    def under(cls, out: str | Path, has_val: bool) -> RunPaths:
        root = Path(out) / "verl"
        return cls(root / "train.parquet", root / "val.parquet" if has_val else None, root / "model",
                   root / "agentrm_grpo.json", root / "agent_loops.yaml")


def _v(value: Any) -> str:
    """A hydra override value: JSON-like, strings quoted when hydra would otherwise parse them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_v(v) for v in value) + "]"
    text = str(value)
    return json.dumps(text) if any(c in text for c in " ,=[]{}()'\"$:*") else text


def build_overrides(cfg: GRPOConfig, paths: RunPaths) -> list[str]:
    """verl `ppo_trainer` overrides for `cfg` (user's verl_overrides appended last)."""
    from agentrm.train.verl import reward_fn

    a, c = cfg.algo, cfg.cluster
    window_frames = cfg.episode.window.max_frames
    images_per_prompt = window_frames if window_frames is not None else 64
    val = [str(paths.val_parquet)] if paths.val_parquet else [str(paths.train_parquet)]
    o: dict[str, Any] = {
        "algorithm.adv_estimator": "grpo",
        "algorithm.use_kl_in_reward": False,
        "trainer.use_v1": True,
        "trainer.v1.trainer_mode": "agentrm_sync",  # agentrm.train.verl.trainer.AgentrmTrainer
        "+agentrm.pointwise_pairs": cfg.episode.mode == "pointwise" and cfg.aux.coef > 0,
        "+agentrm.dims": len(cfg.episode.dims),
        "data.train_files": [str(paths.train_parquet)],
        "data.val_files": val,
        "data.train_batch_size": a.train_batch_size,
        "data.max_prompt_length": cfg.prompt_length,
        "data.max_response_length": cfg.response_length,
        "data.filter_overlong_prompts": False,
        "data.return_raw_chat": True,
        "data.shuffle": cfg.data.shuffle and not cfg.data.split_pairs,  # split pairs: keep partners adjacent
        "data.dataloader_num_workers": 0,
        "actor_rollout_ref.model.path": str(paths.model_dir),
        "+actor_rollout_ref.model.model_type": "agentrm_reward_lm",
        "actor_rollout_ref.model.external_lib": "agentrm.train.verl.plugin",
        "actor_rollout_ref.model.use_remove_padding": cfg.model.remove_padding,
        "actor_rollout_ref.model.enable_gradient_checkpointing": cfg.model.gradient_checkpointing,
        "actor_rollout_ref.model.lora_rank": cfg.model.lora_rank,
        "actor_rollout_ref.model.lora_alpha": cfg.model.lora_alpha,
        "+actor_rollout_ref.model.override_config.attn_implementation": cfg.model.attn_implementation,
        "actor_rollout_ref.actor.strategy": c.strategy,
        "actor_rollout_ref.actor.optim.lr": a.lr,
        "actor_rollout_ref.actor.ppo_mini_batch_size": a.ppo_mini_batch_size,
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": a.micro_batch_size_per_gpu,
        "actor_rollout_ref.actor.use_kl_loss": a.kl_coef > 0,
        "actor_rollout_ref.actor.kl_loss_coef": a.kl_coef,
        "actor_rollout_ref.actor.kl_loss_type": "low_var_kl",
        "actor_rollout_ref.actor.entropy_coeff": a.entropy_coeff,
        "actor_rollout_ref.actor.loss_agg_mode": a.loss_agg_mode,
        "actor_rollout_ref.actor.fsdp_config.param_offload": c.param_offload,
        "actor_rollout_ref.actor.fsdp_config.optimizer_offload": c.optimizer_offload,
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu": a.micro_batch_size_per_gpu,
        "actor_rollout_ref.rollout.name": c.rollout,
        "actor_rollout_ref.rollout.mode": "async",
        "actor_rollout_ref.rollout.n": a.n,
        "actor_rollout_ref.rollout.temperature": a.temperature,
        "actor_rollout_ref.rollout.top_p": a.top_p,
        "actor_rollout_ref.rollout.val_kwargs.temperature": a.val_temperature,
        "actor_rollout_ref.rollout.val_kwargs.do_sample": a.val_temperature > 0,
        "actor_rollout_ref.rollout.prompt_length": cfg.prompt_length,
        "actor_rollout_ref.rollout.response_length": cfg.response_length,
        "actor_rollout_ref.rollout.max_model_len": cfg.prompt_length + cfg.response_length,
        "actor_rollout_ref.rollout.tensor_model_parallel_size": c.rollout_tp,
        "actor_rollout_ref.rollout.gpu_memory_utilization": c.gpu_memory_utilization,
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": a.micro_batch_size_per_gpu,
        "actor_rollout_ref.rollout.calculate_log_probs": True,
        "+actor_rollout_ref.rollout.engine_kwargs.vllm.limit_mm_per_prompt": f"{{image:{images_per_prompt}}}",
        "actor_rollout_ref.rollout.agent.default_agent_loop": AGENT_LOOP_NAME,
        "actor_rollout_ref.rollout.agent.agent_loop_config_path": str(paths.agent_loops),
        "actor_rollout_ref.rollout.agent.num_workers": c.agent_workers,
        "reward.custom_reward_function.path": str(Path(reward_fn.__file__).resolve()),
        "reward.custom_reward_function.name": "compute_score",
        "+reward.custom_reward_function.reward_kwargs.agentrm_config": str(paths.snapshot),
        "trainer.n_gpus_per_node": c.n_gpus_per_node,
        "trainer.nnodes": c.nnodes,
        "trainer.total_epochs": a.total_epochs,
        "trainer.save_freq": cfg.save_freq,
        "trainer.test_freq": cfg.test_freq,
        "trainer.val_before_train": cfg.data.val is not None and cfg.test_freq > 0,
        "trainer.default_local_dir": str(Path(cfg.output_dir) / "checkpoints"),
        "trainer.project_name": cfg.project_name,
        "trainer.experiment_name": cfg.experiment_name,
        "trainer.logger": list(cfg.logger),
    }
    if a.total_training_steps is not None:
        o["trainer.total_training_steps"] = a.total_training_steps
    out = [f"{k}={_v(v)}" if not k.endswith("limit_mm_per_prompt") else f"{k}={v}" for k, v in o.items()]
    return out + list(cfg.verl_overrides)


def verl_config_dir() -> Path:
    import verl.trainer

    return Path(verl.trainer.__file__).parent / "config"


def compose(overrides: list[str]) -> Any:
    """verl's `ppo_trainer` config with `overrides`, composed the way `python -m verl.trainer.main_ppo` does."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(verl_config_dir()), version_base=None):
            return hydra_compose(config_name="ppo_trainer", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(f"verl rejected the generated overrides: {exc}. If it names a key from "
                          "verl_overrides, fix that entry; otherwise this agentrm/verl pairing is unsupported "
                          "(pin verl==0.9.1)") from exc


def validate(config: Any) -> None:
    """verl's own checks (batch divisibility, ...), the dataclass conversions its workers do first, and (pointwise
    pairs) the pair-layout check AgentrmTrainer repeats on the cluster - so a bad layout fails here, not in Ray."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass, validate_config
    from verl.workers.engine import EngineRegistry

    import agentrm.train.verl.plugin  # noqa: F401  (registers the engine, as external_lib does on the workers)

    try:
        with contextlib.redirect_stdout(sys.stderr):  # verl prints its verdict; stdout carries the dry-run YAML
            validate_config(config=config, use_reference_policy=need_reference_policy(config),
                            use_critic=need_critic(config))
        omega_conf_to_dataclass(config.actor_rollout_ref.actor)
        omega_conf_to_dataclass(config.actor_rollout_ref.rollout)
        omega_conf_to_dataclass(config.algorithm)
    except (AssertionError, ValueError, TypeError) as exc:
        raise ConfigError(f"verl's validation failed: {exc}") from exc
    model_type = config.actor_rollout_ref.model.model_type
    if model_type not in EngineRegistry._engines:
        raise ConfigError(f"model_type {model_type!r} is not registered in verl's EngineRegistry")
    check_pair_layout(config, parameter_sync_step(config))


def dry_run(cfg: GRPOConfig, paths: RunPaths) -> str:
    """Compose and validate the full verl config; return it as YAML (nothing is started)."""
    from omegaconf import OmegaConf

    from agentrm.train.verl import check_verl_version

    check_verl_version()
    config = compose(build_overrides(cfg, paths))
    validate(config)
    return str(OmegaConf.to_yaml(config))
