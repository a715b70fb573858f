"""Helpers shared by the GRPO tests: a scripted verl server, the agent loop built like verl's worker does, and
verl's own per-row post-processing (imported by the test modules of this folder)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import torch

CALL = ('<think>look</think><tool_call>{{"name": "select_frames", '
        '"arguments": {{"video": {v}, "frames": {f}}}}}</tool_call>')
TOOL1 = CALL.format(v=1, f=[3, 9])
TOOL2 = CALL.format(v=2, f=[5, 7])
POINT_ANSWER = '<think>done</think><answer>{"VQ": 4, "MQ": 3, "TA": 5, "OA": 4}</answer><Reward>'
ANSWER = '<think>done</think><answer>{"VQ": "1", "MQ": "2", "TA": "tie", "OA": "1"}</answer><Reward><Reward>'


class ScriptedServer:
    """verl's LLMServerClient.generate contract: prompt ids (+ images) in, TokenOutput out; replays turns."""

    def __init__(self, tokenizer: Any, turns: list[str]) -> None:
        self.tokenizer, self.turns = tokenizer, turns
        self.calls: list[dict[str, Any]] = []

    async def generate(self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any],
                       image_data: list[Any] | None = None, **kw: Any) -> Any:
        from verl.workers.rollout.replica import TokenOutput

        self.calls.append({"request_id": request_id, "prompt_ids": prompt_ids, "images": image_data or [],
                           "sampling_params": sampling_params, **kw})
        text = self.turns[len(self.calls) - 1]
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [
            self.tokenizer.convert_tokens_to_ids("<|im_end|>")]
        return TokenOutput(token_ids=ids, log_probs=[-0.5] * len(ids), stop_reason="completed")


def grpo_snapshot(tmp_path: Path, items_jsonl: Path, mode: str = "pairwise") -> Path:
    from agentrm.train.grpo_config import GRPOConfig

    cfg = GRPOConfig.model_validate({
        "data": {"train": str(items_jsonl)}, "model": {"path": "unused"}, "output_dir": str(tmp_path / "out"),
        "episode": {"mode": mode, "overview": {"frames_per_video": 2},
                    "detail": {"levels": {"low": 56 * 56, "high": 56 * 56}},
                    "window": {"max_frames": 6, "max_visual_tokens": None},
                    "limits": {"max_new_tokens": 200, "max_context_tokens": 4096, "max_turns": 4}},
    })
    path = tmp_path / "agentrm_grpo.json"
    path.write_text(cfg.model_dump_json())
    return path


def make_loop(prepared_dir: Path, snapshot: Path, server: Any) -> Any:
    import hydra
    import verl.utils
    from omegaconf import OmegaConf
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap, ToolListWrap
    from verl.utils.dataset.rl_dataset import RLHFDataset

    import agentrm.train.verl.plugin  # noqa: F401  (what external_lib does in verl's workers)
    from agentrm.train.verl.agent_loop import AgentrmAgentLoop, agent_loop_yaml

    processor = verl.utils.hf_processor(str(prepared_dir))
    assert processor is not None and hasattr(processor, "get_rope_index")  # the plugin's fallback bound it
    cfg = OmegaConf.create({"actor_rollout_ref": {"rollout": {"prompt_length": 4096, "response_length": 200},
                                                  "model": {"path": str(prepared_dir)}},
                            "data": {"apply_chat_template_kwargs": {}, "mm_processor_kwargs": {}}})
    # exactly how AgentLoopWorker builds a loop from the agent_loop_config_path entry the launcher writes
    (entry,) = OmegaConf.create(agent_loop_yaml(snapshot))
    loop = hydra.utils.instantiate(config=entry, trainer_config=DictConfigWrap(cfg), server_manager=server,
                                   tokenizer=processor.tokenizer, processor=processor, hf_model_type="qwen2_5_vl",
                                   dataset_cls=RLHFDataset, data_config=DictConfigWrap(cfg.data),
                                   tools=ToolListWrap([]))
    assert isinstance(loop, AgentrmAgentLoop)
    return loop, processor


def verl_postprocess(processor: Any, output: Any) -> dict[str, Any]:
    """What verl's V1 worker does with each row before it reaches the trainer (AgentLoopWorkerTQ)."""
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker

    worker = object.__new__(AgentLoopWorker)
    worker.processor, worker.tokenizer, worker.mm_processor_kwargs = processor, processor.tokenizer, {}
    input_ids = torch.tensor(output.prompt_ids + output.response_ids)
    mm = worker._compute_multi_modal_inputs(output, input_ids)
    pos = worker._compute_position_ids(input_ids[None], torch.ones_like(input_ids)[None], mm,
                                       output.mm_processor_kwargs)
    return {"input_ids": input_ids, "mm": mm, "position_ids": pos}


def scripted_rollout(prepared_dir: Path, items_jsonl: Path, tmp_path: Path, item: int = 0, step: int = 3,
                     session: int = 1, turns: list[str] | None = None, pointwise: bool = False
                     ) -> tuple[list[Any], Any, Any, dict[str, Any]]:
    """(per-turn AgentLoopOutputs, server, processor, the row kwargs) of one scripted episode."""
    from agentrm.data.loaders import load_items
    from agentrm.models import load_processor
    from agentrm.train.grpo_data import build_rows

    snapshot = grpo_snapshot(tmp_path, items_jsonl, "pointwise" if pointwise else "pairwise")
    row = build_rows(load_items(items_jsonl).items, split_pairs=pointwise)[item]
    kwargs = {"raw_prompt": row["prompt"], "extra_info": row["extra_info"], "index": item, "global_steps": step,
              "session_id": session, "uid": f"u{item}"}

    async def go() -> tuple[Any, Any, Any]:
        server = ScriptedServer(load_processor(prepared_dir).tokenizer, turns or [TOOL1, TOOL2, ANSWER])
        loop, processor = make_loop(prepared_dir, snapshot, server)
        return await loop.run({"temperature": 1.0, "top_p": 1.0, "logprobs": True}, **kwargs), server, processor

    outputs, server, processor = asyncio.run(go())
    return outputs, server, processor, kwargs
