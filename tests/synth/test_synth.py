"""The synthetic task: labels against decoded pixels, what low detail hides, the weak cue, the teacher's traces."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import numpy as np
import pytest

from agentrm.data.loaders import load_items
from agentrm.synth.generate import experiment_config, generate, load_split, pair_labels, write_teacher_traces
from agentrm.synth.scenes import (
    COLOURS,
    DEFECT_WORDS,
    OVERVIEW_FRAMES,
    DefectSpec,
    VideoSpec,
    check_frame,
    overview_indices,
    read_frame,
    render_frame,
)
from agentrm.trace import AnswerEvent, ModelTurnEvent, ToolErrorEvent, ToolResultEvent, read_traces
from agentrm.video import open_video
from agentrm.video.resize import smart_resize

SIZES = {"train": 6, "dev": 0, "test": 2}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate(out, SIZES, seed=3, min_s=60, max_s=80, workers=1)
    return out


def _specs(data: Path) -> dict[str, VideoSpec]:
    rows = [json.loads(line) for line in (data / "specs.jsonl").read_text().splitlines()]
    return {r["video"]: VideoSpec.model_validate(r["spec"]) for r in rows}


def _decode(path: str, max_pixels: int | None = None) -> list[np.ndarray]:
    src = open_video(path)
    n = src.meta.num_frames
    frames = src.get(list(range(n)), max_pixels=max_pixels, factor=28) if max_pixels else src.get(list(range(n)))
    return [f.pixels for f in frames]


def test_labels_match_the_decoded_pixels(data: Path) -> None:
    """Every frame of every written video is read back: the defect each frame shows (from pixels alone) is the
    spec's, inside its frames and nowhere else; the object's colour is the spec's; and labels recomputed from
    what the pixels show equal the items' labels."""
    specs = _specs(data)
    items = load_split(data, "train") + load_split(data, "test")
    assert len(items) == SIZES["train"] + SIZES["test"]
    for item in items:
        seen = []
        for path in item.videos:
            spec = specs[path]
            frames = _decode(path)
            assert len(frames) == spec.num_frames
            shown = set()
            d = spec.defect
            near = set() if d is None else set(range(d.start - 3, d.end + 3))
            for i, px in enumerate(frames):
                if i % 4 and i not in near:  # every defect frame and its neighbours, a quarter of the rest
                    continue
                kind = check_frame(px)
                inside = spec.defect is not None and spec.defect.start <= i < spec.defect.end
                assert kind == (spec.defect.kind if inside else None), (path, i, kind)  # type: ignore[union-attr]
                shown.add(kind)
                if kind not in ("vanish", "flicker"):
                    assert read_frame(px).hue == spec.colour
            seen.append(spec.model_copy(update={"defect": spec.defect if len(shown) > 1 else None}))
        colour = next(c for c in COLOURS if f" {c} " in f" {item.prompt} ")
        labels, _ = pair_labels(seen, colour)
        assert labels == item.labels, item.id
    loaded = load_items(data / "train.jsonl").items  # the agentrm loader reads the files as they are
    assert [i.id for i in loaded] == [i.id for i in load_split(data, "train")]


def test_low_detail_hides_what_high_detail_shows() -> None:
    """The VQ defects are invisible at the overview's detail (area-averaged to 56x56) and obvious at high detail;
    the dimming cue survives low detail."""
    base = VideoSpec(num_frames=200, shape="circle", colour="red", motion="orbit", phase=0.3,
                     cue_frame=100, ramp_frames=50)
    lo = smart_resize(112, 112, 28, 56 * 56)
    assert lo == (56, 56)
    import cv2

    def small(px: np.ndarray) -> np.ndarray:
        return cv2.resize(px, (lo[1], lo[0]), interpolation=cv2.INTER_AREA)

    for kind in ("flicker", "texture"):
        spec = base.model_copy(update={"defect": DefectSpec(kind=kind, start=98, end=103)})
        bad, clean = render_frame(spec, 100), render_frame(base, 100)
        assert check_frame(bad) == kind and check_frame(clean) is None
        diff = np.abs(small(bad).astype(int) - small(clean).astype(int))
        assert check_frame(small(bad)) is None
        assert diff.mean() < 1.0, kind  # only the object's edge pixels differ at all
    dim, normal = (read_frame(small(render_frame(base, i))).brightness for i in (99, 100))
    assert dim < 0.6 * normal
    for kind in ("vanish", "hollow"):  # motion defects: one frame is enough to see them
        spec = base.model_copy(update={"defect": DefectSpec(kind=kind, start=100, end=103)})
        assert check_frame(render_frame(spec, 101)) == kind and check_frame(render_frame(spec, 103)) is None


def test_the_darkest_overview_frame_points_at_the_defect(data: Path) -> None:
    """(c): the darkest of the 8 overview frames (the loop's own overview indices) is the last one before the cue
    frame, where a defect starts — so the range to the next overview frame holds it."""
    from agentrm.episode import uniform_indices

    for spec in _specs(data).values():
        idx = uniform_indices(spec.num_frames, OVERVIEW_FRAMES)
        assert idx == overview_indices(spec.num_frames)
        k = min(range(len(idx)), key=lambda j: read_frame(render_frame(spec, idx[j])).brightness)
        assert idx[k] < spec.cue_frame <= idx[k + 1]


def test_teacher_finds_every_defect_and_answers_right(data: Path) -> None:
    path, mismatches = asyncio.run(write_teacher_traces(data, "train"))
    assert mismatches == []
    traces = read_traces(path)
    items = {i.id: i for i in load_split(data, "train")}
    assert len(traces) == SIZES["train"]
    for tr in traces:
        assert tr.termination == "answer" and tr.num_turns == 3
        assert tr.verdicts == items[tr.id].labels
        assert not [e for e in tr.events if isinstance(e, ToolErrorEvent)]
        results = [e for e in tr.events if isinstance(e, ToolResultEvent)]
        assert [(r.frames[0].video, r.frames[0].detail) for r in results] == [(1, "high"), (2, "high")]
        answer = next(e for e in tr.events if isinstance(e, AnswerEvent))
        assert answer.turn == 3
        for v, kind in enumerate(items[tr.id].meta["defects"], 1):  # the zoom range holds the defect
            high = results[v - 1].frames
            spec = _specs(data)[items[tr.id].videos[v - 1]]
            if kind is not None:
                assert spec.defect is not None
                assert any(spec.defect.start <= f.index < spec.defect.end for f in high)
        # the range is read frame by frame up to the first defective frame, whose label and word end the reading
        texts = " ".join(e.text for e in tr.events if isinstance(e, ModelTurnEvent))
        for v, kind in enumerate(items[tr.id].meta["defects"], 1):
            reading = re.search(rf"v{v} frames: (.*?)\. v{v}: (\w+)", texts)
            assert reading, texts
            words = re.findall(r"[\d.]+s (\w+)", reading[1])
            assert set(words[:-1]) <= {"ok"} and reading[2] == (DEFECT_WORDS[kind] if kind else "clean")
            assert words[-1] == (DEFECT_WORDS[kind] if kind else "ok")
        # the colour line: each video's colour next to the prompt's, a mismatch flagged; the TA label follows the flags
        want = next(c for c in COLOURS if f"a {c} " in items[tr.id].prompt)
        c1, c2 = items[tr.id].meta["colours"]
        flag = {v: " (TA)" if c != want else "" for v, c in ((1, c1), (2, c2))}
        assert items[tr.id].labels["TA"] == ("tie" if flag[1] == flag[2] else ("2" if flag[1] else "1"))
        assert f"Prompt {want}; v1 {c1} vs {want}{flag[1]}, v2 {c2} vs {want}{flag[2]}." in texts
    upath, _ = asyncio.run(write_teacher_traces(data, "train", policy="uniform"))
    uni = read_traces(upath)
    assert all(t.num_turns == 1 and t.termination == "answer" and t.frames_viewed == 0 for t in uni)
    budget = experiment_config().episode.window.max_visual_tokens
    for t in uni:  # the same visual-token budget, spent on 12 high-detail frames per video
        first = next(e for e in t.events if e.kind == "window")
        assert first.state.visual_tokens == budget  # type: ignore[union-attr]
        assert {f.detail for g in first.state.groups for f in g.frames} == {"high"}  # type: ignore[union-attr]


def test_generation_is_deterministic_per_split(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", {"train": 3, "test": 1}, seed=5, min_s=60, max_s=61, workers=1)
    b = generate(tmp_path / "b", {"train": 1, "test": 1}, seed=5, min_s=60, max_s=61, workers=1)
    assert a["test"][0].labels == b["test"][0].labels and a["test"][0].prompt == b["test"][0].prompt
    assert a["train"][0].meta == b["train"][0].meta


def test_cli_generate(tmp_path: Path) -> None:
    from agentrm.cli import main

    rc = main(["synth", "generate", "--out", str(tmp_path), "--train", "2", "--dev", "0", "--test", "1",
               "--min-s", "60", "--max-s", "62", "--workers", "1"])
    assert rc == 0
    assert len(read_traces(tmp_path / "teacher" / "train.jsonl")) == 2
    assert len(read_traces(tmp_path / "teacher_uniform" / "test.jsonl")) == 1
    assert (tmp_path / "prompts" / "system.j2").exists() and (tmp_path / "episode.yaml").exists()
    assert len((tmp_path / "train_pointwise.jsonl").read_text().splitlines()) == 4


def test_tint_cue_points_at_the_defect_without_changing_what_frames_show() -> None:
    """The alternative cue (a magenta tint instead of dimming) marks the same overview frame, and every frame still
    reads as the same defect / clean / colour (the tint stays below the object mask's saturation)."""
    from agentrm.synth.scenes import sample_video_spec

    rng = np.random.default_rng(11)
    for k, defect in enumerate(("flicker", "texture", "vanish", "hollow", None)):
        spec = sample_video_spec(rng, 240 + 60 * k, "square", "blue", "orbit", defect, cue="tint")  # type: ignore[arg-type]
        idx = overview_indices(spec.num_frames)
        j = max(range(len(idx)), key=lambda i: read_frame(render_frame(spec, idx[i])).cue_level)
        assert idx[j] < spec.cue_frame <= idx[j + 1]
        for i in range(spec.cue_frame - 5, spec.cue_frame + 3):
            inside = spec.defect is not None and spec.defect.start <= i < spec.defect.end
            px = render_frame(spec, i)
            assert check_frame(px) == (spec.defect.kind if inside else None), (defect, i)  # type: ignore[union-attr]
            if not inside or defect in ("texture", "hollow"):
                assert read_frame(px).hue == "blue"
