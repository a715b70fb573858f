"""`agentrm eval` as a user runs it: arguments -> report folder, exit codes, argument errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from agentrm.cli import COMMANDS
from agentrm.cli import eval as eval_cli
from agentrm.errors import ConfigError, DataError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "benchmarks"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="agentrm eval")
    eval_cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_registered() -> None:
    assert COMMANDS["eval"][0] == "agentrm.cli.eval"


def test_scores_against_a_benchmark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Another model's scores joined with benchmark labels by id; labels in the CSV are ignored then."""
    scores = tmp_path / "other_model.csv"
    scores.write_text("id,score_A,score_B\np1,1.0,0.0\np2,0.3,0.3\np3,0.0,2.0\n")
    out = tmp_path / "report"
    args = parse(
        [
            "--scores",
            str(scores),
            "--benchmark",
            str(FIXTURES / "agentrm_pairwise.jsonl"),
            "--out",
            str(out),
            "--n-boot",
            "50",
            "--eps",
            "0.1",
            "--no-progress",
        ]
    )
    assert eval_cli.run(args) == 0
    report = json.loads((out / "report.json").read_text())
    # only OA is scored: the benchmark's VQ/MQ/TA/Safety labels are not held against the model
    assert [d["dim"] for d in report["runs"][0]["pairwise"]] == ["OA"]
    assert any("VQ, MQ, TA, Safety not evaluated" in n for n in report["notes"])
    oa = report["runs"][0]["pairwise"][0]
    assert report["runs"][0]["name"] == "other_model"
    # p1 label 1, m=+1 right; p2 tie, m=0 -> tie at eps .1 right; p3 label 2, m=-2 right
    assert oa["margin_no_ties"]["value"] == 1.0 and oa["margin_ties"]["value"] == 1.0
    assert oa["margin_ties"]["eps"] == 0.1 and oa["margin_ties"]["eps_tuned"] is False
    assert report["benchmark_format"] == "agentrm" and (out / "report.md").is_file()
    assert (out / "reward_hist.png").stat().st_size > 1000
    assert "other_model" in capsys.readouterr().out


def test_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        parse(["--out", str(tmp_path), "--eps", "VQ=high"])
    with pytest.raises(SystemExit):
        parse(["--out", str(tmp_path), "--length-buckets", "60,long"])
    with pytest.raises(DataError, match="at least one --traces"):
        eval_cli.run(parse(["--out", str(tmp_path)]))
    with pytest.raises(ConfigError, match="length_buckets_s must be increasing"):
        eval_cli.run(
            parse(
                [
                    "--scores",
                    str(FIXTURES / "scores.csv"),
                    "--out",
                    str(tmp_path),
                    "--length-buckets",
                    "120,60",
                ]
            )
        )
    with pytest.raises(DataError, match="traces file not found"):
        eval_cli.run(parse(["--traces", str(tmp_path / "none.jsonl"), "--out", str(tmp_path)]))


def test_main_joins_traces_to_a_videogen_csv(tmp_path: Path) -> None:
    """Traces carry the loader's ids (as `agentrm score` writes them); eval joins the CSV's labels by id."""
    from agentrm.cli import main
    from agentrm.data.loaders import load_items
    from agentrm.trace import Trace, TraceInputs, TraceWriter

    bench = FIXTURES / "videogen_rewardbench.csv"
    items = load_items(bench, check_videos=False).items
    with TraceWriter(tmp_path / "run.jsonl") as w:
        for it in items:  # answers "1" on every dimension, no labels in the traces themselves
            inputs = TraceInputs(
                sample_id=it.id, mode="pairwise", prompt=it.prompt, videos=it.videos, dims=["OA"]
            )
            w.write(Trace(id=it.id, inputs=inputs, verdicts={"OA": "1"}, termination="answer", num_turns=1))
    out = tmp_path / "report"
    argv = ["eval", "--traces", str(tmp_path / "run.jsonl"), "--benchmark", str(bench), "--out", str(out)]
    assert main([*argv, "--n-boot", "20", "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    (oa,) = report["runs"][0]["pairwise"]
    # Overall column: A, B, same, B -> "1" is right once among the three non-tie pairs, and on no tie
    assert (oa["dim"], oa["n_pairs"], oa["n_tie_labels"]) == ("OA", 4, 1)
    assert oa["verdict_no_ties"]["value"] == pytest.approx(1 / 3) and oa["verdict_ties"]["value"] == 0.25
    assert report["benchmark_format"] == "videogen_rewardbench" and report["benchmark_items"] == 4
    assert main(["eval", "--out", str(out)]) == 2  # an AgentrmError becomes exit code 2
