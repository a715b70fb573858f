"""`agentrm score` / `replay` / `demo` end to end: inputs, corrupt videos, exit codes, and resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentrm.cli import main
from agentrm.trace import read_traces
from agentrm.video.synthetic import write_index_video

ANSWER = '<think>ok</think><answer>{"VQ": "1", "MQ": "2", "TA": "tie", "OA": "1"}</answer><Reward><Reward>'
CALL = '<tool_call>{"name": "select_frames", "arguments": {"video": 1, "frames": [3, 4]}}</tool_call>'


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JSONL benchmark of 6 pairs over 3 small videos (one corrupt) with relative paths."""
    d = tmp_path_factory.mktemp("bench")
    (d / "videos").mkdir()
    for name in ("a", "b"):
        write_index_video(d / "videos" / f"{name}.mp4", num_frames=60, fps=10, size=(128, 72))
    (d / "videos" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42not a video")
    rows = []
    for i in range(6):
        second = "videos/broken.mp4" if i == 4 else "videos/b.mp4"
        rows.append({"id": f"s{i}", "mode": "pairwise", "prompt": "blocks", "videos": ["videos/a.mp4", second],
                     "labels": {"VQ": "1", "MQ": "2", "TA": "tie", "OA": "1"}})
    (d / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    script = [{"text": CALL}, {"text": ANSWER, "rewards": [[1, 2, 3, 4], [0, 0, 0, 0]]}]
    (d / "script.jsonl").write_text("".join(json.dumps(r) + "\n" for r in script))
    return d


def test_score_with_scripted_engine_records_a_failed_sample_and_exits_1(bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    code = main(["score", "--input", str(bench / "items.jsonl"), "--video-root", str(bench), "--engine", "scripted",
                 "--script", str(bench / "script.jsonl"), "--out", str(out), "--no-progress",
                 "episode.limits.max_turns=3"])
    assert code == 1  # one sample failed (its video is corrupt), the run finished
    traces = {t.id: t for t in read_traces(out)}
    assert sorted(traces) == [f"s{i}" for i in range(6)]
    assert traces["s4"].termination == "video_error" and "broken.mp4" in (traces["s4"].error or "")
    assert all(traces[f"s{i}"].termination == "answer" for i in (0, 1, 2, 3, 5))
    assert traces["s0"].rewards == [{"VQ": 1, "MQ": 2, "TA": 3, "OA": 4}, {"VQ": 0, "MQ": 0, "TA": 0, "OA": 0}]
    assert traces["s0"].config["limits"]["max_turns"] == 3
    # re-running the same command finds everything done: nothing redone, nothing duplicated
    code = main(["score", "--input", str(bench / "items.jsonl"), "--video-root", str(bench), "--engine", "scripted",
                 "--script", str(bench / "script.jsonl"), "--out", str(out), "--no-progress"])
    assert code == 1 and len(read_traces(out)) == 6


def test_replay_an_earlier_run(bench: Path, tmp_path: Path) -> None:
    first = tmp_path / "first.jsonl"
    main(["replay", "--input", str(bench / "items.jsonl"), "--video-root", str(bench), "--script",
          str(bench / "script.jsonl"), "--out", str(first), "--no-progress"])
    again = tmp_path / "again.jsonl"
    main(["replay", "--input", str(bench / "items.jsonl"), "--video-root", str(bench), "--script", str(first),
          "--out", str(again), "--no-progress", "episode.window.max_frames=20"])
    a = {t.id: t for t in read_traces(first)}
    b = {t.id: t for t in read_traces(again)}
    assert a["s0"].verdicts == b["s0"].verdicts and a["s0"].rewards == b["s0"].rewards
    assert b["s0"].config["window"]["max_frames"] == 20


def test_bad_override_is_a_clear_error(bench: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    code = main(["score", "--input", str(bench / "items.jsonl"), "--engine", "scripted", "--script",
                 str(bench / "script.jsonl"), "--out", str(tmp_path / "x.jsonl"), "episode.limits.max_turn=3"])
    assert code == 2
    assert "unknown key 'episode.limits.max_turn' (did you mean 'max_turns'?)" in caplog.text


def test_video_files_with_prompt_make_a_pair(bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    code = main(["score", "--input", str(bench / "videos/a.mp4"), "--input", str(bench / "videos/b.mp4"),
                 "--prompt", "blocks", "--engine", "scripted", "--script", str(bench / "script.jsonl"),
                 "--out", str(out), "--no-progress"])
    assert code == 0
    (trace,) = read_traces(out)
    assert trace.id == "a-vs-b" and trace.inputs.prompt == "blocks" and trace.termination == "answer"


SLOW_SCRIPT = """
import asyncio, sys
from agentrm.engines import scripted
orig = scripted.ScriptedEngine.generate
async def slow(self, *a, **k):
    await asyncio.sleep(0.25)
    return await orig(self, *a, **k)
scripted.ScriptedEngine.generate = slow
from agentrm.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_resume_after_kill_loses_nothing_and_duplicates_nothing(bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    args = ["score", "--input", str(bench / "items.jsonl"), "--video-root", str(bench), "--engine", "scripted",
            "--script", str(bench / "script.jsonl"), "--out", str(out), "--no-progress", "concurrency=1"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", SLOW_SCRIPT, *args], env=env, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:  # kill it once some but not all samples are written
        if out.exists() and 2 <= out.read_text().count("\n") < 6:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {t.id for t in read_traces(out)}
    assert 2 <= len(done_before) < 6
    with out.open("a") as fh:  # and a torn half-record, as a kill during a write would leave
        fh.write('{"schema_version": "1", "id": "s5", "inp')
    assert main(args) == 1
    traces = read_traces(out)
    ids = [t.id for t in traces]
    assert sorted(ids) == [f"s{i}" for i in range(6)] and len(ids) == len(set(ids))
    assert ids[: len(done_before)] == [i for i in ids if i in done_before]  # earlier records kept as they were


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    code = main(["demo", "--out", str(tmp_path / "demo"), "--no-progress"])
    assert code == 0
    traces = read_traces(tmp_path / "demo" / "traces.jsonl")
    assert len(traces) == 2 and all(t.termination not in ("error", "video_error") for t in traces)
    assert all(t.num_turns >= 1 and t.engine["name"] == "hf" for t in traces)
    from agentrm.demo import default_model_dir
    from agentrm.synth.scenes import DEFECT_WORDS

    if default_model_dir()[1]:  # the packaged learning-proof model shows the search finding and judging a defect
        found = []
        for t in traces:
            notes = " ".join(e.text for e in t.events if e.kind == "model")
            bad = next(v for v, d in enumerate(t.inputs.meta["defects"], 1) if d)
            named = f"v{bad}: {DEFECT_WORDS[t.inputs.meta['defects'][bad - 1]]}" in notes
            found.append(t.ok and named and t.verdicts == t.inputs.labels and t.frames_viewed >= 16)
        assert any(found), [t.events for t in traces]  # (its OA accuracy is ~60 %: docs/learning_proof)
