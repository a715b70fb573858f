"""Test helpers shipped with agentrm: tiny offline Qwen-VL checkpoints (torch loads only to build one)."""

from agentrm.testing.tiny import TINY_KINDS, TinyKind, build_tiny_model, build_tiny_tokenizer, tiny_model_dir

__all__ = ["TINY_KINDS", "TinyKind", "build_tiny_model", "build_tiny_tokenizer", "tiny_model_dir"]
