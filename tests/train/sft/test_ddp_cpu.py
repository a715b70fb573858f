"""Two-process DDP (gloo, CPU) through torchrun: the recipe's single wrapped forward, the summed logs and dev metric,
and a checkpoint that loads. Slow (two Python processes, ~30 s): run with --runslow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import agentrm


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tiny_qwen2_5_vl_dir: Path, pair_traces: dict[str, Path], tmp_path: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists() and shutil.which("torchrun") is None:
        pytest.skip("torchrun not found")
    out = tmp_path / "ddp"
    traces = pair_traces["qwen2_5_vl"]
    cmd = [str(torchrun if torchrun.exists() else "torchrun"), "--nproc_per_node", "2", "-m", "agentrm", "train",
           "cold-start", "--config", "cold_start.yaml", f"model.path={tiny_qwen2_5_vl_dir}", f"data.train=[{traces}]",
           f"data.dev=[{traces}]", "model.dtype=float32", "lora.r=4", "lora.alpha=8", "training.max_steps=2",
           "training.use_cpu=true", "training.bf16=false", "training.gradient_checkpointing=false",
           "training.gradient_accumulation_steps=1", "training.per_device_train_batch_size=3",
           f"training.output_dir={out}", "training.logging_steps=1", "training.save_steps=2",
           "training.eval_steps=2", "training.disable_tqdm=true", "training.plot=false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [m for m in logs if "loss" in m]
    assert [m["step"] for m in train] == [1, 2] and all("head_loss" in m for m in train)
    assert any("eval_head_acc" in m for m in logs)
    assert agentrm.load(out / "final").settings.format == "lora"
