"""Labelled items (`Item`) and the loaders that make them from benchmark files and agentrm JSONL."""

from agentrm.data.schema import PAIR_LABELS, Item

__all__ = ["PAIR_LABELS", "Item"]
