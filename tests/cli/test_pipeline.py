"""The documented pipeline: a VideoGen-RewardBench CSV -> `agentrm score` (agentic and the same-budget uniform
baseline, scripted model) -> `agentrm eval` with both runs side by side."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from agentrm.cli import main
from agentrm.trace import read_traces
from agentrm.video.synthetic import write_index_video

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks"
# The scripted "model" answers "1" on every dimension with head rewards that prefer video 1.
ANSWER = '<answer>{"VQ": "1", "MQ": "1", "TA": "1", "OA": "1"}</answer><Reward><Reward>'
CALL = ('<tool_call>{"name": "select_range", "arguments": {"video": 2, "start_s": 0, "end_s": 1.5, "count": 3}}'
        "</tool_call>")


def test_score_then_eval_agentic_vs_uniform(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "videogen_rewardbench.csv", tmp_path / "bench.csv")
    (tmp_path / "videos").mkdir()
    for i in range(1, 7):
        write_index_video(tmp_path / "videos" / f"v{i}.mp4", num_frames=16, fps=8, size=(128, 72))
    rewards = [[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]
    (tmp_path / "agentic.jsonl").write_text(json.dumps({"text": CALL}) + "\n"
                                            + json.dumps({"text": ANSWER, "rewards": rewards}) + "\n")
    (tmp_path / "uniform.jsonl").write_text(json.dumps({"text": ANSWER, "rewards": rewards}) + "\n")
    common = ["--input", str(tmp_path / "bench.csv"), "--video-root", str(tmp_path), "--no-progress"]
    assert main(["replay", *common, "--script", str(tmp_path / "agentic.jsonl"),
                 "--out", str(tmp_path / "runs" / "agentic.jsonl")]) == 0
    assert main(["replay", *common, "--script", str(tmp_path / "uniform.jsonl"), "--policy", "uniform",
                 "--out", str(tmp_path / "runs" / "uniform.jsonl")]) == 0
    agentic = read_traces(tmp_path / "runs" / "agentic.jsonl")
    uniform = read_traces(tmp_path / "runs" / "uniform.jsonl")
    assert all(t.termination == "answer" for t in agentic + uniform)
    assert {t.policy for t in uniform} == {"uniform"} and all(t.num_turns == 1 for t in uniform)
    assert all(t.frames_viewed == 3 for t in agentic)
    out = tmp_path / "report"
    assert main(["eval", "--traces", str(tmp_path / "runs" / "agentic.jsonl"), "--traces",
                 str(tmp_path / "runs" / "uniform.jsonl"), "--benchmark", str(tmp_path / "bench.csv"),
                 "--out", str(out), "--n-boot", "50", "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    runs = {r["policy"]: r for r in report["runs"]}
    assert set(runs) == {"agentic", "uniform"}
    # always "1" / video 1 preferred: accuracy without ties = share of non-tie OA labels that say video 1
    labels = [t.inputs.labels["OA"] for t in agentic]
    expected = sum(lab == "1" for lab in labels) / sum(lab != "tie" for lab in labels)
    for run in runs.values():
        oa = next(d for d in run["pairwise"] if d["dim"] == "OA")
        assert oa["verdict_no_ties"]["value"] == oa["margin_no_ties"]["value"] == expected
        assert run["n_episodes"] == len(agentic)
    assert (out / "report.md").read_text().strip()
    assert [p for p in out.glob("*.png") if p.stat().st_size > 1000]
