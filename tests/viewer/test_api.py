"""The viewer's JSON API and frame endpoint, through FastAPI's TestClient (no browser)."""

from __future__ import annotations

import io
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from agentrm.video.synthetic import read_index
from agentrm.viewer.synth import DEMO_RUN_A, synthetic_trace, video_info

pytest.importorskip("fastapi")
with warnings.catch_warnings():  # starlette asks for httpx2, which the viewer extra does not need
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from agentrm.viewer.app import create_app  # noqa: E402

WRONG_A = {s for s, (label, verdict, _) in DEMO_RUN_A.items() if verdict != label}


@pytest.fixture
def client(trace_dir: Path, cache_dir: Path) -> TestClient:
    return TestClient(create_app(trace_dir, cache_dir=cache_dir, refresh_interval_s=0))


def ids(res: dict[str, Any]) -> list[str]:
    return [r["sample_id"] for r in res["rows"]]


def traces(client: TestClient, **params: Any) -> dict[str, Any]:
    res = client.get("/api/traces", params={"run": "run_a", **params})
    assert res.status_code == 200, res.text
    return res.json()


def test_runs_summary(client: TestClient) -> None:
    runs = {r["run"]: r for r in client.get("/api/runs").json()}
    a, b = runs["run_a"], runs["run_b"]
    assert (a["n"], a["corrupt"], a["labelled"]) == (8, 1, 7)
    assert a["acc"] == pytest.approx(4 / 7) and b["acc"] == pytest.approx(5 / 7)
    assert a["terminations"] == {"answer": 6, "max_turns": 1} and a["with_tool_errors"] == 1
    assert b["corrupt"] == 1  # the torn last line
    assert sum(a["hist_turns"]["counts"]) == 7 and sum(a["hist_margin"]["counts"]) == 6
    assert set(a["dim_accuracy"]) == {"VQ", "MQ", "TA", "OA"} and a["dim_accuracy"]["OA"] == pytest.approx(4 / 7)


def test_filters(client: TestClient) -> None:
    assert traces(client)["total"] == 8
    assert set(ids(traces(client, wrong=1))) == WRONG_A
    assert ids(traces(client, label="2")) == ["s01", "s03", "s05"]
    positive = traces(client, margin_min=0)
    assert all(r["margin"] >= 0 for r in positive["rows"]) and "s03" not in ids(positive)
    assert ids(traces(client, margin_min=-1, margin_max=0)) == ["s03"]
    assert ids(traces(client, turns_min=4)) == ["s01", "s02"]
    assert ids(traces(client, tool_errors=1)) == ["s02"]
    assert ids(traces(client, termination="max_turns")) == ["s04"]
    corrupt = traces(client, termination="corrupt")["rows"]
    assert [(r["line"], r["status"]) for r in corrupt] == [(5, "invalid")] and "Invalid JSON" in corrupt[0]["error"]
    # text search covers reasoning and error messages, case-insensitively; LIKE wildcards are literal
    assert ids(traces(client, q="OUTSIDE VIDEO")) == ["s02"]
    assert ids(traces(client, q="is not json")) == ["s05"]
    assert traces(client, q="%")["total"] == 0 and traces(client, q="s0_")["total"] == 0
    assert traces(client, q="tool_call")["total"] == 7
    assert traces(client, wrong=1, label="2", q="not json")["total"] == 1
    assert client.get("/api/traces").json()["total"] == 16  # every run


def test_sorting_and_paging(client: TestClient) -> None:
    by_margin = traces(client, sort="m.OA", desc=1)["rows"]
    margins = [r["scores"].get("m.OA") for r in by_margin]
    known = [m for m in margins if m is not None]
    assert known == sorted(known, reverse=True) and margins[len(known) :] == [None] * (len(margins) - len(known))
    assert [r["margin"] for r in by_margin[: len(known)]] == pytest.approx(known)
    r2 = [r["scores"]["r2.VQ"] for r in traces(client, sort="r2.VQ")["rows"] if "r2.VQ" in r["scores"]]
    assert r2 == sorted(r2)
    page = traces(client, limit=3, offset=3)
    assert page["total"] == 8 and [r["line"] for r in page["rows"]] == [4, 5, 6]
    assert client.get("/api/traces", params={"sort": "line; DROP TABLE traces"}).status_code == 400
    assert client.get("/api/traces", params={"limit": 5000}).status_code == 422


def test_neighbors_follow_the_filtered_list(client: TestClient) -> None:
    nb = client.get("/api/neighbors", params={"at_run": "run_a", "at_line": 2, "run": "run_a", "wrong": 1}).json()
    assert nb["pos"] == 0 and nb["total"] == 3 and nb["prev"] is None
    assert nb["next"] == {"run": "run_a", "line": 6, "pos": 1}
    nb = client.get("/api/neighbors", params={"at_run": "run_a", "at_line": 1, "run": "run_a"}).json()
    assert nb["next"]["line"] == 2 and nb["next_wrong"]["line"] == 2


def test_trace_detail_and_corrupt_line(client: TestClient) -> None:
    res = client.get("/api/trace", params={"run": "run_a", "line": 2}).json()
    assert res["status"] == "ok" and res["trace"]["id"] == "s01"
    assert res["summary"]["correct"] == 0 and res["summary"]["label"] == "2" and res["summary"]["verdict"] == "1"
    assert [v["found"] for v in res["videos"]] == [True, True] and res["videos"][1]["duration_s"] == 10.0
    kinds = [e["kind"] for e in res["trace"]["events"]]
    assert kinds.count("window") == 4 and kinds[-1] == "answer"
    bad = client.get("/api/trace", params={"run": "run_a", "line": 5}).json()
    assert bad["status"] == "invalid" and bad["raw"].startswith('{"schema_version"') and "trace" not in bad
    assert client.get("/api/trace", params={"run": "run_a", "line": 99}).status_code == 404
    assert client.get("/api/trace", params={"run": "nope", "line": 1}).status_code == 404


def frame(client: TestClient, **params: Any) -> Any:
    return client.get("/api/frame", params={"run": "run_a", "line": 2, "video": 1, **params})


def test_frames_are_exact_and_cached(client: TestClient) -> None:
    trace = client.get("/api/trace", params={"run": "run_a", "line": 2}).json()["trace"]
    refs = {
        (f["video"], f["index"])
        for e in trace["events"]
        for f in (e.get("frames") or [f for g in e.get("state", {}).get("groups", []) for f in g["frames"]])
    }
    thumbs = client.app.state.thumbs  # type: ignore[attr-defined]
    for video, index in sorted(refs):
        res = frame(client, video=video, index=index)
        assert res.status_code == 200 and res.headers["content-type"] == "image/jpeg"
        pixels = np.asarray(Image.open(io.BytesIO(res.content)).convert("RGB"))
        assert read_index(pixels) == index  # the exact frame, not a neighbour
    # the first miss per video decoded every frame the trace references in that video, in one batch
    assert thumbs.decoded == len(refs)
    assert frame(client, index=sorted(refs)[0][1]).status_code == 200 and thumbs.decoded == len(refs)
    assert len(list(thumbs.dir.rglob("*.jpg"))) == len(refs)
    large = frame(client, index=3, size="large")
    assert Image.open(io.BytesIO(large.content)).size == (96, 64)  # large = native size (under the cap)
    assert read_index(np.asarray(Image.open(io.BytesIO(large.content)).convert("RGB"))) == 3


def test_frame_errors(client: TestClient, trace_dir: Path) -> None:
    out = frame(client, index=48)
    assert out.status_code == 404 and "outside the video" in out.json()["detail"]
    assert frame(client, video=3, index=0).status_code == 404
    assert frame(client, index=0, size="huge").status_code == 400
    assert frame(client, line=5, index=0).status_code == 404  # the corrupt line has no videos
    (trace_dir.parent / "videos" / "b.mp4").unlink()
    gone = frame(client, video=2, index=0)
    assert gone.status_code == 404 and "b.mp4" in gone.json()["detail"]
    assert client.get("/api/trace", params={"run": "run_a", "line": 2}).json()["videos"][1]["found"] is False


def test_video_paths_come_from_the_trace_only(client: TestClient, trace_dir: Path, tmp_path: Path) -> None:
    """A trace that names a non-video file as its video gets an error, never the file's bytes."""
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:top secret\n")
    videos = [video_info(1, str(secret), 48, 8, 96, 64), video_info(2, "/etc/passwd", 48, 8, 96, 64)]
    evil = synthetic_trace("evil", videos, rng=random.Random(0))
    (trace_dir / "evil.jsonl").write_text(evil.model_dump_json() + "\n")
    for video in (1, 2):
        res = client.get("/api/frame", params={"run": "evil", "line": 1, "video": video, "index": 0})
        assert res.status_code in (404, 422) and b"secret" not in res.content and b"root:" not in res.content
        assert res.headers["content-type"] == "application/json"


def test_compare_runs(client: TestClient) -> None:
    res = client.get("/api/compare", params={"a": "run_a", "b": "run_b"}).json()
    assert res["counts"] == {"fixed": 2, "broken": 1, "both_right": 3, "both_wrong": 1, "unlabelled": 0}
    change = {r["sample_id"]: r["change"] for r in res["rows"]}
    assert change["s01"] == "fixed" and change["s04"] == "fixed" and change["s00"] == "broken"
    assert res["accuracy"] == {"a": pytest.approx(4 / 7), "b": pytest.approx(5 / 7)}
    assert client.get("/api/compare", params={"a": "run_a", "b": "nope"}).status_code == 404


def test_list_picks_up_appended_traces(client: TestClient, trace_dir: Path) -> None:
    videos = [
        video_info(1, "../videos/a.mp4", 48, 8, 96, 64),
        video_info(2, "../videos/b.mp4", 60, 6, 96, 64),
    ]
    with (trace_dir / "run_a.jsonl").open("a") as fh:
        fh.write(synthetic_trace("late", videos, rng=random.Random(3), label="2", verdict="1").model_dump_json())
        fh.write("\n")
    res = traces(client, wrong=1)
    assert res["total"] == 4 and ids(res)[-1] == "late"
    assert client.get("/api/trace", params={"run": "run_a", "line": 9}).json()["trace"]["id"] == "late"


def test_static_front_end(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and '<script type="module" src="/static/app.js">' in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # no CDN: every asset is served locally
    for name in ("app.js", "lib.js", "timeline.js", "views/episode.js", "views/samples.js", "style.css"):
        res = client.get(f"/static/{name}")
        assert res.status_code == 200, name
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")


def test_pointwise_and_failed_episodes(client: TestClient, trace_dir: Path) -> None:
    """Traces other than the demo's shape: one video scored 1-5, and an episode whose videos never opened."""
    from agentrm.trace import Trace, TraceInputs

    point = synthetic_trace("pt", [video_info(1, "../videos/a.mp4", 48, 8, 96, 64)], rng=random.Random(2))
    point.inputs.labels, point.verdicts = {"OA": 4.0}, {"OA": "4"}
    failed = Trace(
        id="ve",
        inputs=TraceInputs(
            sample_id="ve",
            mode="pairwise",
            prompt="p",
            videos=["gone1.mp4", "gone2.mp4"],
            dims=["OA"],
            labels={"OA": "1"},
        ),
        termination="video_error",
        error="gone1.mp4: no such file",
    )
    (trace_dir / "edge.jsonl").write_text(point.model_dump_json() + "\n" + failed.model_dump_json() + "\n")
    rows = {r["sample_id"]: r for r in traces(client, run="edge")["rows"]}
    assert rows["pt"]["mode"] == "pointwise" and rows["pt"]["correct"] == 1 and rows["pt"]["margin"] is None
    assert rows["ve"]["correct"] == 0 and rows["ve"]["termination"] == "video_error"
    assert ids(traces(client, run="edge", q="no such file")) == ["ve"]
    res = client.get("/api/trace", params={"run": "edge", "line": 2}).json()
    assert [v["found"] for v in res["videos"]] == [False, False] and res["trace"]["error"]
    gone = client.get("/api/frame", params={"run": "edge", "line": 2, "video": 1, "index": 0})
    assert gone.status_code == 404 and "gone1.mp4" in gone.json()["detail"]
    assert frame(client, line=1, run="edge", index=7).status_code == 200
