"""agentrm's episode loop inside verl's agent-loop API, on CPU: a scripted server manager stands in for vLLM, and
verl's own post-processing (processor re-run, M-RoPE position ids) checks every per-turn row."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from grpo_helpers import grpo_snapshot, make_loop, scripted_rollout, verl_postprocess

pytestmark = pytest.mark.verl

def test_scripted_episode_becomes_per_turn_rows(prepared_dir: Path, items_jsonl: Path, tmp_path: Path) -> None:
    outputs, server, processor, _ = scripted_rollout(prepared_dir, items_jsonl, tmp_path)
    tok = processor.tokenizer
    assert len(outputs) == 3 == len(server.calls)
    assert len({c["request_id"] for c in server.calls}) == 1  # sticky session for the prefix cache
    assert server.calls[0]["sampling_params"]["max_tokens"] == 200
    pad = tok.convert_tokens_to_ids("<|image_pad|>")
    reward_id = tok.convert_tokens_to_ids("<Reward>")
    n_images = [len(c["images"]) for c in server.calls]
    assert n_images == [4, 6, 6]  # overview 2+2; + turn-1 group; turn-2 group evicts turn-1's (window of 6)
    assert "no longer in memory" not in tok.decode(outputs[1].prompt_ids)
    assert "no longer in memory: video 1 frames 3" in tok.decode(outputs[2].prompt_ids)  # turn-1 frames: a stub
    for out, call in zip(outputs, server.calls, strict=True):
        assert out.prompt_ids == call["prompt_ids"]
        assert out.response_mask == [1] * len(out.response_ids)  # only model tokens are responses
        assert out.response_logprobs == [-0.5] * len(out.response_ids)
        post = verl_postprocess(processor, out)
        grid = post["mm"]["image_grid_thw"]
        assert grid.shape[0] == len(call["images"]) == len(out.multi_modal_data["images"])
        merged = int((grid.prod(-1) // 4).sum())
        assert merged == out.prompt_ids.count(pad)  # every placeholder has its image, and no more
        assert post["position_ids"].shape == (1, 4, len(post["input_ids"]))
    # turn 3's context is not turn 2's context + tokens: the window rewrote it (evicted turn-1 frames)
    assert outputs[2].prompt_ids[: len(outputs[1].prompt_ids)] != outputs[1].prompt_ids
    assert outputs[-1].response_ids.count(reward_id) == 2
    last = outputs[-1].extra_fields
    assert last["agentrm_answer_row"] is True
    summary = json.loads(last["agentrm_summary"])
    assert summary["termination"] == "answer" and summary["tool_calls_ok"] == 2
    traces = list((tmp_path / "out" / "rollouts" / "step_000003").glob("*.jsonl"))
    assert len(traces) == 1
    from agentrm.trace import read_traces

    (trace,) = read_traces(traces[0])
    assert trace.id == "pair-a@3.1" and trace.termination == "answer" and trace.num_turns == 3


class TinyHFServer:
    """The same contract served by the tiny Qwen2.5-VL itself: the prompt ids and images the loop sends must be a
    valid model input (placeholder counts vs pixel grids), and the rows must hold exactly the generated tokens."""

    def __init__(self, model: Any, processor: Any, cap: int = 12) -> None:
        self.model, self.processor, self.cap = model, processor, cap
        self.generated: list[list[int]] = []

    async def generate(self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any],
                       image_data: list[Any] | None = None, **kw: Any) -> Any:
        from verl.workers.rollout.replica import TokenOutput

        ids = torch.tensor([prompt_ids])
        inputs: dict[str, Any] = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        if image_data:
            ip = self.processor.image_processor(images=image_data, do_resize=False, return_tensors="pt")
            inputs.update(pixel_values=ip["pixel_values"], image_grid_thw=ip["image_grid_thw"])
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=min(self.cap, sampling_params["max_tokens"]),
                                      do_sample=False)
        new = out[0, ids.shape[1]:].tolist()
        self.generated.append(new)
        return TokenOutput(token_ids=new, stop_reason="completed")


def test_tiny_model_backed_episode(prepared_dir: Path, items_jsonl: Path, tmp_path: Path) -> None:
    from agentrm.data.loaders import load_items
    from agentrm.models import load_model_and_processor
    from agentrm.train.grpo_data import build_rows

    snapshot = grpo_snapshot(tmp_path, items_jsonl)
    row = build_rows(load_items(items_jsonl).items)[1]
    model, proc = load_model_and_processor(prepared_dir, dtype="float32", device="cpu")
    server = TinyHFServer(model, proc)

    async def go() -> tuple[Any, Any]:
        loop, processor = make_loop(prepared_dir, snapshot, server)
        return await loop.run({"temperature": 0.0}, raw_prompt=row["prompt"], extra_info=row["extra_info"],
                              index=1, global_steps=0, session_id=0), processor

    outputs, processor = asyncio.run(go())
    # a random tiny model never answers in format: every turn is a row, until the turn limit ends the episode
    assert len(outputs) == len(server.generated) == 4
    summary = json.loads(outputs[-1].extra_fields["agentrm_summary"])
    assert summary["termination"] in ("max_turns", "format") and summary["parse_errors"] >= 1
    assert outputs[-1].extra_fields["agentrm_answer_row"] is False
    for out, gen in zip(outputs, server.generated, strict=True):
        assert out.response_ids == gen and out.response_mask == [1] * len(gen)
        post = verl_postprocess(processor, out)
        assert post["mm"]["image_grid_thw"].shape[0] == len(out.multi_modal_data["images"]) == 4
