"""2-step smoke runs of the cold-start recipe on the tiny Qwen2.5-VL and Qwen3-VL (CPU): the loss is finite, the
LoRA weights, the <Reward> embedding row and the head change, frozen parts do not; resume continues the step count;
the output loads with `agentrm.load`; the LoRA merge/export keeps the rewards."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import agentrm
from agentrm.config import load_config
from agentrm.prompting import default_prompts
from agentrm.trace import read_traces
from agentrm.train.cold_start import main
from agentrm.train.data import TurnEncoder, trace_fetcher, turn_contexts
from agentrm.train.model import export_merged
from agentrm.train_config import TrainConfig
from agentrm.video import VideoPool
from tests.train.sft.conftest import FACTORS


def config(model: Path, traces: Path, out: Path, *extra: str) -> TrainConfig:
    return load_config(TrainConfig, None, [
        f"model.path={model}", f"data.train=[{traces}]", "model.dtype=float32", f"training.output_dir={out}",
        "lora.r=4", "lora.alpha=8", "lora.dropout=0.0", "training.max_steps=2", "training.logging_steps=1",
        "training.learning_rate=1e-2", "training.per_device_train_batch_size=6", "training.use_cpu=true",
        "training.save_steps=2", "training.disable_tqdm=true", "training.lr_scheduler_type=constant", *extra])


def metrics(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def answer_inputs(rm: Any, traces: Path, factor: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The answer turn of the first trace as model inputs, and its head mask (the model-written <Reward>s)."""
    trace = read_traces(traces)[0]
    with VideoPool() as pool:
        turn = turn_contexts(trace, trace_fetcher(trace, pool, factor), default_prompts())[-1]
    row = TurnEncoder(rm.processor, "<Reward>").encode(turn.context, turn.completion, lm=False, head=True).tensors
    inputs = {k: (v.unsqueeze(0) if k in ("input_ids", "attention_mask", "mm_token_type_ids") else v)
              for k, v in row.items() if k not in ("labels", "reward_mask")}
    return inputs, row["reward_mask"].unsqueeze(0)


@torch.no_grad()
def rewards(rm: Any, inputs: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    return rm.head(rm.hidden_states(inputs), mask, inputs["attention_mask"])


def embedding(rm: Any, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return rm.model.get_input_embeddings()(torch.tensor(ids)).clone()


@pytest.mark.parametrize("kind", list(FACTORS))
def test_two_step_lora_smoke(kind: str, tiny_model_dirs: dict[str, Path], pair_traces: dict[str, Path],
                             tmp_path: Path) -> None:
    out = tmp_path / "run"
    final = main(config(tiny_model_dirs[kind], pair_traces[kind], out))
    logs = [m for m in metrics(out) if "loss" in m]
    assert [m["step"] for m in logs] == [1, 2]
    assert all(math.isfinite(m["loss"]) and math.isfinite(m["lm_loss"]) for m in logs)
    assert all(m["head_loss"] > 0 and 0 <= m["head_acc"] <= 1 for m in logs)  # every unit in one batch
    assert logs[1]["lm_loss"] < logs[0]["lm_loss"]
    assert (out / "curves.png").stat().st_size > 1000

    base = agentrm.load(tiny_model_dirs[kind])  # the untouched model, reward row at its init, fresh head
    tuned = agentrm.load(final)
    assert tuned.settings.format == "lora" and tuned.settings.dims == ["VQ", "MQ", "TA", "OA"]
    assert tuned.settings.episode is not None and tuned.settings.episode["window"]["max_frames"] == 6
    rid = tuned.reward_token_id
    assert rid == base.reward_token_id
    others = [0, 5, 100, rid - 1]
    assert not torch.allclose(embedding(tuned, [rid]), embedding(base, [rid]))  # <Reward> row trained
    assert torch.equal(embedding(tuned, others), embedding(base, others))  # no other row
    lora_b = {k: v for k, v in load_file(str(final / "adapter_model.safetensors")).items() if "lora_B" in k}
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b.values())  # LoRA B starts at zero
    assert not any("visual" in k for k in load_file(str(final / "adapter_model.safetensors")))
    for (name, p), (_, q) in zip(base.head.named_parameters(), tuned.head.named_parameters(), strict=True):
        assert not torch.equal(p, q), name
    base_params = dict(base.model.named_parameters())
    for name, p in tuned.model.get_base_model().named_parameters():
        if "visual" in name or ("base_layer" in name and "language_model.layers.0.self_attn.q_proj" in name):
            key = name.replace(".base_layer", "")
            assert torch.equal(p, base_params[key]), name  # frozen: vision tower, base weights under LoRA

    inputs, mask = answer_inputs(tuned, pair_traces[kind], FACTORS[kind])
    r = rewards(tuned, inputs, mask)
    assert r.shape == (2, 4) and torch.isfinite(r).all()
    merged = agentrm.load(export_merged(str(final), str(tmp_path / "merged")))
    assert merged.settings.format == "full"
    assert torch.allclose(rewards(merged, inputs, mask), r, atol=1e-4)


def test_resume_continues_the_step_count(tiny_model_dirs: dict[str, Path], pair_traces: dict[str, Path],
                                         tmp_path: Path) -> None:
    model, traces = tiny_model_dirs["qwen2_5_vl"], pair_traces["qwen2_5_vl"]
    extra = ["training.max_steps=4", "training.per_device_train_batch_size=2"]
    main(config(model, traces, tmp_path / "a", *extra))
    resumed = main(config(model, traces, tmp_path / "b", *extra,
                          f"training.resume_from_checkpoint={tmp_path / 'a' / 'checkpoint-2'}"))
    steps = [m["step"] for m in metrics(tmp_path / "b") if "loss" in m]
    assert steps == [3, 4]  # continued, not restarted
    state = json.loads((tmp_path / "b" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    a, b = (load_file(str(p / "adapter_model.safetensors")) for p in (tmp_path / "a" / "final", resumed))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k  # same weights as the uninterrupted run
    ha, hb = (load_file(str(p / "reward_head.safetensors")) for p in (tmp_path / "a" / "final", resumed))
    assert all(torch.allclose(ha[k], hb[k], atol=1e-6) for k in ha)


def test_full_finetune_resume_and_pooling_head(tiny_model_dirs: dict[str, Path], pair_traces: dict[str, Path],
                                               tmp_path: Path) -> None:
    model, traces = tiny_model_dirs["qwen3_vl"], pair_traces["qwen3_vl"]
    full = ["lora.enabled=false", "training.save_steps=1", "loss.pairwise=margin_bt", "loss.label_smoothing=0.1",
            "training.per_device_train_batch_size=3", "training.gradient_checkpointing=true"]
    final = main(config(model, traces, tmp_path / "full", *full, f"data.dev=[{traces}]", "training.eval_steps=1"))
    dev = [m for m in metrics(tmp_path / "full") if "eval_head_acc" in m]
    assert dev and all(0.0 <= m["eval_head_acc"] <= 1.0 and "eval_head_acc_OA" in m for m in dev)
    assert all(math.isfinite(m["eval_lm_loss"]) for m in dev)
    base, tuned = agentrm.load(model), agentrm.load(final)
    assert tuned.settings.format == "full"
    changed = {n for n, p in tuned.model.named_parameters()
               if not torch.equal(p, dict(base.model.named_parameters())[n])}
    assert any("language_model.layers" in n for n in changed) and not any("visual" in n for n in changed)
    resumed = main(config(model, traces, tmp_path / "resumed", *full,
                          f"training.resume_from_checkpoint={tmp_path / 'full' / 'checkpoint-1'}"))
    assert [m["step"] for m in metrics(tmp_path / "resumed") if "loss" in m] == [2]
    again = agentrm.load(resumed)
    for (name, p), (_, q) in zip(tuned.model.named_parameters(), again.model.named_parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6), name

    final = main(config(model, traces, tmp_path / "pool", "head.type=attn_query", "head.layers=[-2,-1]",
                        "head.num_heads=2", "head.mlp_hidden=16", "loss.pairwise=ce", "training.max_steps=1",
                        "data.mode=trajectory"))
    settings = json.loads((final / "agentrm.json").read_text())
    assert settings["head"]["type"] == "attn_query" and settings["head"]["layers"] == [-2, -1]
    scale = load_file(str(final / "train_state.safetensors"))["logit_scale"]
    assert not torch.isclose(scale, torch.tensor([math.log(1 / 0.07)])).all()  # the learnable scale moved
    merged = export_merged(str(final), str(tmp_path / "pool-merged"))
    assert json.loads((merged / "agentrm.json").read_text())["format"] == "full"
