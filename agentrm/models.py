"""Loading Qwen-VL models and processors, and the few facts agentrm reads from them.

One code path for every model: a hub id or a local dir of a real checkpoint (Qwen/Qwen2.5-VL-7B-Instruct,
Qwen/Qwen3-VL-8B-Instruct) and the tiny offline ones from `agentrm.testing` all go through the Auto classes
(`AutoModelForImageTextToText`, `AutoProcessor`). Nothing model-specific is hard-coded: the frame-size factor
(patch * merge: 28 for Qwen2.5-VL, 32 for Qwen3-VL) and the hidden size are read from the config.

agentrm feeds frames as images only, never as videos. The stock Qwen-VL processors also build a video
processor, which imports torchvision; where torchvision is missing (CPU boxes) we fall back to an image-only
subclass of the same processor (same tokenizer, image processor and chat template). Those subclasses are
registered with `AutoProcessor` under private keys so a directory saved with one loads back through
`AutoProcessor` without changing what `AutoProcessor` returns for any stock config.

    model, processor = load_model_and_processor("Qwen/Qwen2.5-VL-7B-Instruct", "bfloat16", "cuda")
    reward_id = ensure_reward_token(model, processor.tokenizer, "<Reward>")
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    AutoProcessor,
    PretrainedConfig,
    PreTrainedModel,
    Qwen2_5_VLProcessor,
    Qwen3VLProcessor,
)
from transformers.processing_utils import ProcessorMixin

from agentrm.errors import CheckpointError

log = logging.getLogger(__name__)


class ImageOnlyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):
    """Qwen2.5-VL processor without the video processor (agentrm passes frames as images)."""

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


class ImageOnlyQwen3VLProcessor(Qwen3VLProcessor):
    """Qwen3-VL processor without the video processor (agentrm passes frames as images)."""

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


# model_type -> image-only processor class, for the torchvision-less fallback.
IMAGE_ONLY_PROCESSORS: dict[str, type[ProcessorMixin]] = {
    "qwen2_5_vl": ImageOnlyQwen2_5_VLProcessor,
    "qwen3_vl": ImageOnlyQwen3VLProcessor,
}

_registered = False


def register_image_only_processors() -> None:
    """Make `AutoProcessor` resolve our image-only processor class names (idempotent).

    AutoProcessor finds a processor class named in processor_config.json among its registered extras;
    without this it silently returns a bare tokenizer. Each class is registered under its own private config
    key, so the mapping for the stock Qwen configs is left untouched."""
    global _registered
    if _registered:
        return
    for model_type, proc_cls in IMAGE_ONLY_PROCESSORS.items():
        key = type(
            f"_ImageOnlyKey_{model_type}", (PretrainedConfig,), {"model_type": f"agentrm_{model_type}"}
        )
        AutoProcessor.register(key, proc_cls)
    _registered = True


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; anything else is passed through."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _torch_dtype(dtype: str) -> torch.dtype | str:
    if dtype == "auto":
        return "auto"
    try:
        value = getattr(torch, dtype)
    except AttributeError:
        value = None
    if not isinstance(value, torch.dtype):
        raise CheckpointError(f"dtype {dtype!r} is not a torch dtype; use auto, float32, bfloat16 or float16")
    return value


def _image_only_fallback(source: str) -> ProcessorMixin | None:
    """The image-only processor for `source`'s model type, or None when there is none / it cannot load."""
    try:
        model_type = AutoConfig.from_pretrained(source).model_type
        fallback = IMAGE_ONLY_PROCESSORS.get(model_type)
        return None if fallback is None else fallback.from_pretrained(source)
    except Exception:  # noqa: BLE001 - the caller reports the original error
        return None


def load_processor(name_or_dir: str | Path) -> ProcessorMixin:
    """The multimodal processor of a model dir or hub id.

    The stock Qwen-VL processors also load a video processor, which needs torchvision (and a video processor
    config); when that fails we load the image-only subclass from the same tokenizer/image-processor files."""
    register_image_only_processors()
    source = str(name_or_dir)
    processor: Any
    try:
        processor = AutoProcessor.from_pretrained(source)
    except Exception as exc:  # noqa: BLE001 - ImportError (torchvision), OSError (missing file), ValueError...
        processor = _image_only_fallback(source)
        if processor is None:
            raise CheckpointError(
                f"{source}: cannot load its processor ({type(exc).__name__}: {exc}). A Qwen-VL model dir "
                "needs the tokenizer and processor/preprocessor configs next to config.json; save the base "
                "model's processor there (processor.save_pretrained(dir))."
            ) from exc
        log.info("%s: stock processor failed (%s); using %s", source, exc, type(processor).__name__)
    if not hasattr(processor, "image_processor") or not hasattr(processor, "tokenizer"):
        raise CheckpointError(
            f"{source}: AutoProcessor returned {type(processor).__name__}, not a multimodal processor; the "
            "dir lacks processor_config.json/preprocessor_config.json. Save the base model's processor there."
        )
    return processor


def load_model_and_processor(
    name_or_dir: str | Path,
    dtype: str = "auto",
    device: str = "auto",
    attn_implementation: str = "sdpa",
) -> tuple[PreTrainedModel, ProcessorMixin]:
    """Load a Qwen-VL image-text-to-text model (in eval mode) and its processor through the Auto classes."""
    source = str(name_or_dir)
    processor = load_processor(source)
    dev = resolve_device(device)
    kwargs: dict[str, Any] = {"dtype": _torch_dtype(dtype), "attn_implementation": attn_implementation}
    if dev != "cpu":
        kwargs["device_map"] = dev  # load straight onto the accelerator, never materialising on CPU
    try:
        model = AutoModelForImageTextToText.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"{source}: cannot load it with AutoModelForImageTextToText ({exc}). Pass a Qwen2.5-VL/Qwen3-VL "
            "hub id or a dir with config.json and model weights."
        ) from exc
    model.eval()
    check_factor(model, processor, source)
    return model, processor


def model_config(model_or_config: Any) -> Any:
    """The model's PretrainedConfig (accepts a model, a peft-wrapped model or a config)."""
    return getattr(model_or_config, "config", model_or_config)


def vision_factor(model_or_config: Any) -> int:
    """patch_size * spatial_merge_size of the vision tower: frame sides must be multiples of it (28 / 32)."""
    config = model_config(model_or_config)
    vision = getattr(config, "vision_config", None)
    if vision is None:
        raise CheckpointError(f"{type(config).__name__} has no vision_config: not a Qwen-VL model")
    return int(vision.patch_size) * int(vision.spatial_merge_size)


def hidden_size(model_or_config: Any) -> int:
    """Hidden size of the language model (what the reward head reads)."""
    config = model_config(model_or_config)
    text = getattr(config, "text_config", None) or config
    return int(text.hidden_size)


def processor_factor(processor: Any) -> int:
    ip = processor.image_processor
    return int(ip.patch_size) * int(ip.merge_size)


def check_factor(model: Any, processor: Any, source: str) -> None:
    """The processor must cut frames into the same patches the vision tower expects."""
    mf, pf = vision_factor(model), processor_factor(processor)
    if mf != pf:
        raise CheckpointError(
            f"{source}: image processor patch_size*merge_size = {pf} but the model's vision config gives "
            f"{mf}; the processor belongs to another model. Save the base model's processor into this dir."
        )


def unwrap(model: Any) -> Any:
    """The transformers model under a peft wrapper (LoRA layers stay injected), or the model itself."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def ensure_reward_token(model: Any, tokenizer: Any, token: str = "<Reward>") -> int:
    """Add `token` as a special token (if the tokenizer lacks it) and make the embeddings cover its id.

    Real Qwen-VL checkpoints have spare embedding rows (152064 rows for ~151665 tokens): the new id then
    fits and the shape is left alone (shrinking would change the base model's shape for LoRA and vLLM).
    Otherwise the embeddings grow to len(tokenizer). A newly added token's row starts at the mean of the
    existing token rows (input and, if untied, output embeddings): deterministic, and in the distribution of
    real tokens. Returns the token id; calling it again is a no-op."""
    base = unwrap(model)
    is_new = token not in tokenizer.get_vocab()
    known_rows = len(tokenizer)
    if is_new:
        # special=True: never split by the tokenizer, kept as one id; saved in tokenizer.json's added tokens
        tokenizer.add_tokens([token], special_tokens=True)
    token_id = int(tokenizer.convert_tokens_to_ids(token))
    rows = base.get_input_embeddings().weight.shape[0]
    grown = token_id >= rows
    if grown:
        base.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    # a row is (re)initialised when the token is new or its row was just created, never when it exists and may
    # be trained; the same init at train and load time keeps untied LM-head rows identical
    if is_new or grown:
        with torch.no_grad():
            emb_in = base.get_input_embeddings().weight
            emb_in[token_id] = emb_in[: min(known_rows, rows)].float().mean(0).to(emb_in.dtype)
            emb_out = base.get_output_embeddings()
            if emb_out is not None and emb_out.weight.data_ptr() != emb_in.data_ptr():
                w = emb_out.weight
                w[token_id] = w[: min(known_rows, rows)].float().mean(0).to(w.dtype)
    return token_id
