"""Labelled items -> verl RL rows (parquet). No verl import: the rows are plain dicts, written with pyarrow.

One row per item (pairwise or pointwise); videos stay paths (the agent loop decodes frames on demand through the
frame source, nothing is preloaded). Columns, as verl's RLHFDataset and reward manager expect them:

    data_source   "agentrm/pairwise" | "agentrm/pointwise"
    prompt        chat messages; only for verl's bookkeeping (the loop renders its own prompts from the item)
    agent_name    "agentrm" (selects our agent loop)
    reward_model  {"style": "rule", "ground_truth": labels as JSON}
    extra_info    {"index", "item" (the Item as JSON), "pair_id", "pair_role", "need_tools_kwargs": False}

Nested values that vary per row (labels with different dims, meta) are JSON strings so one parquet schema fits all.

Pointwise training with the auxiliary BT loss needs the two videos of a pair in one batch: `split_pairs` turns a
pairwise item into two pointwise rows (pair_role "1"/"2") that share a pair_id and stay adjacent through the
pair-level shuffle. verl then runs n rollouts of each row; the agent loop stamps every output row with
`pair_fields` (pair id, role, rollout index), and the trainer joins rollout j of video 1 with rollout j of video 2
by `pair_key` (see agentrm.train.verl.trainer).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from agentrm.data.loaders import load_items
from agentrm.data.schema import Item
from agentrm.errors import DataError

AGENT_NAME = "agentrm"

# extra_fields every output row of a rollout carries: written by the agent loop, read by the trainer's partner join
PAIR_ID_FIELD = "agentrm_pair_id"
PAIR_ROLE_FIELD = "agentrm_pair_role"
ROLLOUT_FIELD = "agentrm_rollout"
PAIR_ROLES = ("1", "2")

PairKey = tuple[str, str, int]  # (pair id, role "1"/"2", rollout index within the GRPO group)


def pair_fields(extra_info: dict[str, Any], rollout: int | None) -> dict[str, Any]:
    """What the agent loop adds to each output row's extra_fields: the row's pair identity and its rollout index
    (verl's session_id, 0..n-1 within the item's GRPO group; -1 when verl passed none, which never pairs)."""
    return {PAIR_ID_FIELD: str(extra_info.get("pair_id") or ""),
            PAIR_ROLE_FIELD: str(extra_info.get("pair_role") or ""),
            ROLLOUT_FIELD: int(rollout) if rollout is not None else -1}


def pair_key(fields: Any) -> PairKey | None:
    """The join key of a row's extra_fields, or None when the row is no split-pair member with a rollout index."""
    if not isinstance(fields, dict):
        return None
    pid, role, rollout = fields.get(PAIR_ID_FIELD), fields.get(PAIR_ROLE_FIELD), fields.get(ROLLOUT_FIELD)
    if not pid or role not in PAIR_ROLES or not isinstance(rollout, int) or isinstance(rollout, bool) or rollout < 0:
        return None
    return str(pid), str(role), rollout


def partner_key(key: PairKey) -> PairKey:
    """The same rollout index of the pair's other video (DeScore pairs rollout j of video 1 with rollout j of 2)."""
    pid, role, rollout = key
    return pid, PAIR_ROLES[1 - PAIR_ROLES.index(role)], rollout


def split_pair(item: Item) -> list[Item]:
    """A pairwise item as two pointwise items sharing `meta.pair_id`; labels become BT preferences in meta."""
    if item.mode != "pairwise":
        raise DataError(f"item {item.id!r} is {item.mode}; only pairwise items can be split into pairs")
    out = []
    for role, video in (("1", item.videos[0]), ("2", item.videos[1])):
        meta = {**item.meta, "pair_id": item.id, "pair_role": role, "pair_labels": dict(item.labels)}
        out.append(Item(id=f"{item.id}:{role}", mode="pointwise", prompt=item.prompt, videos=[video], meta=meta))
    return out


def item_row(item: Item, index: int) -> dict[str, Any]:
    """The verl row of one item."""
    pair_id = str(item.meta.get("pair_id", item.id if item.mode == "pairwise" else ""))
    return {
        "data_source": f"agentrm/{item.mode}",
        "prompt": [{"role": "user", "content": f"Judge the video(s) generated for: {item.prompt}"}],
        "agent_name": AGENT_NAME,
        "reward_model": {"style": "rule", "ground_truth": json.dumps(item.labels, sort_keys=True)},
        "extra_info": {
            "index": index,
            "item": item.model_dump_json(),
            "pair_id": pair_id,
            "pair_role": str(item.meta.get("pair_role", "")),
            "need_tools_kwargs": False,
        },
    }


def build_rows(
    items: list[Item], split_pairs: bool = False, shuffle: bool = False, seed: int = 0
) -> list[dict[str, Any]]:
    """Rows for `items`; with split_pairs the two rows of a pair stay adjacent (the shuffle moves whole pairs)."""
    groups = [split_pair(i) for i in items] if split_pairs else [[i] for i in items]
    if shuffle:
        random.Random(seed).shuffle(groups)
    flat = [it for group in groups for it in group]
    return [item_row(it, index) for index, it in enumerate(flat)]


def write_parquet(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write rows with pyarrow (an install of the `verl` extra)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise DataError("writing verl data needs pyarrow: pip install -e '.[verl]'") from exc
    if not rows:
        raise DataError(f"{path}: no rows to write (every item was filtered or skipped)")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), str(out))
    return out


def convert(
    src: str | Path, out: str | Path, fmt: str = "auto", video_root: str | None = None, split_pairs: bool = False,
    shuffle: bool = False, max_items: int | None = None, seed: int = 0,
) -> tuple[Path, int]:
    """Load a labelled file and write its verl parquet; returns (path, rows)."""
    loaded = load_items(src, format=fmt, video_root=video_root)
    items = loaded.items[:max_items] if max_items else loaded.items
    if not items:
        raise DataError(f"{src}: no usable items ({len(loaded.skipped)} skipped rows; first: "
                        f"{loaded.skipped[0] if loaded.skipped else '-'})")
    unlabelled = [i.id for i in items if not i.labels]
    if unlabelled and not split_pairs:
        raise DataError(f"{src}: GRPO needs labels; items without any: {unlabelled[:5]}")
    rows = build_rows(items, split_pairs=split_pairs, shuffle=shuffle, seed=seed)
    return write_parquet(rows, out), len(rows)


def item_from_row(extra_info: dict[str, Any]) -> Item:
    """The Item back from a row's extra_info (what the agent loop does)."""
    raw = extra_info.get("item")
    if not isinstance(raw, str):
        raise DataError("row extra_info lacks 'item' (JSON of an agentrm Item); convert data with agentrm "
                        "train grpo (it writes the parquet), not by hand")
    return Item.model_validate_json(raw)
