"""`agentrm train grpo`: prepare the run, compose verl's config from ours, start verl's V1 trainer, export.

    prepare  data -> parquet; model -> verl-ready dir (reward token, head, settings); config snapshot; agent-loop
             registration file                                   (all under <output_dir>/verl)
    compose  verl's ppo_trainer + build_overrides(cfg), validated by verl      (--dry-run stops here and prints it)
    run      verl.trainer.main_ppo.run_ppo with AgentrmTaskRunner (Ray: local, or the cluster RAY_ADDRESS names)
    export   the latest actor checkpoint -> <output_dir>/final (an agentrm checkpoint)
"""

from __future__ import annotations

import logging
from pathlib import Path

from agentrm.train.grpo_config import GRPOConfig
from agentrm.train.verl.config import RunPaths, compose, dry_run, validate

log = logging.getLogger(__name__)


def absolute(cfg: GRPOConfig) -> GRPOConfig:
    """Paths made absolute: Ray workers do not share the launcher's working directory."""
    data = cfg.data.model_copy(update={
        "train": str(Path(cfg.data.train).resolve()),
        "val": str(Path(cfg.data.val).resolve()) if cfg.data.val else None,
        "video_root": str(Path(cfg.data.video_root).resolve()) if cfg.data.video_root else None,
    })
    model_path = Path(cfg.model.path)
    model = cfg.model.model_copy(update={"path": str(model_path.resolve()) if model_path.exists() else cfg.model.path})
    return cfg.model_copy(update={"data": data, "model": model, "output_dir": str(Path(cfg.output_dir).resolve())})


def prepare(cfg: GRPOConfig, reprepare: bool = False) -> RunPaths:
    """Write everything verl reads (idempotent: an existing prepared model dir is reused unless `reprepare`)."""
    from agentrm.checkpoint import SETTINGS_FILE
    from agentrm.train.grpo_data import convert
    from agentrm.train.grpo_prepare import prepare_model_dir
    from agentrm.train.verl.agent_loop import agent_loop_yaml

    paths = RunPaths.under(cfg.output_dir, cfg.data.val is not None)
    paths.snapshot.parent.mkdir(parents=True, exist_ok=True)
    d = cfg.data
    _, n = convert(d.train, paths.train_parquet, d.format, d.video_root, d.split_pairs, d.shuffle, d.max_items)
    log.info("train rows: %d -> %s", n, paths.train_parquet)
    if d.val and paths.val_parquet:
        convert(d.val, paths.val_parquet, d.format, d.video_root, d.split_pairs, False, d.max_items)
    if reprepare or not (paths.model_dir / SETTINGS_FILE).is_file():
        prepare_model_dir(cfg.model.path, paths.model_dir, cfg.episode, cfg.aux, cfg.model.head)
    paths.snapshot.write_text(cfg.model_dump_json(indent=2) + "\n", encoding="utf-8")
    paths.agent_loops.write_text(agent_loop_yaml(paths.snapshot), encoding="utf-8")
    return paths


def launch(cfg: GRPOConfig, *, dry: bool = False, reprepare: bool = False, export: bool = True) -> str | None:
    """Dry run: the composed, validated verl config as YAML (nothing written). Otherwise train, then export."""
    cfg = absolute(cfg)
    if dry:
        return dry_run(cfg, RunPaths.under(cfg.output_dir, cfg.data.val is not None))
    from agentrm.train.verl import check_verl_version

    check_verl_version()
    paths = prepare(cfg, reprepare)
    from agentrm.train.verl.config import build_overrides

    config = compose(build_overrides(cfg, paths))
    validate(config)
    from verl.trainer.main_ppo import run_ppo
    from verl.utils.device import auto_set_device

    from agentrm.train.verl.trainer import AgentrmTaskRunner

    auto_set_device(config)
    run_ppo(config, task_runner_class=AgentrmTaskRunner)
    if export:
        return str(export_final(cfg))
    return None


def export_final(cfg: GRPOConfig) -> Path:
    from agentrm.train.verl.export import export_checkpoint, latest_actor_dir

    out = Path(cfg.output_dir)
    return export_checkpoint(latest_actor_dir(out / "checkpoints"), out / "verl" / "model", out / "final")
