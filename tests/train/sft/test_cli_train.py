"""`agentrm train` end to end on a tiny model: cold-start -> rs-sample (scripted) -> sft (continues the adapter and
head) -> export, through the CLI with the packaged configs and overrides."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

import agentrm
from agentrm.cli import main as cli
from tests.train.sft.conftest import GOOD_SCRIPT_VERDICTS, pair_items

TINY = ["model.dtype=float32", "lora.r=4", "lora.alpha=8", "training.max_steps=1", "training.use_cpu=true",
        "training.bf16=false", "training.per_device_train_batch_size=4", "training.disable_tqdm=true",
        "data.dev_fraction=0.0", "training.plot=false", "training.warmup_steps=0", "training.learning_rate=1e-3",
        "training.gradient_checkpointing=false"]


def test_cli_does_not_import_torch() -> None:
    code = ("import argparse, sys, agentrm.cli.train as t; t.add_arguments(argparse.ArgumentParser()); "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_train_stages_end_to_end(tiny_qwen2_5_vl_dir: Path, pair_traces: dict[str, Path], sft_videos: list[str],
                                 tmp_path: Path) -> None:
    cold = tmp_path / "cold"
    assert cli(["train", "cold-start", "--config", "cold_start.yaml", f"model.path={tiny_qwen2_5_vl_dir}",
                f"data.train=[{pair_traces['qwen2_5_vl']}]", f"training.output_dir={cold}", *TINY]) == 0

    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(i.model_dump()) + "\n" for i in pair_items(sft_videos)))
    look = '<think>look</think>\n<tool_call>{"name": "select_frames", "arguments": {"video": 1, "frames": [4]}}' \
           "</tool_call>"
    answer = f"<think>ok</think>\n<answer>{json.dumps(GOOD_SCRIPT_VERDICTS)}</answer><Reward><Reward>"
    script = tmp_path / "script.jsonl"
    script.write_text("".join(json.dumps({"sample_id": f"{sid}#{k}", "text": text}) + "\n"
                              for sid in ("p0", "p1") for k in range(2) for text in (look, answer)))
    rs = tmp_path / "rs"
    assert cli(["train", "rs-sample", "--input", str(items), "--out", str(rs), "--script", str(script),
                "--no-progress", "k=2", "score.episode.overview.frames_per_video=2"]) == 0
    stats = json.loads((rs / "stats.json").read_text())
    assert stats["accepted"] == 2 and stats["zero_accepted"] == ["p1"]  # p0's labels are the scripted answer

    sft = tmp_path / "sft"
    assert cli(["train", "sft", "--config", "rs_sft.yaml", f"model.path={cold / 'final'}",
                f"data.train=[{rs / 'kept.jsonl'}]", f"training.output_dir={sft}", *TINY]) == 0
    settings = json.loads((sft / "final" / "agentrm.json").read_text())
    assert settings["format"] == "lora" and settings["base_model"] == str(tiny_qwen2_5_vl_dir)  # still the base
    before, after = (load_file(str(d / "final" / "adapter_model.safetensors")) for d in (cold, sft))
    assert before.keys() == after.keys() and any(not torch.equal(before[k], after[k]) for k in before)
    head_before, head_after = (load_file(str(d / "final" / "reward_head.safetensors")) for d in (cold, sft))
    assert not torch.equal(head_before["net.weight"], head_after["net.weight"])  # continued, not re-initialised
    assert agentrm.load(sft / "final").settings.format == "lora"

    assert cli(["train", "export", "--checkpoint", str(sft / "final"), "--out", str(tmp_path / "merged")]) == 0
    assert agentrm.load(tmp_path / "merged").settings.format == "full"
