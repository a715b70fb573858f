"""agentrm.models: one loading path for every Qwen-VL dir, the reward token, and facts read from configs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from agentrm.errors import CheckpointError
from agentrm.models import (
    ensure_reward_token,
    hidden_size,
    load_model_and_processor,
    load_processor,
    vision_factor,
)


def test_load_model_and_processor(tiny_model_dir: Path) -> None:
    model, processor = load_model_and_processor(tiny_model_dir, dtype="float32", device="cpu")
    assert not model.training
    assert model.dtype == torch.float32
    assert hidden_size(model) == hidden_size(model.config) == 64
    assert processor.tokenizer is not None and processor.image_processor is not None


def test_vision_factor_is_read_from_the_config(tiny_qwen2_5_vl_dir: Path, tiny_qwen3_vl_dir: Path) -> None:
    m25, _ = load_model_and_processor(tiny_qwen2_5_vl_dir)
    m3, _ = load_model_and_processor(tiny_qwen3_vl_dir)
    assert vision_factor(m25) == vision_factor(m25.config) == 28
    assert vision_factor(m3) == vision_factor(m3.config) == 32
    m3.config.vision_config.patch_size = 8  # not hard-coded: follows the config
    assert vision_factor(m3) == 16


def test_vision_factor_rejects_text_only_config() -> None:
    from transformers import Qwen2Config

    with pytest.raises(CheckpointError, match="vision_config"):
        vision_factor(Qwen2Config())


def test_bfloat16_load(tiny_qwen3_vl_dir: Path) -> None:
    model, _ = load_model_and_processor(tiny_qwen3_vl_dir, dtype="bfloat16")
    assert model.dtype == torch.bfloat16
    with pytest.raises(CheckpointError, match="dtype"):
        load_model_and_processor(tiny_qwen3_vl_dir, dtype="float99")


def test_reward_token_uses_spare_rows_and_is_stable(tiny_model_dir: Path, tmp_path: Path) -> None:
    model, processor = load_model_and_processor(tiny_model_dir)
    tok = processor.tokenizer
    rows = model.get_input_embeddings().weight.shape[0]
    n_tokens = len(tok)
    assert rows > n_tokens  # like the real checkpoints, the tiny embedding has spare rows
    reward_id = ensure_reward_token(model, tok, "<Reward>")
    assert reward_id == n_tokens and len(tok) == n_tokens + 1
    assert model.get_input_embeddings().weight.shape[0] == rows  # fits: no resize, base shape kept
    emb = model.get_input_embeddings().weight
    assert torch.allclose(emb[reward_id], emb[:n_tokens].mean(0), atol=1e-6)  # mean init
    assert ensure_reward_token(model, tok, "<Reward>") == reward_id  # idempotent
    assert len(tok) == n_tokens + 1
    # one id, never split, kept by decode without skip_special_tokens
    ids = tok("a<Reward>b<Reward>")["input_ids"]
    assert ids.count(reward_id) == 2
    assert "<Reward>" in tok.decode(ids, skip_special_tokens=False)
    assert "<Reward>" not in tok.decode(ids, skip_special_tokens=True)

    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    model2, processor2 = load_model_and_processor(tmp_path)
    assert processor2.tokenizer.convert_tokens_to_ids("<Reward>") == reward_id
    assert ensure_reward_token(model2, processor2.tokenizer, "<Reward>") == reward_id
    assert torch.equal(model2.get_input_embeddings().weight[reward_id], emb[reward_id])


def test_reward_token_resizes_when_no_spare_row(tiny_qwen2_5_vl_dir: Path) -> None:
    model, processor = load_model_and_processor(tiny_qwen2_5_vl_dir)
    tok = processor.tokenizer
    model.resize_token_embeddings(len(tok))  # a checkpoint whose embedding is exactly full
    reward_id = ensure_reward_token(model, tok, "<Reward>")
    assert model.get_input_embeddings().weight.shape[0] == len(tok) == reward_id + 1
    assert model.get_output_embeddings().weight.shape[0] == len(tok)
    out = model.get_output_embeddings().weight
    assert torch.allclose(out[reward_id], out[:reward_id].mean(0), atol=1e-6)
    assert model.config.text_config.vocab_size == len(tok)
    # a base without the row but a tokenizer that already has the token (loading a LoRA checkpoint): the row
    # is created with the same deterministic init, so untied LM-head rows match what training saw
    again, _ = load_model_and_processor(tiny_qwen2_5_vl_dir)
    again.resize_token_embeddings(reward_id)
    assert ensure_reward_token(again, tok, "<Reward>") == reward_id
    assert torch.equal(again.get_output_embeddings().weight[reward_id], out[reward_id])
    assert torch.equal(again.get_input_embeddings().weight[reward_id], model.get_input_embeddings().weight[reward_id])


def test_missing_processor_is_a_checkpoint_error(tiny_qwen3_vl_dir: Path, tmp_path: Path) -> None:
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        shutil.copy(tiny_qwen3_vl_dir / name, tmp_path / name)
    with pytest.raises(CheckpointError, match=str(tmp_path)):
        load_model_and_processor(tmp_path)


def test_factor_mismatch_is_a_checkpoint_error(tiny_qwen3_vl_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(tiny_qwen3_vl_dir, tmp_path, dirs_exist_ok=True)
    cfg = json.loads((tmp_path / "processor_config.json").read_text())
    cfg["image_processor"]["patch_size"] = 14
    (tmp_path / "processor_config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="patch_size\\*merge_size = 28"):
        load_model_and_processor(tmp_path)


def test_stock_processor_class_falls_back_to_image_only(tiny_qwen2_5_vl_dir: Path, tmp_path: Path) -> None:
    """A real hub dir names `Qwen2_5_VLProcessor`, whose video processor needs torchvision; without it we load
    the image-only processor from the same files."""
    try:
        import torchvision  # noqa: F401

        pytest.skip("torchvision is installed: the stock processor loads as is")
    except ImportError:
        pass
    shutil.copytree(tiny_qwen2_5_vl_dir, tmp_path, dirs_exist_ok=True)
    for name in ("processor_config.json", "tokenizer_config.json"):
        cfg = json.loads((tmp_path / name).read_text())
        cfg["processor_class"] = "Qwen2_5_VLProcessor"
        (tmp_path / name).write_text(json.dumps(cfg))
    video_cfg = {"video_processor_type": "Qwen2VLVideoProcessor", "patch_size": 14, "merge_size": 2}
    (tmp_path / "video_preprocessor_config.json").write_text(json.dumps(video_cfg))
    with pytest.raises(ImportError):
        from transformers import AutoProcessor

        AutoProcessor.from_pretrained(tmp_path)  # what a stock load does here
    processor = load_processor(tmp_path)
    assert type(processor).__name__ == "ImageOnlyQwen2_5_VLProcessor"
    assert processor.image_processor.patch_size == 14
