"""Items -> verl parquet rows, read back through verl's own RLHFDataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrm.data.schema import Item
from agentrm.train.grpo_data import build_rows, convert, item_from_row, split_pair


def test_rows_carry_the_item_and_labels(grpo_items: list[Item]) -> None:
    rows = build_rows(grpo_items)
    assert [r["agent_name"] for r in rows] == ["agentrm", "agentrm"]
    assert rows[0]["data_source"] == "agentrm/pairwise"
    assert item_from_row(rows[1]["extra_info"]) == grpo_items[1]
    assert [r["extra_info"]["index"] for r in rows] == [0, 1]
    assert rows[0]["extra_info"]["pair_id"] == "pair-a"


def test_split_pairs_keeps_partners_adjacent_under_shuffle(grpo_items: list[Item]) -> None:
    many = [i.model_copy(update={"id": f"{i.id}-{k}"}) for k in range(10) for i in grpo_items]
    rows = build_rows(many, split_pairs=True, shuffle=True, seed=3)
    assert len(rows) == 40
    for a, b in zip(rows[::2], rows[1::2], strict=True):
        assert a["extra_info"]["pair_id"] == b["extra_info"]["pair_id"]
        assert (a["extra_info"]["pair_role"], b["extra_info"]["pair_role"]) == ("1", "2")
    assert [r["extra_info"]["pair_id"] for r in rows[::2]] != [i.id for i in many]  # shuffled at pair level
    one = split_pair(grpo_items[0])
    assert [i.videos for i in one] == [[grpo_items[0].videos[0]], [grpo_items[0].videos[1]]]
    assert one[0].meta["pair_labels"] == grpo_items[0].labels


@pytest.mark.verl
def test_parquet_reads_back_through_verl_dataset(items_jsonl: Path, tmp_path: Path, prepared_dir: Path) -> None:
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from agentrm.models import load_processor

    path, n = convert(items_jsonl, tmp_path / "train.parquet")
    assert n == 2
    processor = load_processor(prepared_dir)
    data_cfg = OmegaConf.create({"prompt_key": "prompt", "max_prompt_length": 4096, "filter_overlong_prompts": False,
                                 "return_raw_chat": True, "truncation": "error", "dataloader_num_workers": 0})
    ds = RLHFDataset(data_files=[str(path)], tokenizer=processor.tokenizer, processor=processor, config=data_cfg)
    assert len(ds) == 2
    row = ds[1]
    assert row["agent_name"] == "agentrm" and row["index"] == 1
    assert row["raw_prompt"][0]["role"] == "user"
    assert item_from_row(row["extra_info"]).id == "pair-b"
    assert row["reward_model"]["ground_truth"]
