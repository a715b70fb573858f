"""Tiny random-weight Qwen2.5-VL and Qwen3-VL checkpoints, built offline in about a second.

Tests and benchmarks need real models (real processors, real mrope, real generate), not mocks, but cannot
download anything. `build_tiny_model` writes a complete HF model dir that
`agentrm.models.load_model_and_processor` (i.e. the Auto classes) loads exactly like a hub checkpoint:

- a byte-level BPE tokenizer (~1k tokens) trained here on stdlib `.py` files, wrapped as `Qwen2Tokenizer`,
  with the Qwen-VL special tokens and a Qwen-VL chat template (multimodal content lists);
- the PIL image processor (`Qwen2VLImageProcessorPil`: the torchvision one cannot run here), patch 14 for
  Qwen2.5-VL, patch 16 with mean/std 0.5 for Qwen3-VL;
- the image-only processor subclass from `agentrm.models` (registered with AutoProcessor);
- tiny configs: text hidden 64, 2 layers, 4 heads / 2 kv heads, mrope_section summing to head_dim/2;
  vision depth 2, hidden 64, spatial merge 2. ~0.5M parameters, ~2 MB.

What it simplifies vs a real checkpoint: the vocabulary is code-flavoured and small; the embedding has spare
rows (a multiple of 64, like the 152064 rows of Qwen2.5-VL-7B) so adding `<Reward>` usually needs no resize;
weights are random, so generations are gibberish (but deterministic under greedy decoding).

    from agentrm.testing import build_tiny_model, tiny_model_dir
    path = build_tiny_model("qwen3_vl", tmp_path / "tiny")   # fresh, ~0.5 s
    path = tiny_model_dir("qwen2_5_vl")                       # cached under $AGENTRM_CACHE/tiny
"""

from __future__ import annotations

import functools
import json
import os
import platform
import shutil
import sysconfig
import tempfile
from pathlib import Path
from typing import Any, Literal

TinyKind = Literal["qwen2_5_vl", "qwen3_vl"]
TINY_KINDS: tuple[TinyKind, ...] = ("qwen2_5_vl", "qwen3_vl")

# Bump when the tiny recipe changes: it is part of the cache key.
RECIPE_VERSION = "1"
VOCAB_SIZE = 1024  # BPE tokens before the specials
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# The Qwen2.5-VL hub template (default system prompt, images as vision_start/image_pad/vision_end). HF renders
# chat templates with trim_blocks, so every newline that matters sits before a block tag or after an
# expression.
_QWEN2_5_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen3-VL's template has no default system prompt; its tool/think branches are left out (agentrm renders tool
# calls and results as plain text in its own prompts).
_QWEN3_VL_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@functools.lru_cache(maxsize=1)
def _bpe_vocab_and_merges() -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    """Train the byte-level BPE once per process on the stdlib's top-level modules (deterministic for a given
    Python install; the Python version is part of the cache key)."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(stdlib.glob("*.py"))[:40]
    texts = [f.read_text(encoding="utf-8", errors="replace") for f in files]
    tok = Tokenizer(models.BPE())
    # Same pre-tokenisation as Qwen2Tokenizer, so the merges learnt here are the ones it will apply.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(texts, trainer)
    model = json.loads(tok.to_str())["model"]
    return dict(model["vocab"]), tuple((a, b) for a, b in model["merges"])


def build_tiny_tokenizer(kind: TinyKind) -> Any:
    """A `Qwen2Tokenizer` with the Qwen-VL specials and the chat template of `kind`."""
    from transformers import Qwen2Tokenizer

    vocab, merges = _bpe_vocab_and_merges()
    kwargs: dict[str, Any] = {
        "vocab": dict(vocab),
        "merges": list(merges),
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,  # as in the Qwen-VL hub tokenizers: byte-level BPE never needs one
        "extra_special_tokens": SPECIAL_TOKENS[1:],
        "errors": "replace",
    }
    tokenizer = Qwen2Tokenizer(**kwargs)
    tokenizer.chat_template = _QWEN2_5_VL_TEMPLATE if kind == "qwen2_5_vl" else _QWEN3_VL_TEMPLATE
    return tokenizer


def _padded(n: int, multiple: int = 64) -> int:
    return -(-n // multiple) * multiple


def _config(kind: TinyKind, token_ids: dict[str, int], vocab_rows: int) -> Any:
    from transformers import Qwen2_5_VLConfig, Qwen3VLConfig

    text: dict[str, Any] = {
        "vocab_size": vocab_rows,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        # head_dim 16 -> 8 rotary frequencies split over (temporal, height, width)
        "rope_parameters": {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0},
        "bos_token_id": token_ids["<|endoftext|>"],
        "eos_token_id": token_ids["<|im_end|>"],
        "pad_token_id": token_ids["<|endoftext|>"],
    }
    vision: dict[str, Any] = {
        "depth": 2,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_heads": 4,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "out_hidden_size": 64,
    }
    ids: dict[str, Any] = {
        "image_token_id": token_ids["<|image_pad|>"],
        "video_token_id": token_ids["<|video_pad|>"],
        "vision_start_token_id": token_ids["<|vision_start|>"],
        "vision_end_token_id": token_ids["<|vision_end|>"],
    }
    if kind == "qwen2_5_vl":
        vision.update(patch_size=14, window_size=56, fullatt_block_indexes=[1])
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision, **ids)
    text["head_dim"] = 16
    text["rope_parameters"]["mrope_interleaved"] = True
    vision.update(patch_size=16, num_position_embeddings=64, deepstack_visual_indexes=[1])
    return Qwen3VLConfig(text_config=text, vision_config=vision, **ids)


def build_tiny_model(kind: TinyKind, out_dir: str | Path, seed: int = 0) -> Path:
    """Write a tiny random-weight `kind` checkpoint (model, tokenizer, processor) to `out_dir`; returns the
    dir. Same `kind`, `seed` and library versions give byte-identical weights."""
    import torch
    from transformers import AutoModelForImageTextToText, GenerationConfig
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from agentrm.models import IMAGE_ONLY_PROCESSORS, register_image_only_processors

    if kind not in TINY_KINDS:
        raise ValueError(f"kind must be one of {TINY_KINDS}, got {kind!r}")
    register_image_only_processors()
    tokenizer = build_tiny_tokenizer(kind)
    token_ids = {t: int(tokenizer.convert_tokens_to_ids(t)) for t in SPECIAL_TOKENS}
    patch = 14 if kind == "qwen2_5_vl" else 16
    factor = patch * 2
    image_kwargs: dict[str, Any] = {"patch_size": patch, "merge_size": 2, "temporal_patch_size": 2}
    if kind == "qwen3_vl":
        image_kwargs.update(image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=factor * factor, max_pixels=factor * factor * 256, **image_kwargs
    )
    processor = IMAGE_ONLY_PROCESSORS[kind](
        image_processor=image_processor, tokenizer=tokenizer, chat_template=tokenizer.chat_template
    )
    config = _config(kind, token_ids, _padded(len(tokenizer)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=token_ids["<|endoftext|>"],
        eos_token_id=[token_ids["<|im_end|>"], token_ids["<|endoftext|>"]],
        pad_token_id=token_ids["<|endoftext|>"],
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def default_cache_dir() -> Path:
    root = os.environ.get("AGENTRM_CACHE")
    return Path(root) / "tiny" if root else Path.home() / ".cache" / "agentrm" / "tiny"


def tiny_model_dir(kind: TinyKind, seed: int = 0, cache_dir: str | Path | None = None) -> Path:
    """`build_tiny_model` cached on disk, keyed by kind, seed, recipe and library versions. Safe to call from
    concurrent processes: each builds into a private temp dir and renames it into place."""
    import tokenizers
    import transformers

    key = (
        f"{kind}-seed{seed}-r{RECIPE_VERSION}-tf{transformers.__version__}-tok{tokenizers.__version__}"
        f"-py{platform.python_version()}"
    )
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = root / key
    if (final / "config.json").exists():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    try:
        build_tiny_model(kind, tmp, seed=seed)
        try:
            tmp.rename(final)
        except OSError:
            if not (final / "config.json").exists():  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
