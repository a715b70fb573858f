"""GRPOConfig validation (verl-free) and the verl config built from it: composed and validated by verl on CPU."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from agentrm.config import load_config
from agentrm.errors import ConfigError
from agentrm.train.grpo_config import GRPOConfig

TINY = Path(__file__).resolve().parents[3] / "configs" / "grpo" / "tiny.yaml"
BIG = TINY.parent / "qwen2_5_vl_7b.yaml"
POINTWISE = ["episode.mode=pointwise", "data.split_pairs=true"]  # tiny.yaml's aux.coef > 0: the BT partner join


def test_packaged_configs_validate() -> None:
    for path in (TINY, BIG):
        cfg = load_config(GRPOConfig, path)
        assert cfg.prompt_length == cfg.episode.limits.max_context_tokens


@pytest.mark.parametrize(("override", "message"), [
    ("algo.train_batch_size=3", "multiple of"),
    ("data.split_pairs=true", "episode.mode=pointwise"),
    ("model.lora_rank=8", "aux.coef=0"),
    ("aux.kind=bradley", "aux.kind"),
    ("algo.nn=4", "did you mean 'n'"),
])
def test_config_errors_name_the_fix(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(GRPOConfig, TINY, [override])


def test_split_pairs_need_an_even_train_batch() -> None:
    with pytest.raises(ConfigError, match=r"algo.train_batch_size=3 is odd .* use an even algo.train_batch_size"):
        load_config(GRPOConfig, TINY, [*POINTWISE, "algo.train_batch_size=3", "algo.ppo_mini_batch_size=1"])
    assert load_config(GRPOConfig, TINY, [*POINTWISE, "algo.train_batch_size=4"]).algo.train_batch_size == 4
    odd = load_config(GRPOConfig, TINY, ["algo.train_batch_size=3", "algo.ppo_mini_batch_size=1"])
    assert odd.algo.train_batch_size == 3  # pairwise rows hold both videos: any batch size keeps pairs whole


def test_pair_layout_check_imports_no_ray_or_torch() -> None:
    code = ("import sys, agentrm.train.verl.pairs; "
            "print(sorted(m for m in ('ray', 'torch', 'transfer_queue', 'verl') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.verl
def test_dry_run_composes_and_validates_verl_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from agentrm.cli import train_grpo

    p = argparse.ArgumentParser()
    train_grpo.add_arguments(p)
    args = p.parse_args(["--config", str(BIG), "--dry-run", f"output_dir={tmp_path}", "algo.n=4", "aux.coef=0.01"])
    assert train_grpo.run(args) == 0
    verl_cfg = yaml.safe_load(capsys.readouterr().out)
    arr = verl_cfg["actor_rollout_ref"]
    assert arr["model"]["model_type"] == "agentrm_reward_lm"
    assert arr["model"]["external_lib"] == "agentrm.train.verl.plugin"
    assert arr["rollout"]["n"] == 4 and arr["rollout"]["name"] == "vllm"
    assert arr["rollout"]["prompt_length"] == 8192 and arr["rollout"]["response_length"] == 512
    assert arr["rollout"]["agent"]["default_agent_loop"] == "agentrm"
    assert arr["rollout"]["agent"]["agent_loop_config_path"] == str(tmp_path / "verl" / "agent_loops.yaml")
    assert arr["actor"]["kl_loss_coef"] == 0.01 and arr["actor"]["use_kl_loss"] is True
    assert verl_cfg["algorithm"]["adv_estimator"] == "grpo"
    assert verl_cfg["trainer"]["use_v1"] is True and verl_cfg["trainer"]["v1"]["trainer_mode"] == "agentrm_sync"
    reward = verl_cfg["reward"]["custom_reward_function"]
    assert reward["path"].endswith("reward_fn.py") and reward["name"] == "compute_score"
    assert reward["reward_kwargs"]["agentrm_config"] == str(tmp_path / "verl" / "agentrm_grpo.json")
    assert not (tmp_path / "verl").exists()  # a dry run writes nothing


@pytest.mark.verl
def test_bad_escape_hatch_override_is_a_config_error(tmp_path: Path) -> None:
    from agentrm.train.verl.launch import launch

    cfg = load_config(GRPOConfig, TINY, [f"output_dir={tmp_path}", "verl_overrides=[actor_rollout_ref.nope=1]"])
    with pytest.raises(ConfigError, match="verl rejected"):
        launch(cfg, dry=True)


@pytest.mark.verl
def test_prepare_writes_what_verl_reads(tmp_path: Path, items_jsonl: Path, tiny_qwen2_5_vl_dir: Path) -> None:
    from omegaconf import OmegaConf

    from agentrm.train.verl.launch import absolute, prepare

    cfg = absolute(load_config(GRPOConfig, TINY, [f"output_dir={tmp_path}", f"data.train={items_jsonl}",
                                                  f"model.path={tiny_qwen2_5_vl_dir}"]))
    paths = prepare(cfg)
    assert paths.train_parquet.is_file() and (paths.model_dir / "agentrm.json").is_file()
    assert (paths.model_dir / "agentrm_aux.json").is_file()
    loops = OmegaConf.load(paths.agent_loops)  # what verl's AgentLoopWorker loads
    assert loops[0].name == "agentrm" and loops[0]._target_.endswith("AgentrmAgentLoop")
    assert GRPOConfig.model_validate_json(paths.snapshot.read_text()) == cfg


@pytest.mark.verl
@pytest.mark.parametrize(("extra", "shuffle", "problems"), [
    ([], True, []),  # the default tiny config (pairwise rows: shuffling them is fine)
    (POINTWISE, False, []),  # split pairs: agentrm turns verl's shuffle off itself
    ([*POINTWISE, "aux.coef=0", "verl_overrides=[data.shuffle=true]"], True, []),  # no BT partner join, no check
    ([*POINTWISE, "verl_overrides=[data.shuffle=true]"], None, ["data.shuffle=true"]),
    ([*POINTWISE, "verl_overrides=[data.train_batch_size=3]"], None, ["data.train_batch_size=3 is odd"]),
    ([*POINTWISE, "verl_overrides=[data.shuffle=true,algorithm.rollout_correction.bypass_mode=true,"
      "+trainer.v1.agentrm_sync.parameter_sync_step=2]"], None,
     ["data.shuffle=true", "bypass_mode", "parameter_sync_step=2"]),
])
def test_dry_run_refuses_layouts_that_split_pairs(tmp_path: Path, extra: list[str], shuffle: bool | None,
                                                  problems: list[str]) -> None:
    import yaml

    from agentrm.train.verl.launch import launch

    cfg = load_config(GRPOConfig, TINY, [f"output_dir={tmp_path}", *extra])
    if not problems:
        verl_cfg = yaml.safe_load(launch(cfg, dry=True) or "")
        assert verl_cfg["data"]["shuffle"] is shuffle
        return
    with pytest.raises(ConfigError, match="both videos of a pair in one training batch") as err:
        launch(cfg, dry=True)
    lines = str(err.value).splitlines()[1:]  # one "- problem; fix" line each, as the trainer raises them
    assert len(lines) == len(problems)
    for line, problem in zip(lines, problems, strict=True):
        assert line.startswith("- ") and problem in line
