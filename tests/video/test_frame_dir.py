"""A directory of frame images is a video too."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from agentrm.config import VideoConfig
from agentrm.errors import FrameIndexError, VideoDecodeError
from agentrm.video import VideoPool, open_video
from agentrm.video.synthetic import read_index, write_index_frames


def test_frame_directory_is_exact_with_fps_file(tmp_path: Path, cfg: Callable[..., VideoConfig]) -> None:
    write_index_frames(tmp_path / "clip", 25, (96, 64), fps=5)
    (tmp_path / "clip" / "meta.json").write_text("{}")  # not an image: ignored
    src = open_video(tmp_path / "clip", cfg())
    m = src.meta
    assert (m.num_frames, m.fps, m.duration_s, m.width, m.height, m.backend, m.codec) == (
        25, 5.0, 5.0, 96, 64, "frames", "png"
    )  # fmt: skip
    want = [24, 0, 13, 13, 7]
    frames = src.get(want, max_pixels=56 * 56)
    assert [read_index(f.pixels) for f in frames] == want
    assert frames[0].pixels.shape == (28, 56, 3)
    assert [f.timestamp_s for f in frames] == [i / 5 for i in want]
    assert src.index_at(2.7) == 13
    with pytest.raises(FrameIndexError):
        src.get([25])


def test_natural_order_and_default_fps(tmp_path: Path, cfg: Callable[..., VideoConfig]) -> None:
    names = [f"{i}.jpg" for i in range(12)]  # 10.jpg must come after 9.jpg, not after 1.jpg
    write_index_frames(tmp_path / "d", 12, (64, 48), names=names)
    src = open_video(tmp_path / "d", cfg())
    assert src.meta.fps == 1.0 and src.time_of(11) == 11.0
    assert [read_index(f.pixels) for f in src.get(list(range(12)))] == list(range(12))


def test_frame_directory_through_the_pool(tmp_path: Path, cfg: Callable[..., VideoConfig]) -> None:
    write_index_frames(tmp_path / "d", 5, (64, 48))
    with VideoPool(cfg()) as pool:
        assert pool.open(tmp_path / "d") is pool.open(tmp_path / "d")
        assert read_index(pool.open(tmp_path / "d").get([4])[0].pixels) == 4


def test_empty_directory_has_zero_frames(tmp_path: Path, cfg: Callable[..., VideoConfig]) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no frames here")
    with pytest.raises(VideoDecodeError, match="zero frames") as err:
        open_video(tmp_path / "empty", cfg())
    assert str(tmp_path / "empty") in str(err.value)


def test_unreadable_image_and_bad_fps_file(tmp_path: Path, cfg: Callable[..., VideoConfig]) -> None:
    write_index_frames(tmp_path / "d", 4, (64, 48), fps=2)
    (tmp_path / "d" / "frame_00002.png").write_bytes(b"\x89PNG broken")
    src = open_video(tmp_path / "d", cfg())
    assert read_index(src.get([3])[0].pixels) == 3
    with pytest.raises(VideoDecodeError, match="frame_00002.png"):
        src.get([2])
    (tmp_path / "d" / "fps.txt").write_text("fast")
    with pytest.raises(VideoDecodeError, match="fps.txt"):
        open_video(tmp_path / "d", cfg())
