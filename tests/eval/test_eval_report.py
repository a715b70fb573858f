"""The report end to end on traces written as JSONL: numbers checked by hand, plots are real PNGs.

The agentic run (6 episodes, OA labels, head rewards and verdicts):

    id  label  rewards      margin  verdict  longest video  frames  turns  termination
    e1  1      .9 / .1      +.8     1        30 s           4       2      answer
    e2  2      .2 / .7      -.5     2        90 s           8       3      answer
    e3  1      .3 / .6      -.3     1        200 s          16      4      answer
    e4  tie    .5 / .45     +.05    tie      400 s          20      4      answer
    e5  2      –            –       –        50 s           24      6      max_turns
    e6  tie    .4 / .8      -.4     2        70 s           0       1      answer

margin w/o ties: e1 e2 right, e3 wrong, e5 missing -> 2/4. With ties, eps sweep 0 .05 .3 .4 .5 .8 gives
2/6 3/6 3/6 4/6 3/6 2/6 -> 4/6 at eps .4. Verdicts: w/o ties 3/4, with ties 4/6. Agreement at eps .4:
e1 e2 e4 agree, e3 e6 do not -> 3/5. The uniform run answers 1 1 1 1 2 2 (verdicts only).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agentrm.eval.report import EvalReport, EvalSettings, evaluate, write_report
from agentrm.trace import Trace, TraceInputs, TraceWriter, VideoInfo

ROWS = [
    # id, label, rewards (v1, v2) or None, verdict, duration, frames, turns, termination
    ("e1", "1", (0.9, 0.1), "1", 30.0, 4, 2, "answer"),
    ("e2", "2", (0.2, 0.7), "2", 90.0, 8, 3, "answer"),
    ("e3", "1", (0.3, 0.6), "1", 200.0, 16, 4, "answer"),
    ("e4", "tie", (0.5, 0.45), "tie", 400.0, 20, 4, "answer"),
    ("e5", "2", None, None, 50.0, 24, 6, "max_turns"),
    ("e6", "tie", (0.4, 0.8), "2", 70.0, 0, 1, "answer"),
]
UNIFORM = {"e1": "1", "e2": "1", "e3": "1", "e4": "1", "e5": "2", "e6": "2"}


def make_trace(
    sid: str,
    labels: dict[str, str | float],
    verdicts: dict[str, str | float] | None,
    rewards: list[dict[str, float]] | None,
    duration: float = 10.0,
    frames: int = 0,
    turns: int = 1,
    termination: str = "answer",
    policy: str = "agentic",
    mode: str = "pairwise",
) -> Trace:
    n = 2 if mode == "pairwise" else 1
    return Trace(
        id=sid,
        inputs=TraceInputs(
            sample_id=sid,
            mode=mode,
            prompt="p",
            videos=[f"v{i}.mp4" for i in range(n)],
            dims=list(labels),
            labels=labels,
        ),
        videos=[
            VideoInfo(
                video=i + 1,
                path=f"v{i}.mp4",
                num_frames=16,
                fps=8.0,
                duration_s=duration * (1 - 0.5 * i),
                width=32,
                height=32,
            )
            for i in range(n)
        ],
        policy=policy,
        verdicts=verdicts,
        rewards=rewards,
        termination=termination,
        num_turns=turns,
        frames_viewed=frames,
    )


def agentic_traces() -> list[Trace]:
    out = []
    for sid, lab, rw, verdict, dur, frames, turns, term in ROWS:
        rewards = None if rw is None else [{"OA": rw[0], "VQ": rw[0]}, {"OA": rw[1], "VQ": rw[1]}]
        verdicts: dict[str, str | float] | None = None if verdict is None else {"OA": verdict, "VQ": verdict}
        labels: dict[str, str | float] = {"OA": lab, "VQ": "1"}
        out.append(make_trace(sid, labels, verdicts, rewards, dur, frames, turns, term))
    return out


def write(path: Path, traces: list[Trace]) -> Path:
    with TraceWriter(path) as w:
        for t in traces:
            w.write(t)
    return path


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path]:
    agentic = write(tmp_path / "agentic.jsonl", agentic_traces())
    uniform = [
        make_trace(
            sid, {"OA": lab, "VQ": "1"}, {"OA": UNIFORM[sid], "VQ": "1"}, None, dur, 0, 1, policy="uniform"
        )
        for sid, lab, _, _, dur, *_ in ROWS
    ]
    return agentic, write(tmp_path / "uniform.jsonl", uniform)


def fast(**kw: object) -> EvalSettings:
    return EvalSettings(**{"n_boot": 200, **kw})


def test_metrics_of_one_run_by_hand(runs: tuple[Path, Path]) -> None:
    report, _ = evaluate(traces=[runs[0]], settings=fast())
    r = report.runs[0]
    assert (r.name, r.kind, r.policy, r.primary, r.n_episodes) == (
        "agentic",
        "traces",
        "agentic",
        "margin",
        6,
    )
    oa = r.dim("OA")
    assert oa is not None and (oa.n_pairs, oa.n_tie_labels) == (6, 2)
    assert oa.margin_no_ties is not None and oa.margin_no_ties.value == 0.5
    assert (oa.margin_no_ties.n, oa.margin_no_ties.n_missing) == (4, 1)
    t = oa.margin_ties
    assert t is not None and t.value == pytest.approx(4 / 6) and t.eps == 0.4 and t.eps_tuned
    assert t.n_missing == 1 and t.ci is not None and t.ci[0] <= 4 / 6 <= t.ci[1]
    assert (
        oa.verdict_no_ties is not None
        and oa.verdict_no_ties.value == 0.75
        and oa.verdict_no_ties.n_missing == 1
    )
    assert oa.verdict_ties is not None and oa.verdict_ties.value == pytest.approx(4 / 6)
    assert oa.agreement is not None and oa.agreement.value == pytest.approx(3 / 5) and oa.agreement.n == 5
    vq = r.dim("VQ")  # every VQ label is '1': right when m > 0 (e1, e4), e5 missing
    assert (
        vq is not None and vq.margin_no_ties is not None and vq.margin_no_ties.value == pytest.approx(2 / 6)
    )
    assert [d.dim for d in r.pairwise] == ["VQ", "OA"]  # agentrm's dimension order

    s = r.stats
    assert s is not None and s.terminations == {"answer": 5, "max_turns": 1}
    assert (s.no_verdict, s.no_reward) == (1, 1)
    assert s.turns["mean"] == pytest.approx(20 / 6) and s.frames_viewed["max"] == 24

    length = {b.label: b.accuracy for b in r.by_length}
    assert list(length) == ["<60s", "60–120s", "120–300s", "≥300s"]
    assert (length["<60s"].value, length["<60s"].n) == (0.5, 2)  # e1 right, e5 missing
    assert (length["60–120s"].value, length["60–120s"].n) == (1.0, 1)  # e2 (e6 is a human tie)
    assert (length["120–300s"].value, length["≥300s"].value, length["≥300s"].n) == (0.0, None, 0)
    frames = {b.label: (b.accuracy.value, b.accuracy.n) for b in r.by_frames}
    assert frames["1–8"] == (1.0, 2) and frames["9–16"] == (0.0, 1) and frames["17–24"] == (0.0, 1)
    assert frames["0"] == (None, 0)  # e6 viewed no frames but is a human tie


def test_two_runs_deltas_plots_and_markdown(runs: tuple[Path, Path], tmp_path: Path) -> None:
    report, loaded = evaluate(traces=list(runs), settings=fast())
    uni = report.runs[1]
    assert uni.policy == "uniform" and uni.primary == "verdict"
    assert uni.dim("OA").verdict_no_ties.value == 0.75  # type: ignore[union-attr]
    assert uni.dim("OA").margin_no_ties is None and uni.dim("OA").agreement is None  # type: ignore[union-attr]
    deltas = {(d.dim, d.metric): d for d in report.deltas}
    d = deltas[("OA", "no_ties")]
    # common non-tie pairs e1 e2 e3 e5: uniform 1 0 1 1, agentic margin 1 1 0 0
    assert (d.run, d.baseline, d.delta.n, d.delta.value) == ("uniform", "agentic", 4, 0.25)
    assert (d.run_source, d.baseline_source) == ("verdict", "margin")
    assert deltas[("OA", "ties")].delta.value == pytest.approx(3 / 6 - 4 / 6)

    out = tmp_path / "report"
    paths = write_report(report, loaded, out)
    names = {p.name for p in paths}
    plots = {
        "reward_hist.png",
        "accuracy_by_length.png",
        "episode_stats.png",
        "accuracy_vs_frames.png",
        "run_deltas.png",
    }
    assert names == {"report.json", "report.md", *plots}
    for name in plots:
        img = np.asarray(Image.open(out / name).convert("L"), dtype=float)
        assert img.shape[0] > 100 and img.shape[1] > 100 and img.std() > 5, name  # a real, non-blank image
    back = EvalReport.model_validate_json((out / "report.json").read_text())
    assert back.runs[0].dim("OA").margin_ties.eps == 0.4  # type: ignore[union-attr]
    assert sorted(back.plots) == sorted(plots)
    md = (out / "report.md").read_text()
    assert "## Summary (OA)" in md and "| agentic | agentic | traces | 6 | margin (OA) | 50.0% [" in md
    assert "0.4 (tuned)" in md and "+25.0 pt" in md and "![run_deltas.png](run_deltas.png)" in md
    assert "max_turns 1" in md


def test_benchmark_labels_win_and_unlabelled_are_counted(runs: tuple[Path, Path], tmp_path: Path) -> None:
    bench = tmp_path / "bench.jsonl"
    rows = [
        {"id": sid, "mode": "pairwise", "prompt": "p", "videos": ["a.mp4", "b.mp4"], "labels": {"OA": lab}}
        for sid, lab, *_ in ROWS
        if sid != "e6"
    ]
    rows[0]["labels"] = {"OA": "2"}  # e1 relabelled: the margin (+.8) is now wrong
    bench.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    report, _ = evaluate(traces=[runs[0]], benchmark=bench, settings=fast())  # videos need not exist
    r = report.runs[0]
    assert (r.n_episodes, r.n_unlabelled, r.n_label_mismatches) == (5, 1, 5)  # labels differ: VQ is gone
    assert [d.dim for d in r.pairwise] == ["OA"]
    assert r.dim("OA").margin_no_ties.value == 0.25  # type: ignore[union-attr]  # e2 only, of e1 e2 e3 e5
    assert report.benchmark_format == "agentrm" and report.benchmark_items == 5


def test_fixed_eps_and_eps_from_a_dev_report(runs: tuple[Path, Path], tmp_path: Path) -> None:
    fixed, _ = evaluate(traces=[runs[0]], settings=fast(eps={"OA": 0.3}))
    t = fixed.runs[0].dim("OA").margin_ties  # type: ignore[union-attr]
    assert t is not None and (t.value, t.eps, t.eps_tuned) == (0.5, 0.3, False) and "fixed" in t.eps_source
    assert fixed.runs[0].dim("VQ").margin_ties.eps_tuned  # type: ignore[union-attr]  # not named: tuned

    dev, _ = evaluate(traces=[runs[0]], settings=fast())
    (tmp_path / "dev.json").write_text(dev.model_dump_json())
    test, _ = evaluate(traces=[runs[0]], settings=fast(eps_from=str(tmp_path / "dev.json")))
    t = test.runs[0].dim("OA").margin_ties  # type: ignore[union-attr]
    assert t is not None and t.eps == 0.4 and not t.eps_tuned and "dev report" in t.eps_source


def test_scores_csv_run(tmp_path: Path) -> None:
    fixture = Path(__file__).parent.parent / "fixtures" / "benchmarks" / "scores.csv"
    report, runs = evaluate(scores=[fixture], settings=fast())
    r = report.runs[0]
    assert (r.kind, r.primary, r.stats, r.by_length) == ("scores", "margin", None, [])
    oa, vq = r.dim("OA"), r.dim("VQ")
    # OA: p1 A m=+1 right; p2 tie; p3 B, score_A empty -> missing; p4 A m=+4 right
    assert oa is not None and oa.margin_no_ties is not None
    assert (oa.margin_no_ties.value, oa.margin_no_ties.n, oa.margin_no_ties.n_missing) == (
        pytest.approx(2 / 3),
        3,
        1,
    )
    assert (
        oa.margin_ties is not None
        and oa.margin_ties.value == 0.75
        and oa.margin_ties.eps == pytest.approx(0.05)
    )
    # VQ: p1 A +.8 right, p2 B -.1 right, p3 A -.2 wrong, p4 tie m=0 -> a tie at eps 0: 3/4
    assert vq is not None and vq.margin_no_ties.value == pytest.approx(2 / 3)  # type: ignore[union-attr]
    assert (vq.margin_ties.value, vq.margin_ties.eps) == (0.75, 0.0)  # type: ignore[union-attr]
    out = write_report(report, runs, tmp_path / "r")
    assert {p.name for p in out} == {"report.json", "report.md", "reward_hist.png"}


def test_pointwise_traces(tmp_path: Path) -> None:
    traces = [
        make_trace(f"s{i}", {"OA": float(lab)}, {"OA": float(v)}, [{"OA": r}], mode="pointwise")
        for i, (lab, v, r) in enumerate([(1, 1, 0.1), (2, 3, 0.3), (3, 2, 0.2), (4, 4, 0.9)])
    ]
    report, _ = evaluate(traces=[write(tmp_path / "pt.jsonl", traces)], settings=fast())
    p = report.runs[0].pointwise[0]
    assert (p.dim, p.n, p.n_missing_verdict) == ("OA", 4, 0)
    assert p.verdict_spearman == pytest.approx(0.8) and p.reward_spearman == pytest.approx(0.8)
    assert not report.runs[0].pairwise


def test_unreadable_lines_and_repeated_ids_are_reported(runs: tuple[Path, Path]) -> None:
    text = runs[0].read_text().splitlines()
    runs[0].write_text("\n".join([*text, text[0], "{not json"]) + "\n")
    report, _ = evaluate(traces=[runs[0]], settings=fast())
    r = report.runs[0]
    assert (r.n_episodes, r.n_duplicates, r.n_bad_lines) == (6, 1, 1)
    assert any("unreadable" in n for n in report.notes)
    assert not math.isnan(r.dim("OA").margin_no_ties.value)  # type: ignore[union-attr, arg-type]


def test_runs_with_the_same_file_name_are_named_by_folder(tmp_path: Path) -> None:
    a = write(tmp_path / "agentic" / "traces.jsonl", agentic_traces())
    b = write(tmp_path / "uniform" / "traces.jsonl", agentic_traces())
    c = write(tmp_path / "traces.jsonl", agentic_traces())
    report, _ = evaluate(traces=[a, b, c, a], settings=fast(n_boot=0))
    assert [r.name for r in report.runs] == [
        "agentic/traces",
        "uniform/traces",
        f"{tmp_path.name}/traces",
        "agentic/traces-2",
    ]
    assert report.runs[0].dim("OA").margin_no_ties.ci is None  # type: ignore[union-attr]  # n_boot=0
    assert all(d.delta.value == 0.0 for d in report.deltas)  # identical runs
