"""Benchmark loaders on the fixture files (tests/fixtures/benchmarks) and on broken copies of them.

The fixtures name videos/v1.mp4 … v6.mp4; the `bench` fixture copies them into a temp folder and writes those
six videos for real (16 frames of 32x32, PyAV) so the existence checks run against actual files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from agentrm.data.loaders import (
    LoadResult,
    detect_format,
    load_agentrm_jsonl,
    load_genai_bench,
    load_items,
    load_mj_bench_video,
    load_videogen_rewardbench,
)
from agentrm.errors import DataError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "benchmarks"


def write_video(path: Path, frames: int = 16, size: int = 32, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=8)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for _ in range(frames):
            img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode())


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    for i in range(1, 7):
        write_video(root / "videos" / f"v{i}.mp4", seed=i)
    return root


@pytest.fixture
def bench(tmp_path: Path, videos: Path) -> Path:
    """A folder holding copies of the fixture files next to real videos/ (so the default video root works)."""
    for f in FIXTURES.iterdir():
        shutil.copy(f, tmp_path / f.name)
    shutil.copytree(videos / "videos", tmp_path / "videos")
    return tmp_path


def by_id(result: LoadResult) -> dict[str, object]:
    return {it.id: it for it in result.items}


# ---- the fixture files load ----


def test_videogen_rewardbench_csv(bench: Path) -> None:
    res = load_items(bench / "videogen_rewardbench.csv")
    assert res.format == "videogen_rewardbench" and not res.skipped and len(res.items) == 4
    first = res.items[0]
    assert first.labels == {"VQ": "1", "MQ": "1", "TA": "tie", "OA": "1"}  # Overall -> OA, same -> tie
    assert res.items[1].labels == {"VQ": "2", "MQ": "tie", "TA": "2", "OA": "2"}
    assert first.videos == [str(bench / "videos" / "v1.mp4"), str(bench / "videos" / "v2.mp4")]
    assert first.prompt == "a red ball bouncing on grass"
    assert res.items[1].prompt == "a cat, sitting on a windowsill"  # quoted CSV cell
    # extra columns kept in meta, numbers as numbers
    assert first.meta["A_model"] == "modelX" and first.meta["fps_A"] == 8 and first.meta["fps_B"] == 8.0
    assert first.meta["num_frames_B"] == 16 and first.meta["source"] == "videogen_rewardbench"
    assert first.meta["line"] == 2
    assert all(it.id.startswith("vgrb-") for it in res.items) and len(by_id(res)) == 4
    assert load_videogen_rewardbench(bench / "videogen_rewardbench.csv").items == res.items


def test_genai_bench_votes(bench: Path) -> None:
    res = load_genai_bench(bench / "genai_bench_video.jsonl")
    assert [it.labels for it in res.items] == [{"OA": "1"}, {"OA": "2"}, {"OA": "tie"}, {"OA": "tie"}]
    assert res.items[3].meta["vote_type"] == "bothbad_vote" and res.items[0].meta["left_model"] == "modelX"
    assert detect_format(bench / "genai_bench_video.jsonl") == "genai_bench"


def test_mj_bench_video_json(bench: Path) -> None:
    res = load_mj_bench_video(bench / "mj_bench_video.json")
    assert not res.skipped
    assert res.filtered == {"discard": 1, "no_label": 1}
    a, b, c = res.items
    # "Video 1" is the first video; aspects mapped (Fineness->VQ, Coherence & Consistency->MQ, Alignment->TA)
    assert a.labels == {"OA": "1", "TA": "tie", "Safety": "tie", "VQ": "1", "MQ": "1", "Bias": "tie"}
    assert b.labels["OA"] == "2" and b.labels["TA"] == "2" and "VQ" not in b.labels  # Hard to judge: no label
    assert c.labels == {"OA": "tie", "TA": "tie"}
    assert a.meta["video_1_label"]["Human Face Distortion"] == 2 and a.meta["line"] == 2
    assert b.meta["line"] == 22  # line where the record starts in the pretty-printed array


def test_mj_bench_video_chosen_rejected(bench: Path) -> None:
    res = load_items(bench / "mj_bench_video_pairs.jsonl")
    assert res.format == "mj_bench_video" and len(res.items) == 4
    rows = [json.loads(line) for line in (bench / "mj_bench_video_pairs.jsonl").read_text().splitlines()]
    sides = set()
    for it, row in zip(res.items, rows, strict=True):
        chosen = str(bench / row["chosen"])
        assert it.videos[int(it.labels["OA"]) - 1] == chosen  # the label points at the chosen video
        assert it.meta["chosen_video"] == int(it.labels["OA"]) and it.meta["aspect"] == row["aspect"]
        sides.add(it.labels["OA"])
    assert sides == {"1", "2"}  # the hash puts chosen videos on both sides
    assert [it.videos for it in load_items(bench / "mj_bench_video_pairs.jsonl").items] == [
        it.videos for it in res.items
    ]  # deterministic


def test_agentrm_jsonl_pairwise_and_pointwise(bench: Path) -> None:
    pw = load_agentrm_jsonl(bench / "agentrm_pairwise.jsonl")
    assert [it.id for it in pw.items] == ["p1", "p2", "p3"]
    assert pw.items[1].labels == {"VQ": "2", "OA": "tie"}  # B / same aliases accepted
    assert pw.items[2].labels == {"Safety": "tie", "OA": "2"}  # any dimension
    assert pw.items[0].meta["split"] == "test"
    pt = load_items(bench / "agentrm_pointwise.jsonl")
    assert pt.format == "agentrm" and [it.mode for it in pt.items] == ["pointwise"] * 3
    assert pt.items[0].labels == {"VQ": 4, "OA": 3.5}


def test_video_root_and_check_videos(bench: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    elsewhere = tmp_path_factory.mktemp("bench_only")
    shutil.copy(bench / "videogen_rewardbench.csv", elsewhere / "b.csv")
    res = load_items(elsewhere / "b.csv")  # videos are not next to the CSV: every row is skipped
    assert not res.items and len(res.skipped) == 4
    assert "video not found" in res.skipped[0].problem and "set --video-root" in res.skipped[0].problem
    res = load_items(elsewhere / "b.csv", video_root=bench)
    assert len(res.items) == 4 and res.items[0].videos[0] == str(bench / "videos" / "v1.mp4")
    assert len(load_items(elsewhere / "b.csv", check_videos=False).items) == 4


def test_content_ids_are_stable_under_reordering(bench: Path) -> None:
    lines = (bench / "videogen_rewardbench.csv").read_text().splitlines()
    (bench / "rev.csv").write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    a = {it.id: it.labels for it in load_items(bench / "videogen_rewardbench.csv").items}
    b = {it.id: it.labels for it in load_items(bench / "rev.csv").items}
    assert a == b


def test_identical_rows_get_suffixed_ids(bench: Path) -> None:
    text = (bench / "videogen_rewardbench.csv").read_text()
    dup = text + text.splitlines()[1] + "\n"
    (bench / "dup.csv").write_text(dup)
    res = load_items(bench / "dup.csv")
    assert len(res.items) == 5 and res.items[4].id == res.items[0].id + "-2"


# ---- broken copies ----


def _break_csv(bench: Path, row: int, old: str, new: str) -> Path:
    lines = (bench / "videogen_rewardbench.csv").read_text().splitlines()
    assert old in lines[row - 1]
    lines[row - 1] = lines[row - 1].replace(old, new, 1)
    path = bench / "broken.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_unknown_label_is_reported_by_line(bench: Path) -> None:
    path = _break_csv(bench, 3, ",B,same,B,B", ",B,same,C,B")
    res = load_items(path)
    assert len(res.items) == 3 and len(res.skipped) == 1
    p = res.skipped[0]
    assert p.line == 3 and "unknown label 'C'" in p.problem and "'TA'" in p.problem
    assert str(p).startswith(f"{path}:3: ")
    with pytest.raises(DataError, match=r"broken\.csv:3: unknown label 'C'.*strict"):
        load_items(path, strict=True)


def test_missing_video_is_reported(bench: Path) -> None:
    (bench / "videos" / "v4.mp4").unlink()
    res = load_items(bench / "videogen_rewardbench.csv")
    assert [p.line for p in res.skipped] == [3]
    assert "video not found" in res.skipped[0].problem and "v4.mp4" in res.skipped[0].problem
    assert "'path_B'" in res.skipped[0].problem
    with pytest.raises(DataError, match="v4.mp4"):
        load_items(bench / "videogen_rewardbench.csv", strict=True)


def test_short_row_is_a_missing_column(bench: Path) -> None:
    path = _break_csv(bench, 4, ",same,same,same,same", ",same,same")
    res = load_items(path)
    assert [p.line for p in res.skipped] == [4] and "missing column(s) TA, Overall" in res.skipped[0].problem


def test_header_without_required_column_is_fatal(bench: Path) -> None:
    lines = (bench / "videogen_rewardbench.csv").read_text().splitlines()
    lines[0] = lines[0].replace("path_B", "path_b")
    (bench / "bad_header.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"bad_header\.csv:1: the header lacks column\(s\) path_B"):
        load_items(bench / "bad_header.csv", format="videogen_rewardbench")
    with pytest.raises(DataError, match="cannot tell the benchmark format"):
        load_items(bench / "bad_header.csv")  # auto: path_A alone matches no format


def test_broken_genai_rows(bench: Path) -> None:
    lines = (bench / "genai_bench_video.jsonl").read_text().splitlines()
    lines[1] = lines[1].replace("rightvote", "upvote")
    lines[2] = lines[2][:40]  # torn JSON
    row = json.loads(lines[3])
    del row["prompt"]
    lines[3] = json.dumps(row)
    (bench / "g.jsonl").write_text("\n".join(lines) + "\n")
    res = load_items(bench / "g.jsonl")
    assert len(res.items) == 1
    problems = {p.line: p.problem for p in res.skipped}
    assert "unknown vote_type 'upvote'" in problems[2]
    assert "not valid JSON" in problems[3]
    assert "missing column(s) 'prompt'" in problems[4]


def test_broken_mj_record_reports_its_line(bench: Path) -> None:
    text = (bench / "mj_bench_video.json").read_text().replace('"Video 2 better"', '"Video 3 better"', 1)
    (bench / "mj.json").write_text(text)
    res = load_items(bench / "mj.json")
    assert [p.line for p in res.skipped] == [22] and "unknown preference 'Video 3 better'" in res.skipped[
        0
    ].problem
    (bench / "cut.json").write_text(text[: text.index("Fireworks")])
    with pytest.raises(DataError, match=r"cut\.json:\d+: not valid JSON"):
        load_items(bench / "cut.json")


def test_broken_agentrm_rows(bench: Path) -> None:
    lines = (bench / "agentrm_pairwise.jsonl").read_text().splitlines()
    row = json.loads(lines[1])
    row["id"] = "p1"  # duplicate
    lines[1] = json.dumps(row)
    row = json.loads(lines[2])
    row["colour"] = "red"  # unknown field
    lines[2] = json.dumps(row)
    lines.append(json.dumps({"id": "p9", "mode": "pairwise", "prompt": "x", "videos": ["videos/v1.mp4"]}))
    lines.append(json.dumps({**json.loads(lines[0]), "id": "p10", "labels": {"OA": "maybe"}}))
    (bench / "a.jsonl").write_text("\n".join(lines) + "\n")
    res = load_items(bench / "a.jsonl")
    assert [it.id for it in res.items] == ["p1"]
    problems = {p.line: p.problem for p in res.skipped}
    assert "duplicate id 'p1' (first at line 1)" in problems[2]
    assert "colour" in problems[3]
    assert "needs 2 video(s)" in problems[4]
    assert "unknown label 'maybe' in labels.OA" in problems[5]


def test_unknown_file_type_and_missing_file(bench: Path) -> None:
    (bench / "x.parquet").write_bytes(b"PAR1")
    with pytest.raises(DataError, match="use .csv, .jsonl or .json"):
        load_items(bench / "x.parquet")
    with pytest.raises(DataError, match="not found"):
        load_items(bench / "nope.csv")
    with pytest.raises(DataError, match="unknown benchmark format"):
        load_items(bench / "videogen_rewardbench.csv", format="vbench")
