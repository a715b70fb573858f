"""The SQLite trace index: summary columns, error rows, caching by (path, size, mtime) and incremental
growth."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from agentrm.trace import Trace, TraceInputs
from agentrm.viewer.index import INDEX_VERSION, TraceIndex, summarize
from agentrm.viewer.synth import DEMO_RUN_A, synthetic_trace, video_info

A_RIGHT = {s for s, (label, verdict, _) in DEMO_RUN_A.items() if verdict == label}
A_WRONG = set(DEMO_RUN_A) - A_RIGHT


def rows(index: TraceIndex, run: str) -> list[sqlite3.Row]:
    return index.execute(
        "SELECT t.* FROM traces t JOIN files f ON f.id = t.file_id WHERE f.run = ? ORDER BY t.line", (run,)
    )


def new_trace(sid: str, label: str = "1", verdict: str = "2") -> str:
    videos = [
        video_info(1, "../videos/a.mp4", 48, 8, 96, 64),
        video_info(2, "../videos/b.mp4", 60, 6, 96, 64),
    ]
    return synthetic_trace(sid, videos, rng=random.Random(1), label=label, verdict=verdict).model_dump_json()


def test_summary_columns_and_error_rows(trace_dir: Path, cache_dir: Path) -> None:
    index = TraceIndex(trace_dir, cache_dir)
    stats = index.refresh()
    assert stats is not None and stats.files == 2 and stats.lines == 16
    assert index.runs() == ["run_a", "run_b"]
    a = rows(index, "run_a")
    assert [r["line"] for r in a] == list(range(1, 9))
    by_id = {r["sample_id"]: r for r in a if r["status"] == "ok"}
    assert set(by_id) == set(DEMO_RUN_A)
    assert {s for s, r in by_id.items() if r["correct"] == 1} == A_RIGHT
    assert {s for s, r in by_id.items() if r["correct"] == 0} == A_WRONG
    assert by_id["s02"]["tool_errors"] == 1 and by_id["s05"]["parse_errors"] == 1
    assert by_id["s04"]["termination"] == "max_turns" and by_id["s04"]["verdict"] is None
    assert by_id["s04"]["margin"] is None
    # margin = reward(video 1) - reward(video 2) of the overall dim; its sign agrees with the verdict
    for sid, (_, verdict, _) in DEMO_RUN_A.items():
        if verdict is not None:
            assert (by_id[sid]["margin"] > 0) == (verdict == "1"), sid
    corrupt = a[4]
    assert corrupt["status"] == "invalid" and corrupt["line"] == 5
    assert "Invalid JSON" in corrupt["error"] and corrupt["correct"] is None
    torn = rows(index, "run_b")[-1]
    assert torn["status"] == "torn" and "torn last line" in torn["error"]


def test_unchanged_files_are_not_parsed_again(trace_dir: Path, cache_dir: Path) -> None:
    TraceIndex(trace_dir, cache_dir).refresh()
    again = TraceIndex(trace_dir, cache_dir)
    stats = again.refresh()
    assert stats is not None and stats.skipped == 2 and stats.lines == 0 and again.parsed_lines == 0
    assert len(rows(again, "run_a")) == 8


def test_appended_traces_are_indexed_incrementally(trace_dir: Path, cache_dir: Path) -> None:
    index = TraceIndex(trace_dir, cache_dir)
    index.refresh()
    before = {r["line"]: r["id"] for r in rows(index, "run_a")}
    with (trace_dir / "run_a.jsonl").open("a") as fh:
        fh.write(new_trace("s07") + "\n" + new_trace("s08", label="2") + "\n")
    stats = index.refresh()
    assert stats is not None and stats.appended == 1 and stats.lines == 2 and stats.skipped == 1
    after = rows(index, "run_a")
    assert [r["sample_id"] for r in after[-2:]] == ["s07", "s08"] and [r["line"] for r in after[-2:]] == [
        9,
        10,
    ]
    assert {r["line"]: r["id"] for r in after[:8]} == before  # old rows (and their links) are untouched
    assert after[-1]["correct"] == 1 and after[-2]["correct"] == 0


def test_torn_last_line_is_read_again_when_completed(trace_dir: Path, cache_dir: Path) -> None:
    index = TraceIndex(trace_dir, cache_dir)
    index.refresh()
    path = trace_dir / "run_b.jsonl"
    text = path.read_text()
    head, torn = text.rsplit("\n", 1)
    full = new_trace("s99")
    path.write_text(head + "\n" + full + "\n")  # the writer finished its record (same head, file grew)
    stats = index.refresh()
    assert stats is not None and stats.appended == 1
    last = rows(index, "run_b")[-1]
    assert last["line"] == 8 and last["status"] == "ok" and last["sample_id"] == "s99"
    assert len(rows(index, "run_b")) == 8


def test_rewritten_and_removed_files(trace_dir: Path, cache_dir: Path) -> None:
    index = TraceIndex(trace_dir, cache_dir)
    index.refresh()
    (trace_dir / "run_a.jsonl").write_text(new_trace("only") + "\n")
    (trace_dir / "run_b.jsonl").unlink()
    (trace_dir / "sub").mkdir()
    (trace_dir / "sub" / "run_c.jsonl").write_text(new_trace("c1") + "\n")
    (trace_dir / ".hidden").mkdir()
    (trace_dir / ".hidden" / "skip.jsonl").write_text("not a trace\n")
    stats = index.refresh()
    assert stats is not None and stats.rebuilt == 1 and stats.removed == 1
    assert index.runs() == ["run_a", "sub/run_c"]
    assert [r["sample_id"] for r in rows(index, "run_a")] == ["only"]


def test_single_file_source_and_version_bump(trace_dir: Path, cache_dir: Path) -> None:
    index = TraceIndex(trace_dir / "run_a.jsonl", cache_dir)
    index.refresh()
    assert index.runs() == ["run_a"] and index.root == trace_dir.resolve()
    index.conn.execute("UPDATE meta SET value = 'old' WHERE key = 'version'")
    index.conn.commit()
    index.close()
    rebuilt = TraceIndex(trace_dir / "run_a.jsonl", cache_dir)
    assert rebuilt.execute("SELECT value FROM meta WHERE key='version'")[0][0] == INDEX_VERSION
    assert rebuilt.refresh() is not None and rebuilt.parsed_lines == 8


def test_correctness_rules() -> None:
    def trace(
        mode: str, labels: dict[str, str | float], verdicts: dict[str, str | float] | None, **kw: object
    ) -> Trace:
        return Trace(
            id="x",
            inputs=TraceInputs(sample_id="x", mode=mode, prompt="p", videos=["v"], dims=["Q"], labels=labels),  # type: ignore[arg-type]
            verdicts=verdicts,
            **kw,  # type: ignore[arg-type]
        )

    # pointwise: numbers compare as numbers; the overall dim comes from the config when set
    row, scores, _ = summarize(trace("pointwise", {"Q": 4}, {"Q": "4.0"}, config={"overall_dim": "Q"}))
    assert row["correct"] == 1 and row["overall"] == "Q" and scores["c.Q"] == 1.0 and row["margin"] is None
    # no label for the overall dim: not counted either way
    row, _, _ = summarize(trace("pairwise", {}, {"OA": "1"}))
    assert row["correct"] is None
    # labelled but never answered: wrong
    row, _, text = summarize(trace("pairwise", {"OA": "Tie"}, None, error="Engine exploded"))
    assert row["correct"] == 0 and "engine exploded" in text
    row, _, _ = summarize(trace("pairwise", {"OA": "Tie"}, {"OA": " tie "}))
    assert row["correct"] == 1
