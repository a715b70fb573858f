"""Train/infer parity and loss masking on real tokenised examples.

The real loop (run_episode) runs a 3-turn script with an eviction against a recording scripted engine; the training
context of every turn must equal what the engine received at that turn (text, frame refs and pixels), and its
tokens must equal what the HF engine would encode for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import agentrm
from agentrm.data.schema import Item
from agentrm.engines.base import Context, ImagePart, TextPart
from agentrm.engines.hf import HFEngine
from agentrm.errors import DataError
from agentrm.prompting import default_prompts
from agentrm.train.data import IGNORE, TurnEncoder, drop_cot, evicts, plan_trace, trace_fetcher, turn_contexts
from agentrm.train.dataset import Collator, TraceDataset, plan_units
from agentrm.video import VideoPool
from tests.train.sft.conftest import (
    FACTORS,
    answer,
    evicting_config,
    pair_items,
    record,
    script_for,
    small_config,
    tool,
)

KINDS = list(FACTORS)


@pytest.fixture(scope="module")
def models(tiny_model_dirs: dict[str, Path]) -> dict[str, Any]:
    return {kind: agentrm.load(tiny_model_dirs[kind]) for kind in KINDS}


def same_context(a: Context, b: Context) -> None:
    assert (a.sample_id, a.turn) == (b.sample_id, b.turn)
    assert [m.role for m in a.messages] == [m.role for m in b.messages]
    for ma, mb in zip(a.messages, b.messages, strict=True):
        assert len(ma.parts) == len(mb.parts)
        for pa, pb in zip(ma.parts, mb.parts, strict=True):
            assert type(pa) is type(pb)
            if isinstance(pa, TextPart):
                assert pa == pb
            else:
                assert isinstance(pb, ImagePart) and pa.ref == pb.ref and np.array_equal(pa.pixels, pb.pixels)


@pytest.mark.parametrize("kind", KINDS)
def test_training_contexts_and_tokens_are_what_the_loop_rendered(kind: str, sft_videos: list[str],
                                                                  models: dict[str, Any]) -> None:
    item = pair_items(sft_videos)[0]
    rec = record([item], {item.id: script_for(item.labels)}, evicting_config(), FACTORS[kind])
    trace = rec.traces[0]
    assert trace.termination == "answer" and evicts(trace)
    with VideoPool() as pool:
        turns = turn_contexts(trace, trace_fetcher(trace, pool, FACTORS[kind]), default_prompts())
    seen = rec.contexts[item.id]
    assert [t.turn for t in turns] == [1, 2, 3] and len(seen) == 3
    for train_turn, loop_ctx in zip(turns, seen, strict=True):
        same_context(train_turn.context, loop_ctx)
    assert "no longer in memory" in turns[2].context.messages[3].text  # turn 1's frames were evicted by turn 3
    rm = models[kind]
    engine = HFEngine(rm)
    encoder = TurnEncoder(rm.processor, "<Reward>")
    for train_turn, loop_ctx in zip(turns, seen, strict=True):
        row = encoder.encode(train_turn.context, train_turn.completion, lm=True, head=train_turn.answer).tensors
        ref = engine.encode(loop_ctx, train_turn.completion)
        assert torch.equal(row["input_ids"][:-1], ref["input_ids"][0])
        assert int(row["input_ids"][-1]) == encoder.eot_id  # the token generation stopped on
        assert torch.equal(row["pixel_values"], ref["pixel_values"])
        assert torch.equal(row["image_grid_thw"], ref["image_grid_thw"])
        assert torch.equal(row["mm_token_type_ids"][:-1], ref["mm_token_type_ids"][0])
        prompt_len = int(ref["completion_start"])
        assert encoder.prompt_ids_fast(train_turn.context) == ref["input_ids"][0, :prompt_len].tolist()


@pytest.mark.parametrize("kind", KINDS)
def test_only_model_written_tokens_are_labelled(kind: str, pair_traces: dict[str, Path],
                                                models: dict[str, Any]) -> None:
    from agentrm.trace import read_traces

    trace = read_traces(pair_traces[kind])[0]
    rm = models[kind]
    encoder = TurnEncoder(rm.processor, "<Reward>")
    tok = rm.processor.tokenizer
    with VideoPool() as pool:
        turns = turn_contexts(trace, trace_fetcher(trace, pool, FACTORS[kind]), default_prompts())
    image_pad = tok.convert_tokens_to_ids(rm.processor.image_token)
    for turn in turns:
        row = encoder.encode(turn.context, turn.completion, lm=True, head=turn.answer).tensors
        ids, labels = row["input_ids"], row["labels"]
        labelled = (labels != IGNORE).nonzero().flatten()
        n_comp = len(encoder.completion_ids(turn.completion))
        assert labelled.tolist() == list(range(len(ids) - n_comp, len(ids)))  # the completion, nothing else
        assert torch.equal(labels[labelled], ids[labelled])
        assert tok.decode(ids[labelled]) == turn.completion + "<|im_end|>"
        assert int((ids == image_pad).sum()) > 0 and not bool((labels == image_pad).any())
        reward = row["reward_mask"]
        if turn.answer:
            # the system prompt names <Reward> too; only the two the model wrote are read
            assert int((ids[: len(ids) - n_comp] == encoder.reward_id).sum()) > 0
            assert int(reward.sum()) == 2 and bool((ids[reward] == encoder.reward_id).all())
            assert int(reward.nonzero().min()) >= len(ids) - n_comp
        else:
            assert not bool(reward.any())


def test_trajectory_rows_match_per_turn_rows_and_fall_back_on_eviction(
    sft_videos: list[str], models: dict[str, Any]
) -> None:
    item = pair_items(sft_videos)[0]
    script = {item.id: script_for(item.labels)}
    plain = record([item], script, small_config(evict=False), 28).traces[0]
    evicted = record([item], script, evicting_config(), 28).traces[0]
    encoder = TurnEncoder(models["qwen2_5_vl"].processor, "<Reward>")
    prompts = default_prompts()
    plans, used = plan_trace(0, plain, encoder, prompts, trajectory=True)
    assert used and len(plans) == 1 and len(plans[0].spans) == 2
    assert not plan_trace(0, evicted, encoder, prompts, trajectory=True)[1]
    with VideoPool() as pool:
        turns = turn_contexts(plain, trace_fetcher(plain, pool, 28), prompts)
    traj = encoder.encode(turns[-1].context, turns[-1].completion, lm=True, head=True, spans=plans[0].spans).tensors
    covered = torch.zeros_like(traj["labels"], dtype=torch.bool)
    for turn in turns:
        row = encoder.encode(turn.context, turn.completion, lm=True, head=turn.answer).tensors
        n = len(row["input_ids"])
        assert torch.equal(traj["input_ids"][:n], row["input_ids"])  # same prefix: same causal context
        mine = row["labels"] != IGNORE
        assert torch.equal(traj["labels"][:n][mine], row["labels"][mine])
        covered[:n] |= mine
    assert torch.equal(covered, traj["labels"] != IGNORE)  # and nothing else is labelled
    assert int(traj["reward_mask"].sum()) == 2


def test_cot_dropping_rows(pair_traces: dict[str, Path], models: dict[str, Any]) -> None:
    from agentrm.trace import read_traces

    dropped_text = drop_cot("<think>a\nb</think>\n<answer>{}</answer><Reward>")
    assert dropped_text == "<think></think>\n<answer>{}</answer><Reward>"
    traces = read_traces(pair_traces["qwen2_5_vl"])
    encoder = TurnEncoder(models["qwen2_5_vl"].processor, "<Reward>")
    units, stats = plan_units(traces, encoder, default_prompts(), trajectory=False, pointwise_bt=False,
                              max_length=None)
    assert stats.units == {"lm": 4, "pair": 2}
    dims = ["VQ", "MQ", "TA", "OA"]
    pair_index = next(i for i, u in enumerate(units) if u.kind == "pair")
    always = TraceDataset(traces, units, encoder, default_prompts(), dims, cot_drop_prob=1.0)[pair_index]
    never = TraceDataset(traces, units, encoder, default_prompts(), dims, cot_drop_prob=0.0)[pair_index]
    assert len(never["rows"]) == 1 and never["rows"][0].reward_count == 2
    full, dropped = always["rows"]
    assert full.reward_count == 0 and bool((full.tensors["labels"] != IGNORE).any())  # LM still on the full CoT
    assert dropped.reward_count == 2 and not bool((dropped.tensors["labels"] != IGNORE).any())
    tok = encoder.tokenizer
    full_ids = full.tensors["input_ids"]
    assert "<think>video 1 is sharper</think>" in tok.decode(full_ids[full.tensors["labels"] != IGNORE])
    tail = tok.decode(dropped.tensors["input_ids"][len(full_ids) - 80:])
    final_text = [e for e in traces[units[pair_index].rows[0].trace].events if e.kind == "model"][-1].text
    assert tail.endswith("<think></think>\n" + final_text.split("\n", 1)[1] + "<|im_end|>")
    assert always["pairs"] == [(0, 1, [1.0, -1.0, 0.0, 1.0], [True] * 4)]  # labels 1, 2, tie, 1

    batch = Collator(pad_id=0, num_dims=4)([never, always, TraceDataset(
        traces, units, encoder, default_prompts(), dims)[0]])
    assert batch["input_ids"].shape[0] == 4 and batch["pair_index"].tolist() == [[0, 1], [2, 3]]
    assert int(batch["reward_mask"].sum()) == 4
    assert batch["labels"][batch["attention_mask"] == 0].eq(IGNORE).all()
    grid = batch["image_grid_thw"]
    assert batch["pixel_values"].shape[0] == int((grid[:, 0] * grid[:, 1] * grid[:, 2]).sum())


def test_pointwise_units(sft_videos: list[str], models: dict[str, Any]) -> None:
    cfg = small_config()
    cfg.mode = "pointwise"
    items = [Item(id=f"s{k}", mode="pointwise", prompt="same prompt", videos=[sft_videos[0]],
                  labels={"VQ": v, "MQ": 3.0, "TA": 2.0, "OA": v}) for k, v in enumerate([5.0, 2.0, 4.0])]
    scripts = {i.id: [tool("select_frames", video=1, frames=[1, 2]),
                      answer({"VQ": 4, "MQ": 3, "TA": 2, "OA": 4}, n_reward=1)] for i in items}
    traces = record(items, scripts, cfg, 28).traces
    encoder = TurnEncoder(models["qwen2_5_vl"].processor, "<Reward>")
    dims = ["VQ", "MQ", "TA", "OA"]
    units, _ = plan_units(traces, encoder, default_prompts(), trajectory=False, pointwise_bt=False, max_length=None)
    ds = TraceDataset(traces, units, encoder, default_prompts(), dims)
    point = ds[next(i for i, u in enumerate(units) if u.kind == "point")]
    assert point["points"] == [(0, [1.0, 0.5, 0.25, 1.0], [True] * 4)]  # (label - 1) / 4
    units, stats = plan_units(traces, encoder, default_prompts(), trajectory=False, pointwise_bt=True,
                              max_length=None)
    assert stats.units == {"lm": 4, "point_pair": 1}  # s0 vs s1; s2 is the odd one out (LM only)
    ds = TraceDataset(traces, units, encoder, default_prompts(), dims)
    pair = ds[next(i for i, u in enumerate(units) if u.kind == "point_pair")]
    assert len(pair["rows"]) == 2 and pair["pairs"] == [(0, 1, [1.0, 0.0, 0.0, 1.0], [True] * 4)]


def test_traces_from_another_model_family_are_refused(pair_traces: dict[str, Path],
                                                      models: dict[str, Any]) -> None:
    from agentrm.trace import read_traces

    traces = read_traces(pair_traces["qwen2_5_vl"])  # frames sized for factor 28
    encoder = TurnEncoder(models["qwen3_vl"].processor, "<Reward>")  # factor 32
    with pytest.raises(DataError, match="factor 32"):
        TraceDataset(traces, [], encoder, default_prompts(), ["OA"])


def test_format_error_turns_are_context_not_targets(sft_videos: list[str], models: dict[str, Any]) -> None:
    item = pair_items(sft_videos)[0]
    script = {item.id: ["<think>hm</think> no action", answer(item.labels)]}
    trace = record([item], script, small_config(), 28).traces[0]
    assert trace.termination == "answer"
    encoder = TurnEncoder(models["qwen2_5_vl"].processor, "<Reward>")
    units, stats = plan_units([trace], encoder, default_prompts(), trajectory=False, pointwise_bt=False,
                              max_length=None)
    assert stats.units == {"pair": 1}  # turn 1 is not a target
    row = TraceDataset([trace], units, encoder, default_prompts(), ["VQ", "MQ", "TA", "OA"])[0]["rows"][0]
    text = encoder.tokenizer.decode(row.tensors["input_ids"])
    assert "no action" in text and "Format error (no_action)" in text  # but the model sees it and the feedback
    assert "no action" not in encoder.tokenizer.decode(row.tensors["input_ids"][row.tensors["labels"] != IGNORE])
