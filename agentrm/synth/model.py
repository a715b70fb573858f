"""A small random-init Qwen2.5-VL for the learning proof: same architecture and code path as a hub checkpoint,
sized to learn the synthetic task in minutes on one CPU thread.

Why not `agentrm.testing.tiny`: its tokenizer is trained on Python source, so the task's English and frame labels
cost ~3x more tokens, and its 64-wide, 2-layer text model is too small to learn to copy timestamps. Here the
byte-level BPE is trained on the task's own text (the rendered contexts and teacher turns), with `<Reward>`
already a special token, and the text model is 128 wide with 4 layers (~1.5M parameters; ~6 MB in float32).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

VOCAB_SIZE = 768
TEXT = {"hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 4, "num_attention_heads": 4,
        "num_key_value_heads": 2}
VISION = {"depth": 2, "hidden_size": 64, "intermediate_size": 128, "num_heads": 4}


def timestamp_tokens(max_s: float = 300.0, fps: float = 2.0) -> list[str]:
    """Every frame timestamp of a task video as the labels print it ("0.0", "0.5", ... "300.0")."""
    return [f"{k / fps:.1f}" for k in range(int(max_s * fps) + 1)]


def build_tokenizer(texts: Iterable[str], reward_token: str = "<Reward>", atomic: Iterable[str] = ()) -> Any:
    """A Qwen2Tokenizer (Qwen-VL specials + chat template) whose BPE is trained on `texts`. `atomic` strings become
    single (non-special) tokens, matched before the BPE (longest first): with the timestamps, copying a label's
    time is copying one token instead of 3-5 digit tokens in order (Qwen's pre-tokenizer splits digits)."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    from agentrm.testing.tiny import _QWEN2_5_VL_TEMPLATE, SPECIAL_TOKENS

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(list(texts), trainer)
    model = json.loads(tok.to_str())["model"]
    kwargs: dict[str, Any] = {
        "vocab": dict(model["vocab"]), "merges": [tuple(m) for m in model["merges"]], "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>", "unk_token": None, "errors": "replace",
        "extra_special_tokens": [*SPECIAL_TOKENS[1:], reward_token],
    }
    tokenizer = Qwen2Tokenizer(**kwargs)
    tokenizer.chat_template = _QWEN2_5_VL_TEMPLATE
    if atomic:
        tokenizer.add_tokens(list(atomic))
    return tokenizer


def build_model(out_dir: str | Path, texts: Iterable[str], seed: int = 0, atomic_timestamps: bool = False,
                tie_embeddings: bool = False, atomic: Iterable[str] = ()) -> Path:
    """Write the random-init model dir (model, tokenizer, processor) that `agentrm train` starts from; `atomic`
    strings (e.g. `teacher.structure_tokens`) become single tokens, after the timestamps if those are atomic."""
    import torch
    from transformers import AutoModelForImageTextToText, GenerationConfig, Qwen2_5_VLConfig
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from agentrm.models import IMAGE_ONLY_PROCESSORS, register_image_only_processors
    from agentrm.testing.tiny import SPECIAL_TOKENS

    register_image_only_processors()
    tokenizer = build_tokenizer(texts, atomic=[*(timestamp_tokens() if atomic_timestamps else ()), *atomic])
    ids = {t: int(tokenizer.convert_tokens_to_ids(t)) for t in SPECIAL_TOKENS}
    head_dim = TEXT["hidden_size"] // TEXT["num_attention_heads"]
    text: dict[str, Any] = {
        **TEXT, "vocab_size": -(-len(tokenizer) // 64) * 64, "max_position_embeddings": 8192,
        # head_dim 32 -> 16 rotary frequencies split over (temporal, height, width)
        "rope_parameters": {"rope_type": "default", "mrope_section": [4, 6, 6], "rope_theta": 10000.0},
        "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"],
        "tie_word_embeddings": tie_embeddings,  # tied: copying a token is reading its own embedding back
    }
    assert sum(text["rope_parameters"]["mrope_section"]) == head_dim // 2
    vision = {**VISION, "spatial_merge_size": 2, "temporal_patch_size": 2, "out_hidden_size": TEXT["hidden_size"],
              "patch_size": 14, "window_size": 56, "fullatt_block_indexes": [1]}
    config = Qwen2_5_VLConfig(
        text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=tie_embeddings,
    )
    image_processor = Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=28 * 28 * 256, patch_size=14,
                                               merge_size=2, temporal_patch_size=2)
    processor = IMAGE_ONLY_PROCESSORS["qwen2_5_vl"](image_processor=image_processor, tokenizer=tokenizer,
                                                    chat_template=tokenizer.chat_template)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    # a model must never write the vision placeholders (the processor would look for images that are not there)
    never = [ids[t] for t in ("<|im_start|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")]
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<|endoftext|>"], eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"], suppress_tokens=never,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def task_texts(trace_files: Iterable[str | Path], prompt_dir: str | Path | None, limit: int = 400) -> list[str]:
    """The text a model sees and writes in these traces (contexts rendered without pixels, and model turns):
    what the tokenizer is trained on."""
    import numpy as np

    from agentrm.prompting import Prompts, default_prompts
    from agentrm.render import build_context
    from agentrm.tooling import get_tools, tool_schema
    from agentrm.trace import iter_traces

    prompts = Prompts(prompt_dir) if prompt_dir else default_prompts()
    texts: list[str] = []
    for f in trace_files:
        for k, tr in enumerate(iter_traces(f)):
            if k >= limit:
                break
            from agentrm.config import EpisodeConfig

            cfg = EpisodeConfig.model_validate(tr.config)
            schemas = [tool_schema(t) for t in get_tools(cfg.tools).values()] if tr.policy == "agentic" else []
            ctx = build_context(tr, cfg, prompts, schemas,
                                lambda refs: [np.zeros((r.height, r.width, 3), np.uint8) for r in refs])
            texts.extend(m.text for m in ctx.messages)
    return texts
