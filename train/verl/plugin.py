"""What verl imports through `actor_rollout_ref.model.external_lib=agentrm.train.verl.plugin`.

verl imports `external_lib` at the top of `HFModelConfig.__post_init__`, in every process that builds a model config
(actor/ref workers, agent-loop workers), before it loads the processor. Importing this module therefore:

1. registers `AgentrmRewardEngine` in verl's `EngineRegistry` under model_type "agentrm_reward_lm";
2. wraps verl's `hf_processor` with a fallback: verl binds `get_rope_index` only for exact processor class names and
   returns None otherwise, and the stock Qwen-VL processors import torchvision, which CPU-only hosts lack. When
   verl's loader gives None for a Qwen-VL dir, agentrm's image-only processor is loaded and bound the same way.
   On GPU nodes with torchvision, verl's own result is returned untouched.
"""

from __future__ import annotations

import logging
import types
from typing import Any

log = logging.getLogger(__name__)

_ROPE_MODELS = {"qwen2_5_vl": "Qwen2_5_VLModel", "qwen3_vl": "Qwen3VLModel", "qwen2_vl": "Qwen2VLModel"}


def bind_rope_index(processor: Any, config: Any) -> Any:
    """Bind the model class's get_rope_index to `processor`, as verl's hf_processor does for stock classes."""
    import transformers

    model_type = getattr(config, "model_type", "")
    name = _ROPE_MODELS.get(model_type)
    if name is None:
        return processor
    model_cls = getattr(transformers, name)
    processor.config = config
    processor.get_rope_index = types.MethodType(model_cls.get_rope_index, processor)
    if hasattr(model_cls, "get_vision_position_ids"):
        processor.get_vision_position_ids = types.MethodType(model_cls.get_vision_position_ids, processor)
    return processor


def hf_processor_with_fallback(original: Any) -> Any:
    def hf_processor(name_or_path: str, **kwargs: Any) -> Any:
        processor = original(name_or_path, **kwargs)
        if processor is not None:
            return processor
        from transformers import AutoConfig

        from agentrm.models import IMAGE_ONLY_PROCESSORS, load_processor

        try:
            config = AutoConfig.from_pretrained(name_or_path, **kwargs)
        except (OSError, ValueError):
            return None
        if config.model_type not in IMAGE_ONLY_PROCESSORS:
            return None
        log.info("%s: verl's hf_processor gave None; using agentrm's image-only processor", name_or_path)
        return bind_rope_index(load_processor(name_or_path), config)

    hf_processor.__wrapped__ = original  # type: ignore[attr-defined]
    return hf_processor


def install() -> None:
    """Idempotent: patch every module-level name verl calls hf_processor through."""
    import verl.utils as utils
    import verl.utils.tokenizer as tok
    import verl.utils.tokenizer.tokenizer as tok_impl
    import verl.workers.config.model as model_cfg

    original = getattr(tok_impl.hf_processor, "__wrapped__", tok_impl.hf_processor)
    patched = tok_impl.hf_processor if original is not tok_impl.hf_processor else hf_processor_with_fallback(original)
    for module in (tok_impl, tok, utils, model_cfg):
        module.hf_processor = patched  # type: ignore[attr-defined]

    from agentrm.train.verl import engine  # noqa: F401  (registers AgentrmRewardEngine)


install()
