"""The learning-proof model builder and the experiment's plumbing (the full experiment is `slow`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentrm.synth.generate import generate, load_split, write_teacher_traces


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth-exp")
    generate(out, {"train": 3, "test": 2}, seed=1, min_s=60, max_s=70, workers=1)
    asyncio.run(write_teacher_traces(out, "train"))
    return out


def test_task_model_loads_and_tokenizes_the_task_compactly(data: Path, tmp_path: Path) -> None:
    from agentrm.models import ensure_reward_token, load_model_and_processor
    from agentrm.synth.model import build_model, task_texts
    from agentrm.trace import read_traces

    texts = task_texts([data / "teacher" / "train.jsonl"], data / "prompts")
    path = build_model(tmp_path / "m", texts)
    model, processor = load_model_and_processor(str(path), "float32", "cpu", "sdpa")
    tok = processor.tokenizer
    rid = ensure_reward_token(model, tok, "<Reward>")
    assert tok.convert_ids_to_tokens(rid) == "<Reward>" and rid < model.get_input_embeddings().weight.shape[0]
    turn = next(e.text for e in read_traces(data / "teacher" / "train.jsonl")[0].events if e.kind == "model")
    assert tok.decode(tok(turn)["input_ids"]) == turn
    assert len(tok(turn)["input_ids"]) < len(turn) / 2  # the task's words are single tokens
    assert sum(p.numel() for p in model.parameters()) < 2_500_000  # ships under ~10 MB in float32
    assert model.generation_config.suppress_tokens  # never writes vision placeholders


def test_untrained_model_runs_through_the_loop(data: Path, tmp_path: Path) -> None:
    """The eval/RS episode runner with a random model: every episode ends (format failures, no crash)."""
    from agentrm.synth.experiment import _episodes
    from agentrm.synth.model import build_model, task_texts
    from agentrm.trace import read_traces

    path = build_model(tmp_path / "m", task_texts([data / "teacher" / "train.jsonl"], data / "prompts"))
    items = load_split(data, "test")
    out = tmp_path / "runs.jsonl"
    asyncio.run(_episodes(str(path), items, out, "uniform", str(data / "prompts"), 0.0, 2, 0))
    traces = read_traces(out)
    assert len(traces) == 2 and all(t.termination not in ("error", "video_error") for t in traces)


@pytest.mark.slow
def test_quick_experiment_end_to_end(tmp_path: Path) -> None:
    from agentrm.synth.experiment import run_experiment

    assert run_experiment(out=tmp_path / "report", work=tmp_path / "work", quick=True) == 0
    text = (tmp_path / "report" / "README.md").read_text()
    assert "| teacher | 100" in text and (tmp_path / "report" / "eval" / "report.json").exists()


def test_report_on_teacher_runs(data: Path, tmp_path: Path) -> None:
    """The report's table and goal line from two runs (the teachers stand in for trained models)."""
    from agentrm.synth.experiment import QUICK
    from agentrm.synth.report import run_summary, write_experiment_report

    _, _ = asyncio.run(write_teacher_traces(data, "train", policy="uniform"))
    runs = tmp_path / "runs"
    runs.mkdir()
    for src, name in (("teacher_uniform", "uniform_rs_sft"), ("teacher", "rs_sft")):
        (runs / f"{name}.jsonl").write_text((data / src / "train.jsonl").read_text())
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "data" / "specs.jsonl").write_text((data / "specs.jsonl").read_text())
    files = [runs / "uniform_rs_sft.jsonl", runs / "rs_sft.jsonl"]
    readme = write_experiment_report(tmp_path / "out", files, work, {"total": 1.0}, QUICK, True, 0)
    text = readme.read_text()
    assert "| rs_sft | 100" in text and "QUICK SMOKE RUN" in text
    agentic = run_summary(files[1], {r["video"]: r["spec"] for r in
                                     map(__import__("json").loads, (data / "specs.jsonl").read_text().splitlines())})
    assert agentic["defect_seen"] == 1.0 and agentic["turns"] == 5.0 and agentic["answered"] == 1.0
    assert (tmp_path / "out" / "eval" / "report.md").exists()
