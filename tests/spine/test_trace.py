"""Trace schema, JSONL writer/reader (torn lines), exported JSON schema and the golden trace."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from agentrm.config import EpisodeConfig
from agentrm.data.schema import Item
from agentrm.episode import run_episode
from agentrm.trace import SCHEMA_VERSION, Trace, TraceInputs, TraceWriter, read_traces, trace_json_schema
from agentrm.video import VideoPool
from tests.spine.conftest import VERDICTS, Recorder, answer, tool

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "fixtures" / "golden_trace.json"
SCHEMA = ROOT / "docs" / "trace.schema.json"
VOLATILE = {"timings", "created_at", "latency_s"}


def small(i: int) -> Trace:
    return Trace(id=f"s{i}", inputs=TraceInputs(sample_id=f"s{i}", mode="pointwise", prompt="p", videos=["v.mp4"],
                                                 dims=["OA"]))


def test_writer_reader_roundtrip_and_torn_last_line(tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    with TraceWriter(out) as w:
        for i in range(3):
            w.write(small(i))
    with out.open("a") as fh:
        fh.write(small(3).model_dump_json()[:40])  # a killed writer leaves half a line
    errors: list[str] = []
    assert [t.id for t in read_traces(out, errors)] == ["s0", "s1", "s2"]
    assert len(errors) == 1 and "torn last line" in errors[0] and ":4:" in errors[0]
    with TraceWriter(out) as w:  # reopening repairs the tail, so the next record is a whole line
        w.write(small(4))
    errors.clear()
    assert [t.id for t in read_traces(out, errors)] == ["s0", "s1", "s2", "s4"] and errors == []


def test_invalid_line_in_the_middle_is_reported_not_fatal(tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    out.write_text(small(0).model_dump_json() + "\n{\"id\": 1}\n" + small(1).model_dump_json() + "\n")
    errors: list[str] = []
    assert [t.id for t in read_traces(out, errors)] == ["s0", "s1"]
    assert "invalid trace" in errors[0] and ":2:" in errors[0]


def test_exported_schema_is_current() -> None:
    current = json.dumps(trace_json_schema(), indent=1, sort_keys=True) + "\n"
    assert SCHEMA.read_text() == current, (
        "docs/trace.schema.json is stale: regenerate with\n  python -c 'import json; from agentrm.trace import "
        "trace_json_schema as s; print(json.dumps(s(), indent=1, sort_keys=True))' > docs/trace.schema.json\n"
        "and bump SCHEMA_VERSION if old traces no longer load"
    )


def _strip(obj: object) -> object:
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VOLATILE and k not in ("path", "videos")}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def golden_run(videos: dict[str, Path]) -> Trace:
    item = Item(id="golden", mode="pairwise", prompt="a white square pattern",
                videos=[str(videos["short"]), str(videos["long"])], labels=dict(VERDICTS))
    cfg = EpisodeConfig()
    cfg.window.max_visual_tokens = 120 + 2 * 135
    rec = Recorder([tool("select_frames", video=1, frames=[5, 6, 7]),
                    "I will look closer.",
                    tool("select_range", video=2, start_s=30.0, end_s=40.0, count=3),
                    tool("select_frames", video=1, frames=[100, 101, 102]),
                    answer(VERDICTS)], rewards=[[0.5, 0.1, 0.2, 0.9], [0.1, 0.3, 0.2, -0.4]])
    return asyncio.run(run_episode(rec.engine, item, cfg, VideoPool()))  # type: ignore[arg-type]


def test_golden_trace_loads_and_the_loop_still_reproduces_it(videos: dict[str, Path]) -> None:
    golden = Trace.model_validate_json(GOLDEN.read_text())
    assert golden.schema_version == SCHEMA_VERSION and golden.termination == "answer"
    fresh = golden_run(videos)
    assert _strip(json.loads(fresh.model_dump_json())) == _strip(json.loads(GOLDEN.read_text())), (
        "the loop's behaviour changed: if intended, regenerate tests/fixtures/golden_trace.json with "
        "`python -m tests.spine.test_trace`"
    )


if __name__ == "__main__":  # regenerate the golden trace
    import tempfile

    from agentrm.video.synthetic import write_index_video

    with tempfile.TemporaryDirectory() as d:
        vids = {}
        for name, n in (("short", 300), ("long", 1200)):
            vids[name] = Path(d) / f"{name}.mp4"
            write_index_video(vids[name], num_frames=n, fps=10, size=(256, 144), gop=50)
        trace = golden_run(vids)
        trace.inputs.videos = ["videos/short.mp4", "videos/long.mp4"]
        for v, name in zip(trace.videos, ("short", "long"), strict=True):
            v.path = f"videos/{name}.mp4"
        GOLDEN.write_text(trace.model_dump_json(indent=1) + "\n")
    SCHEMA.write_text(json.dumps(trace_json_schema(), indent=1, sort_keys=True) + "\n")
