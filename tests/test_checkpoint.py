"""The agentrm checkpoint: round trips (full and LoRA), plain Qwen-VL dirs, and loud failures."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import agentrm
from agentrm.checkpoint import (
    HEAD_FILE,
    SETTINGS_FILE,
    AgentrmSettings,
    NormStats,
    RewardModel,
    save_checkpoint,
)
from agentrm.config import EpisodeConfig
from agentrm.errors import CheckpointError
from agentrm.head import HeadConfig, RewardHead

DIMS3 = ["VQ", "MQ", "OA"]


def _inputs(rm: RewardModel, answer: str = "fine <Reward> and <Reward>") -> dict[str, Any]:
    """One prompt with an image and a completion holding reward tokens, through the model's processor."""
    factor = rm.factor
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (2 * factor, factor, 3), dtype=np.uint8))
    chat = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "rate it"}]}]
    text = rm.processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False) + answer
    encoded = rm.processor(text=[text], images=[image], return_tensors="np")  # "pt" warns under numpy 2
    return {k: torch.from_numpy(np.asarray(v)) for k, v in encoded.items()}


def _rewards(rm: RewardModel, inputs: dict[str, Any]) -> torch.Tensor:
    with torch.no_grad():
        return rm.rewards(inputs)


def _trained(rm: RewardModel) -> RewardModel:
    """Pretend training happened: move the head away from its deterministic init."""
    with torch.no_grad():
        for p in rm.head.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(7)))
    return rm


def test_import_agentrm_does_not_import_torch() -> None:
    code = "import sys, agentrm; assert 'torch' not in sys.modules; assert 'load' in agentrm.__all__"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert agentrm.load is agentrm.checkpoint.load  # resolved lazily on first access


def test_plain_dir_loads_with_fresh_head_and_warning(tiny_model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="agentrm.checkpoint"):
        rm = agentrm.load(tiny_model_dir)
    assert "no agentrm.json" in caplog.text and "UNTRAINED" in caplog.text
    assert rm.settings.dims == ["VQ", "MQ", "TA", "OA"] and rm.settings.episode is None
    assert rm.reward_token_id == rm.processor.tokenizer.convert_tokens_to_ids("<Reward>")
    out = _rewards(rm, _inputs(rm))
    assert out.shape == (2, 4)  # one vector per <Reward>, one value per dim
    again = agentrm.load(tiny_model_dir)
    assert torch.equal(_rewards(again, _inputs(again)), out)  # fresh head is deterministic


def test_plain_dir_with_episode_dims_and_mlp_head(tiny_qwen3_vl_dir: Path) -> None:
    episode = EpisodeConfig(dims=DIMS3, overall_dim="OA", reward_token="<R>")
    rm = agentrm.load(tiny_qwen3_vl_dir, episode=episode, head=HeadConfig(type="mlp", num_outputs=3))
    assert rm.head.config.type == "mlp" and rm.dims == DIMS3
    assert rm.processor.tokenizer.convert_tokens_to_ids("<R>") == rm.reward_token_id
    assert rm.settings.episode_config() == episode
    assert _rewards(rm, _inputs(rm, "a <R>")).shape == (1, 3)


def test_full_round_trip_same_outputs(tiny_model_dir: Path, tmp_path: Path) -> None:
    rm = _trained(agentrm.load(tiny_model_dir, episode=EpisodeConfig(dims=DIMS3)))
    rm.settings = rm.settings.model_copy(update={"normalization": {"VQ": NormStats(mean=1.0, std=2.0)}})
    inputs = _inputs(rm)
    before = _rewards(rm, inputs)
    out = rm.save(tmp_path / "ckpt")
    assert (out / SETTINGS_FILE).is_file() and (out / HEAD_FILE).is_file() and (out / "config.json").is_file()
    loaded = agentrm.load(out)
    assert loaded.reward_token_id == rm.reward_token_id
    assert loaded.settings.format == "full"
    assert loaded.settings.dims == DIMS3 and loaded.settings.base_model == str(tiny_model_dir)
    assert loaded.settings.embedding_rows == rm.model.get_input_embeddings().weight.shape[0]
    assert loaded.settings.episode_config() == EpisodeConfig(dims=DIMS3)
    assert torch.equal(_rewards(loaded, _inputs(loaded)), before)
    assert loaded.normalize([3.0, 5.0, 7.0]) == [1.0, 5.0, 7.0]
    head_state = load_file(str(out / HEAD_FILE))
    assert all(t.dtype == torch.float32 for t in head_state.values())


def test_lora_adapter_and_head_load(tiny_qwen2_5_vl_dir: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model

    rm = _trained(agentrm.load(tiny_qwen2_5_vl_dir))
    lora = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "v_proj"],
        trainable_token_indices={"embed_tokens": [rm.reward_token_id]},
    )
    peft_model = get_peft_model(rm.model, lora)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # "train" the adapter and the <Reward> row
        for p in peft_model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * 0.5)
    tuned = RewardModel(peft_model, rm.processor, rm.head, rm.settings, rm.reward_token_id)
    inputs = _inputs(tuned)
    expected = _rewards(tuned, inputs)
    out = save_checkpoint(tmp_path / "lora", peft_model, rm.processor, rm.head, rm.settings)
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
    loaded = agentrm.load(out)
    assert loaded.settings.format == "lora" and loaded.settings.base_model == str(tiny_qwen2_5_vl_dir)
    assert type(loaded.model).__name__ == "PeftModel"
    assert torch.allclose(_rewards(loaded, inputs), expected, atol=1e-5)
    merged = agentrm.load(out, merge_lora=True)
    assert type(merged.model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert torch.allclose(_rewards(merged, inputs), expected, atol=1e-4)
    base = agentrm.load(tiny_qwen2_5_vl_dir)
    base.head.load_state_dict(rm.head.state_dict())
    assert not torch.allclose(_rewards(base, inputs), expected, atol=1e-3)  # the adapter matters


@pytest.mark.parametrize("what", ["hidden", "dims"])
def test_head_that_does_not_fit_fails_loudly(tiny_qwen3_vl_dir: Path, tmp_path: Path, what: str) -> None:
    rm = agentrm.load(tiny_qwen3_vl_dir)
    out = rm.save(tmp_path / "ckpt")
    shape = (4, 128) if what == "hidden" else (3, 64)
    save_file({"net.weight": torch.zeros(shape)}, str(out / HEAD_FILE))
    with pytest.raises(CheckpointError) as info:
        agentrm.load(out)
    message = str(info.value)
    assert str(out / HEAD_FILE) in message
    assert "(4, 64)" in message and str(shape) in message  # expected and found shapes
    assert "Fix:" in message


def test_settings_must_match_the_head_and_dims() -> None:
    with pytest.raises(ValueError, match="num_outputs=4 but dims has 3"):
        AgentrmSettings(base_model="x", dims=DIMS3, head=HeadConfig(num_outputs=4))
    with pytest.raises(ValueError, match="normalization names dims"):
        AgentrmSettings(
            base_model="x",
            dims=DIMS3,
            head=HeadConfig(num_outputs=3),
            normalization={"TA": NormStats(mean=0, std=1)},
        )
    with pytest.raises(ValueError, match="extra"):
        AgentrmSettings.model_validate({"base_model": "x", "dims": DIMS3, "head": {"num_outputs": 3}, "dimz": []})


def test_save_refuses_a_head_that_is_not_the_settings_head(tiny_qwen3_vl_dir: Path, tmp_path: Path) -> None:
    rm = agentrm.load(tiny_qwen3_vl_dir)
    other = RewardHead(HeadConfig(num_outputs=4, type="mlp"), 64)
    with pytest.raises(CheckpointError, match="does not match settings.head"):
        save_checkpoint(tmp_path, rm.model, rm.processor, other, rm.settings)


def test_bad_settings_files(tiny_qwen3_vl_dir: Path, tmp_path: Path) -> None:
    out = agentrm.load(tiny_qwen3_vl_dir).save(tmp_path / "ckpt")
    raw = json.loads((out / SETTINGS_FILE).read_text())
    (out / SETTINGS_FILE).write_text(json.dumps({**raw, "schema_version": "9"}))
    with pytest.raises(CheckpointError, match="schema_version '9' is not supported"):
        agentrm.load(out)
    (out / SETTINGS_FILE).write_text(json.dumps({**raw, "dims": ["VQ"]}))
    with pytest.raises(CheckpointError, match="invalid settings"):
        agentrm.load(out)
    (out / SETTINGS_FILE).write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="trained for dims"):
        agentrm.load(out, episode=EpisodeConfig(dims=DIMS3))
    with pytest.raises(CheckpointError, match="drop the head argument"):
        agentrm.load(out, head=HeadConfig(type="mlp", num_outputs=4))
    (out / SETTINGS_FILE).write_text(json.dumps({**raw, "format": "lora"}))
    with pytest.raises(CheckpointError, match="no adapter_config.json"):
        agentrm.load(out)
    (out / SETTINGS_FILE).write_text(json.dumps(raw))
    (out / HEAD_FILE).unlink()
    with pytest.raises(CheckpointError, match="no reward_head.safetensors"):
        agentrm.load(out)


def test_missing_path_is_a_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a directory"):
        agentrm.load(str(tmp_path / "nope"))
    shutil.rmtree(tmp_path)


_HUB_SCRIPT = """
import sys, agentrm, torch
rm = agentrm.load("agentrm-test/tiny-plain")
assert rm.settings.base_model == "agentrm-test/tiny-plain" and rm.settings.format == "full"
ck = agentrm.load("agentrm-test/tiny-ckpt")
assert ck.settings.dims == ["VQ", "OA"] and ck.reward_token_id == rm.reward_token_id
try:
    agentrm.load("agentrm-test/not-there")
except agentrm.checkpoint.CheckpointError as exc:
    assert "no cached copy" in str(exc), exc
    print("ok")
"""


def _fake_hub_repo(cache: Path, repo: str, files: Path) -> None:
    """Lay `files` out as a cached hub snapshot (what a download leaves in $HF_HUB_CACHE)."""
    root = cache / ("models--" + repo.replace("/", "--"))
    commit = "0" * 40
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    shutil.copytree(files, root / "snapshots" / commit)


def test_hub_ids_load_through_the_same_path(tiny_qwen3_vl_dir: Path, tmp_path: Path) -> None:
    """Hub ids (here served offline from a pre-filled HF cache) go through the same loader as dirs."""
    ckpt = agentrm.load(tiny_qwen3_vl_dir, episode=EpisodeConfig(dims=["VQ", "OA"])).save(tmp_path / "ckpt")
    cache = tmp_path / "hf-cache"
    _fake_hub_repo(cache, "agentrm-test/tiny-plain", tiny_qwen3_vl_dir)
    _fake_hub_repo(cache, "agentrm-test/tiny-ckpt", ckpt)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run([sys.executable, "-c", _HUB_SCRIPT], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


@pytest.mark.parametrize("head_type", ["attn_pool", "attn_query"])
def test_pooling_heads_round_trip_through_agentrm_load(tiny_qwen2_5_vl_dir: Path, tmp_path: Path,
                                                       head_type: str) -> None:
    from agentrm.head_pooling import PoolingHeadConfig

    layers = [-2, -1] if head_type == "attn_query" else [-1]
    cfg = PoolingHeadConfig(type=head_type, num_outputs=3, mlp_hidden=16, num_heads=2, layers=layers)
    rm = _trained(agentrm.load(tiny_qwen2_5_vl_dir, episode=EpisodeConfig(dims=DIMS3), head=cfg))
    inputs = _inputs(rm)
    before = _rewards(rm, inputs)
    assert before.shape == (2, 3)
    loaded = agentrm.load(rm.save(tmp_path / "ckpt"))
    assert loaded.settings.head == cfg and type(loaded.head) is type(rm.head)
    assert torch.equal(_rewards(loaded, _inputs(loaded)), before)
