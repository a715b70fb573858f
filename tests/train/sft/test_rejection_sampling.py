"""Rejection sampling on scripted episodes whose correctness is known: the filter keeps exactly the fully correct,
well-formed samples, the stats say why the others were dropped, and a re-run resumes instead of resampling."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from agentrm.config import EpisodeConfig, SamplingConfig, load_config
from agentrm.data.schema import Item
from agentrm.engines.base import Completion, Context
from agentrm.engines.scripted import ScriptedEngine, ScriptTurn
from agentrm.errors import ConfigError
from agentrm.trace import Trace, TraceInputs, read_traces
from agentrm.train.rejection_sampling import SeededEngine, expand, judge, rs_sample
from agentrm.train_config import AcceptSection, RSSampleConfig
from tests.train.sft.conftest import answer, pair_items, small_config, tool

GOOD = {"VQ": "1", "MQ": "2", "TA": "tie", "OA": "1"}
HEAD_AGREES = [[1.0, 0.0, 0.5, 1.0], [0.0, 1.0, 0.5, 0.0]]  # video 1 higher on VQ, OA; video 2 on MQ
HEAD_DISAGREES = [[0.0, 0.0, 0.5, 1.0], [1.0, 1.0, 0.5, 0.0]]  # prefers video 2 on VQ


def scripts() -> dict[str, list[ScriptTurn]]:
    """p0: #0 correct, #1 wrong on MQ, #2 correct after a format error, #3 correct but the head disagrees on VQ.
    p1 (labels differ): every sample answers GOOD, so none is correct."""
    look = ScriptTurn(tool("select_frames", video=1, frames=[3, 9]))
    out = {
        "p0#0": [look, ScriptTurn(answer(GOOD), HEAD_AGREES)],
        "p0#1": [look, ScriptTurn(answer({**GOOD, "MQ": "1"}), HEAD_AGREES)],
        "p0#2": [ScriptTurn("<think>hm</think> no action"), ScriptTurn(answer(GOOD), HEAD_AGREES)],
        "p0#3": [look, ScriptTurn(answer(GOOD), HEAD_DISAGREES)],
    }
    for k in range(4):
        out[f"p1#{k}"] = [look, ScriptTurn(answer(GOOD), HEAD_AGREES)]
    return out


def rs_config(k: int = 4, **accept: Any) -> RSSampleConfig:
    return RSSampleConfig.model_validate({"k": k, "accept": accept, "score": {
        "engine": {"kind": "scripted"}, "episode": small_config().model_dump()}})


def run(items: list[Item], engine: Any, cfg: RSSampleConfig, out: Path) -> dict[str, Any]:
    return asyncio.run(rs_sample(items, engine, cfg, out))[1]


def test_filter_keeps_only_fully_correct_samples(sft_videos: list[str], tmp_path: Path) -> None:
    items = pair_items(sft_videos)  # p0 labels GOOD, p1 labels differ
    engine = ScriptedEngine(scripts(), factor=28)
    stats = run(items, engine, rs_config(), tmp_path)
    kept = read_traces(tmp_path / "kept.jsonl")
    assert sorted(t.id for t in kept) == ["p0#0", "p0#3"]
    assert all(t.inputs.meta["rs_source_id"] == "p0" for t in kept)
    assert stats["samples"] == 8 and stats["accepted"] == 2 and stats["acceptance"] == 0.25
    assert stats["per_item"]["p0"] == {"sampled": 4, "accepted": 2, "acceptance": 0.5}
    assert stats["zero_accepted"] == ["p1"]
    # p1's labels: VQ 2, MQ 2, TA 1, OA 2 -> GOOD is right on MQ only; p0#1 is wrong on MQ
    assert stats["reasons"] == {"wrong:VQ": 4, "wrong:TA": 4, "wrong:OA": 4, "format_error": 1, "wrong:MQ": 1}
    assert stats["per_dimension"] == {"VQ": 0.5, "MQ": 7 / 8, "TA": 0.5, "OA": 0.5}
    assert json.loads((tmp_path / "stats.json").read_text()) == stats

    calls = engine.calls
    again = run(items, engine, rs_config(), tmp_path)  # resumes: nothing is sampled twice
    assert engine.calls == calls and again == stats

    strict = run(items, engine, rs_config(require_head=True), tmp_path)  # refilter only
    assert strict["accepted"] == 1 and strict["reasons"]["head:VQ"] == 5  # p0#3 and the four p1 samples
    lenient = run(items, engine, rs_config(allow_format_errors=True), tmp_path)
    assert lenient["accepted"] == 3


def test_resume_after_a_partial_run(sft_videos: list[str], tmp_path: Path) -> None:
    items = pair_items(sft_videos)
    run(items, ScriptedEngine(scripts(), factor=28), rs_config(), tmp_path)
    lines = (tmp_path / "samples.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "samples.jsonl").write_text("".join(lines[:5]) + lines[5][:40])  # killed mid-write
    engine = ScriptedEngine(scripts(), factor=28)
    stats = run(items, engine, rs_config(), tmp_path)
    assert engine.calls == 3 * 2  # the 3 unfinished samples, 2 turns each
    assert stats["samples"] == 8 and stats["accepted"] == 2


class _Seeds:
    name, model_id, factor = "rec", "rec", 28

    def __init__(self) -> None:
        self.seeds: list[int | None] = []

    async def generate(self, context: Context, sampling: SamplingConfig, max_new_tokens: int) -> Completion:
        self.seeds.append(sampling.seed)
        return Completion("x", 1, 1, "stop")


def test_samples_get_distinct_reproducible_seeds() -> None:
    inner = _Seeds()
    engine = SeededEngine(inner)  # type: ignore[arg-type]
    sampling = SamplingConfig(temperature=0.7, seed=1)

    async def go() -> None:
        for sid in ("a#0", "a#1", "a#0"):
            await engine.generate(Context([], sample_id=sid, turn=1), sampling, 5)
        await engine.generate(Context([], sample_id="a#0", turn=2), sampling, 5)

    asyncio.run(go())
    s = inner.seeds
    assert s[0] == s[2] and len({s[0], s[1], s[3]}) == 3
    assert [i.id for i in expand([Item(id="x", mode="pointwise", prompt="p", videos=["v"])], 2)] == ["x#0", "x#1"]


def test_pointwise_tolerance_and_unlabelled_overall() -> None:
    ep = EpisodeConfig(mode="pointwise")
    trace = Trace(id="s#0", inputs=TraceInputs(sample_id="s#0", mode="pointwise", prompt="p", videos=["v"],
                                                dims=ep.dims, labels={"VQ": 4.0, "MQ": 3.0, "TA": 2.0, "OA": 4.0}),
                  verdicts={"VQ": 4.4, "MQ": 3.0, "TA": 2.0, "OA": 4.0}, termination="answer")
    assert not judge(trace, AcceptSection(), ep).accepted
    assert judge(trace, AcceptSection(pointwise_tolerance=0.5), ep).accepted
    trace.inputs.labels.pop("OA")
    assert judge(trace, AcceptSection(pointwise_tolerance=0.5), ep).reasons == ["no_overall_label"]


def test_config_refuses_identical_samples() -> None:
    with pytest.raises(ConfigError, match="temperature"):
        load_config(RSSampleConfig, None, ["k=4", "score.engine.kind=hf"])
    cfg = load_config(RSSampleConfig, "rs_sample.yaml")
    assert cfg.k >= 2 and cfg.score.engine.sampling.temperature > 0
