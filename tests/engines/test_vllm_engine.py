"""VLLMEngine seams that run without vLLM: the import guard and the request prompt (text + untouched frames)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from agentrm.config import EngineConfig, EpisodeConfig
from agentrm.engines.base import Context, ImagePart, Message, TextPart
from agentrm.engines.hf import HFEngine
from agentrm.engines.vllm import VLLMEngine, vllm_prompt
from agentrm.errors import EngineError
from agentrm.trace import FrameRef


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed")
def test_missing_vllm_is_a_clear_error(tiny_qwen2_5_vl_dir: Path) -> None:
    with pytest.raises(EngineError, match=r"pip install 'agentrm\[vllm\]'"):
        VLLMEngine.from_config(EngineConfig(kind="vllm", model=str(tiny_qwen2_5_vl_dir)), EpisodeConfig())


def test_prompt_keeps_frames_at_their_size(tiny_qwen2_5_vl_dir: Path) -> None:
    hf = HFEngine.from_config(EngineConfig(model=str(tiny_qwen2_5_vl_dir), device="cpu"), EpisodeConfig())
    refs = [FrameRef(video=1, index=i, timestamp_s=i, detail="low", width=w, height=h, tokens=(h // 28) * (w // 28))
            for i, (h, w) in enumerate(((56, 84), (112, 140)))]
    ctx = Context([Message("user", [TextPart("look"), *(ImagePart(r, np.zeros((r.height, r.width, 3), np.uint8))
                                                       for r in refs)])])
    prompt = vllm_prompt(hf, ctx)
    assert prompt["prompt"] == hf.render(ctx) and prompt["prompt"].count("<|image_pad|>") == 2
    assert [im.size for im in prompt["multi_modal_data"]["image"]] == [(84, 56), (140, 112)]
    assert prompt["mm_processor_kwargs"] == {"min_pixels": 28 * 28, "max_pixels": 112 * 140}


@pytest.mark.gpu
def test_vllm_generates_on_gpu(tiny_qwen2_5_vl_dir: Path) -> None:  # pragma: no cover - needs a GPU + vLLM
    pytest.importorskip("vllm")
    engine = VLLMEngine.from_config(EngineConfig(kind="vllm", model=str(tiny_qwen2_5_vl_dir)), EpisodeConfig())
    assert engine.factor == 28
