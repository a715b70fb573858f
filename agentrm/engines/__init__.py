"""Engines: one protocol (`generate` + `score`), three implementations.

- `hf`: transformers in-process (CPU/GPU), batches concurrent requests, reads the reward head itself.
- `vllm`: vLLM async generation (GPU, `[vllm]` extra); `score` is delegated to an HF prefill of the same weights.
- `scripted`: replays model turns from a file (tests, prompt debugging, trace replay).
"""

from __future__ import annotations

from agentrm.config import EngineConfig, EpisodeConfig
from agentrm.engines.base import Completion, Context, Engine, ImagePart, Message, TextPart
from agentrm.errors import ConfigError

__all__ = ["Completion", "Context", "Engine", "ImagePart", "Message", "TextPart", "make_engine"]


def make_engine(cfg: EngineConfig, episode: EpisodeConfig) -> Engine:
    """Build the engine named by `cfg.kind`. Heavy imports (torch, vllm) happen only here."""
    if cfg.kind == "scripted":
        from agentrm.engines.scripted import ScriptedEngine

        if not cfg.script:
            raise ConfigError(
                "engine.kind=scripted needs engine.script (a JSONL of model turns), e.g. --script t.jsonl"
            )
        return ScriptedEngine.from_file(cfg.script)
    if not cfg.model:
        raise ConfigError(f"engine.kind={cfg.kind} needs engine.model: a hub id or local dir (use --model)")
    if cfg.kind == "hf":
        from agentrm.engines.hf import HFEngine

        return HFEngine.from_config(cfg, episode)
    from agentrm.engines.vllm import VLLMEngine

    return VLLMEngine.from_config(cfg, episode)
