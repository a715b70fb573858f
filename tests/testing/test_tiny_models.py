"""The tiny offline checkpoints load back through the Auto classes and behave like real Qwen-VL dirs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from agentrm.models import (
    ImageOnlyQwen2_5_VLProcessor,
    ImageOnlyQwen3VLProcessor,
    register_image_only_processors,
)
from agentrm.testing import build_tiny_model, build_tiny_tokenizer, tiny_model_dir

QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


def _digest(path: Path) -> str:
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


def test_auto_classes_load_the_tiny_dirs(tiny_model_dir: Path) -> None:
    register_image_only_processors()
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    kind = json.loads((tiny_model_dir / "config.json").read_text())["model_type"]
    expected_proc = ImageOnlyQwen2_5_VLProcessor if kind == "qwen2_5_vl" else ImageOnlyQwen3VLProcessor
    assert type(processor) is expected_proc
    assert type(model).__name__ == (
        "Qwen2_5_VLForConditionalGeneration" if kind == "qwen2_5_vl" else "Qwen3VLForConditionalGeneration"
    )
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"
    assert model.config.text_config.hidden_size == 64
    assert model.config.text_config.num_hidden_layers == 2
    vision = model.config.vision_config
    assert (vision.patch_size, vision.spatial_merge_size) == ((14, 2) if kind == "qwen2_5_vl" else (16, 2))
    assert processor.image_processor.patch_size == vision.patch_size
    if kind == "qwen3_vl":
        assert list(processor.image_processor.image_mean) == [0.5, 0.5, 0.5]
    tok = processor.tokenizer
    ids = [tok.convert_tokens_to_ids(t) for t in QWEN_SPECIALS]
    assert len(set(ids)) == len(ids) and all(isinstance(i, int) for i in ids)
    assert model.config.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert sum(p.numel() for p in model.parameters()) < 1_000_000


def test_chat_template_renders_qwen_vl_layout(tiny_model_dir: Path) -> None:
    register_image_only_processors()
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    chat = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "which?"}]}]
    text = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    assert "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>which?<|im_end|>\n" in text
    assert text.endswith("<|im_start|>assistant\n")
    without = processor.apply_chat_template(chat, add_generation_prompt=False, tokenize=False)
    assert not without.endswith("assistant\n")


def test_forward_with_two_images(tiny_model_dir: Path) -> None:
    register_image_only_processors()
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).eval()
    factor = processor.image_processor.patch_size * processor.image_processor.merge_size
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        for h, w in [(2 * factor, 2 * factor), (factor, 3 * factor)]
    ]
    chat = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "a"}, {"type": "image"}]}]
    text = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    encoded = processor(text=[text], images=images, return_tensors="np")  # "pt" warns under numpy 2
    inputs = {k: torch.from_numpy(np.asarray(v)) for k, v in encoded.items()}
    assert inputs["image_grid_thw"].tolist() == [[1, 4, 4], [1, 2, 6]]
    image_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert int((inputs["input_ids"] == image_id).sum()) == 4 + 3  # (h/f)*(w/f) per image
    with torch.no_grad():
        out = model(**inputs)
    assert out.logits.shape[:2] == inputs["input_ids"].shape
    assert torch.isfinite(out.logits).all()


def test_build_is_deterministic_and_seeded(tmp_path: Path) -> None:
    a = build_tiny_model("qwen3_vl", tmp_path / "a", seed=0)
    torch.manual_seed(1234)  # the build must not depend on (or disturb) the global RNG
    state = torch.get_rng_state()
    b = build_tiny_model("qwen3_vl", tmp_path / "b", seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    c = build_tiny_model("qwen3_vl", tmp_path / "c", seed=1)
    assert _digest(a) == _digest(b) != _digest(c)
    assert (a / "tokenizer.json").read_bytes() == (c / "tokenizer.json").read_bytes()


def test_build_rejects_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="qwen2_5_vl"):
        build_tiny_model("llava", tmp_path)  # type: ignore[arg-type]


def test_tokenizer_is_small_byte_level_bpe() -> None:
    tok = build_tiny_tokenizer("qwen2_5_vl")
    assert 1000 <= len(tok) <= 2100
    text = "def f(x):\n    return x  # ünïcode 🎬"
    ids = tok(text)["input_ids"]
    assert tok.decode(ids) == text  # byte-level: every string round-trips
    assert len(ids) < len(text.encode())  # merges were learnt


def test_cached_variant_builds_once(tmp_path: Path) -> None:
    first = tiny_model_dir("qwen2_5_vl", seed=0, cache_dir=tmp_path)
    mtime = (first / "model.safetensors").stat().st_mtime_ns
    again = tiny_model_dir("qwen2_5_vl", seed=0, cache_dir=tmp_path)
    assert again == first and (again / "model.safetensors").stat().st_mtime_ns == mtime
    import transformers

    assert "qwen2_5_vl-seed0" in first.name and transformers.__version__ in first.name
    assert tiny_model_dir("qwen2_5_vl", seed=1, cache_dir=tmp_path) != first
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp dirs left behind
