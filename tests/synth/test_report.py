"""The learning proof's gap statistics: paired agentic-vs-uniform gaps per scoring, and their pooling over seeds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agentrm.synth.report import ARMS, SCORINGS, paired_gaps, seeds_table
from agentrm.trace import Trace, TraceInputs, VideoInfo


def trace(sid: str, label: str, said: str | None, oa: tuple[float, float] | None, seconds: float = 150.0) -> Trace:
    inputs = TraceInputs(sample_id=sid, mode="pairwise", prompt="p", videos=["a", "b"], dims=["OA"],
                         labels={"OA": label})
    videos = [VideoInfo(video=v, path=p, num_frames=int(2 * seconds), fps=2.0, duration_s=seconds, width=8,
                        height=8) for v, p in ((1, "a"), (2, "b"))]
    return Trace(id=sid, inputs=inputs, videos=videos, verdicts=None if said is None else {"OA": said},
                 raw_rewards=None if oa is None else [{"OA": oa[0]}, {"OA": oa[1]}])


def test_paired_gaps_match_pairs_by_id_and_score_each_way() -> None:
    """Pairs are matched by sample id (order does not matter); label ties, short videos and pairs missing from
    one arm are left out; each scoring's gap is the mean per-pair difference."""
    agentic = [trace("a", "1", "1", (0.9, 0.1)), trace("b", "2", "2", (0.2, 0.8)), trace("c", "1", None, None),
               trace("t", "tie", "1", (1.0, 0.0)), trace("s", "1", "1", (1.0, 0.0), seconds=60.0),
               trace("only", "1", "1", (1.0, 0.0))]
    uniform = [trace("c", "1", "1", (0.6, 0.4)), trace("b", "2", "tie", (0.5, 0.5)), trace("a", "1", "2", (0.1, 0.9)),
               trace("t", "tie", "2", (0.0, 1.0)), trace("s", "1", "2", (0.0, 1.0), seconds=60.0)]
    g = paired_gaps(agentic, uniform)
    assert set(g) == set(SCORINGS) and all(g[k]["n"] == 3 for k in SCORINGS)
    # per pair (a, b, c): strict 1-0, 1-0, 0-1; tie_half 1-0, 1-0.5, 0.5-1; head 1-0, 1-0.5, 0-1
    assert g["strict"]["diffs"] == [1.0, 1.0, -1.0] and g["strict"]["gap"] == pytest.approx(1 / 3)
    assert g["tie_half"]["diffs"] == [1.0, 0.5, -0.5] and g["tie_half"]["gap"] == pytest.approx(1 / 3)
    assert g["head"]["diffs"] == [1.0, 0.5, -1.0]
    lo, hi = g["strict"]["ci"]
    assert -1.0 <= lo < g["strict"]["gap"] < hi <= 1.0
    assert paired_gaps(agentic, [])["strict"] == {"gap": None, "ci": (None, None), "n": 0, "diffs": []}


def _report(d: Path, diffs: dict[str, list[float]], colour: float = 1.0, seed: int | None = None) -> Path:
    d.mkdir()
    gaps = {a: {k: {"gap": float(np.mean(v)), "ci": (-1.0, 1.0), "n": len(v), "diffs": v} for k, v in diffs.items()}
            for a, _ in ARMS}
    summary = {"runs": [], "stage0": {"colours": colour}, "gaps": gaps} | ({} if seed is None else {"seed": seed})
    (d / "summary.json").write_text(json.dumps(summary))
    return d


def test_seeds_table_pools_the_runs_means(tmp_path: Path) -> None:
    """Pooled = the mean of the runs' gaps (not of all pairs), with a CI that covers it, and the worst run. A row is
    named by its seed; a summary without one (written before seeds were recorded) by its directory."""
    one = _report(tmp_path / "s0_report", {k: [1.0] * 8 + [0.0] * 2 for k in SCORINGS}, colour=1.0, seed=7)  # +0.8
    two = _report(tmp_path / "s1_report", {k: [1.0, 0.0, 0.0, 0.0] for k in SCORINGS}, colour=0.425)  # +0.25
    table = seeds_table([one, two])
    rows = table.splitlines()
    assert rows[2].startswith("| seed 7 | 100% | +80.0 [") and rows[3].startswith("| s1_report | 42% | +25.0 [")
    assert rows[4].startswith("| mean of 2 | |") and rows[4].count("**+52.5** [") == len(ARMS) * len(SCORINGS)
    assert "(min +25.0)" in rows[4]
    lo, hi = (int(x) for x in rows[4].split("**+52.5** [")[1].split("]")[0].split(", "))
    assert 25 <= lo < 52.5 < hi <= 80


def test_seeds_table_names_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing/summary.json.*--out directory"):
        seeds_table([tmp_path / "missing"])
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "summary.json").write_text(json.dumps({"runs": []}))
    with pytest.raises(ValueError, match=r"old/summary.json has no 'gaps'.*re-run the experiment"):
        seeds_table([tmp_path / "old"])


def test_seeds_cli_prints_and_writes_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agentrm.cli import main

    run = _report(tmp_path / "s0_report", {k: [1.0, 0.0] for k in SCORINGS}, seed=4)
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps(summary | {"timings": {"total": 3660.0}}))
    assert main(["synth", "seeds", str(run), "--out", str(tmp_path / "seeds.md")]) == 0
    written = (tmp_path / "seeds.md").read_text()
    row = "| seed 4 | 100% | +50.0 ["
    assert row in written and row in capsys.readouterr().err  # the console writes to stderr
    assert written.splitlines()[0].startswith("# Learning proof over seeds") and " | 61 |" in written
    # the file says how to reproduce every row, and itself
    assert f"agentrm synth experiment --seed 4 --out {run} --work runs/seed4" in written
    assert f"agentrm synth seeds {run} --out" in written
    assert main(["synth", "seeds", str(tmp_path / "nope")]) == 2
