"""Every backend returns exactly the frames asked for, in the order asked, or refuses loudly.

The videos show their own index as blocks (agentrm.video.synthetic), so "exact" is checked on the pixels: a
neighbouring frame would read as another number.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from agentrm.config import VideoConfig
from agentrm.errors import VideoDecodeError
from agentrm.video import open_video
from agentrm.video.alt_backends import OpenCVSource
from agentrm.video.synthetic import read_index

Video = tuple[Path, list[float]]
N_FRAMES = 150  # as made by the `video` fixture (tests/video/conftest.py)

ALL = ["h264", "h264_bframes", "hevc", "mpeg4", "vp9", "av1", "h264_ts", "mpeg2_ps", "vfr_mp4", "vfr_mkv"]
DECORD_OK = ["h264", "h264_bframes", "mpeg4", "vfr_mp4", "vfr_mkv"]
DECORD_REFUSED = ["hevc", "vp9", "av1"]
OPENCV_OK = ["h264", "h264_bframes", "hevc", "mpeg4", "vp9", "vfr_mp4", "vfr_mkv"]


def shuffled_request(seed: int) -> list[int]:
    """Every frame once in random order, plus duplicates (one of them adjacent)."""
    order = list(range(N_FRAMES))
    random.Random(seed).shuffle(order)
    return order + [order[0], 7, 7, N_FRAMES - 1]


def assert_exact(video: Callable[[str], Video], name: str, config: VideoConfig) -> None:
    path, times = video(name)
    with open_video(path, config) as src:
        assert src.meta.num_frames == N_FRAMES
        want = shuffled_request(seed=len(name))
        frames = src.get(want, max_pixels=56 * 56)
        assert [f.index for f in frames] == want
        assert [read_index(f.pixels) for f in frames] == want
        # timestamps from the index, to the container's time-base precision (1 ms in WebM/MKV)
        assert np.allclose([f.timestamp_s for f in frames], [times[i] for i in want], atol=1.5e-3)
        # one frame per call, jumping around: every call seeks or goes on decoding
        for i in random.Random(1).sample(range(N_FRAMES), 12) + [0, N_FRAMES - 1]:
            (frame,) = src.get([i])
            assert read_index(frame.pixels) == i
            assert frame.pixels.shape == (72, 128, 3) and frame.pixels.dtype == np.uint8


@pytest.mark.parametrize("name", ALL)
def test_pyav_exact(video: Callable[[str], Video], cfg: Callable[..., VideoConfig], name: str) -> None:
    assert_exact(video, name, cfg(backend="pyav"))


@pytest.mark.parametrize("name", DECORD_OK)
def test_decord_exact(video: Callable[[str], Video], cfg: Callable[..., VideoConfig], name: str) -> None:
    pytest.importorskip("decord")
    assert_exact(video, name, cfg(backend="decord"))


@pytest.mark.parametrize("name", DECORD_REFUSED)
def test_decord_refuses_codecs_it_gets_wrong(
    video: Callable[[str], Video], cfg: Callable[..., VideoConfig], name: str
) -> None:
    """decord returned frames 3 too late after seeking in HEVC, and cannot read VP9/AV1: refused up front."""
    path, _ = video(name)
    with pytest.raises(VideoDecodeError, match="backend 'decord' cannot decode") as err:
        open_video(path, cfg(backend="decord"))
    assert str(path) in str(err.value)


@pytest.mark.parametrize("name", OPENCV_OK)
def test_opencv_exact(video: Callable[[str], Video], cfg: Callable[..., VideoConfig], name: str) -> None:
    assert_exact(video, name, cfg(backend="opencv"))


def test_opencv_inexact_seek_is_detected_and_avoided(
    video: Callable[[str], Video], cfg: Callable[..., VideoConfig]
) -> None:
    """In the VFR .mkv, OpenCV's frame seek lands on a wrong frame; the timestamp check catches it and the
    source reads forward from the start instead."""
    path, _ = video("vfr_mkv")
    with open_video(path, cfg(backend="opencv")) as src:
        assert isinstance(src, OpenCVSource) and src.seek_reliable
        (frame,) = src.get([140])
        assert read_index(frame.pixels) == 140
        assert not src.seek_reliable
        assert [read_index(f.pixels) for f in src.get([3, 120, 60])] == [3, 120, 60]


@pytest.mark.parametrize("name", ["h264_ts", "mpeg2_ps"])
def test_opencv_on_mpeg_streams_is_exact_or_fails_loudly(
    video: Callable[[str], Video], cfg: Callable[..., VideoConfig], name: str
) -> None:
    """OpenCV cannot find frames reliably in MPEG-TS/PS here: the timestamp check turns that into an error."""
    path, _ = video(name)
    with open_video(path, cfg(backend="opencv")) as src:
        for i in (140, 5, 77):
            try:
                (frame,) = src.get([i])
            except VideoDecodeError as exc:
                assert str(path) in str(exc) and "use backend 'pyav'" in str(exc)
            else:
                assert read_index(frame.pixels) == i


def test_opencv_on_av1_is_exact_or_refused_at_open(
    video: Callable[[str], Video], cfg: Callable[..., VideoConfig]
) -> None:
    """Whether OpenCV decodes AV1 depends on the FFmpeg its wheel bundles (4.x wheels could not, 5.1 can):
    either every frame is the one asked for, or open_video refuses with the file and the fix."""
    path, _ = video("av1")
    try:
        src = open_video(path, cfg(backend="opencv"))
    except VideoDecodeError as exc:
        assert str(path) in str(exc) and "OpenCV cannot decode" in str(exc) and "use backend 'pyav'" in str(exc)
        return
    with src:
        assert [read_index(f.pixels) for f in src.get([0, 140, 5, 77, 149])] == [0, 140, 5, 77, 149]


def test_opencv_refuses_at_open_when_its_ffmpeg_cannot_decode(
    video: Callable[[str], Video], cfg: Callable[..., VideoConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusal path, made deterministic: a stand-in capture (FakeNoDecodeCapture) opens the file but
    decodes no frame, as OpenCV 4.x did on AV1. The refused capture is released, not leaked."""
    import cv2

    made: list[FakeNoDecodeCapture] = []

    class FakeNoDecodeCapture:
        def __init__(self, *args: object) -> None:
            self.released = False
            made.append(self)

        def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
            return True

        def grab(self) -> bool:
            return False

        def release(self) -> None:
            self.released = True

    path, _ = video("h264_bframes")
    monkeypatch.setattr(cv2, "VideoCapture", FakeNoDecodeCapture)
    with pytest.raises(VideoDecodeError, match="OpenCV cannot decode it") as err:
        open_video(path, cfg(backend="opencv"))
    assert str(path) in str(err.value) and "use backend 'pyav'" in str(err.value)
    assert made and all(cap.released for cap in made)


def test_resized_frames_stay_exact_for_both_factors(
    video: Callable[[str], Video], cfg: Callable[..., VideoConfig]
) -> None:
    path, _ = video("h264_bframes")
    with open_video(path, cfg()) as src:
        cases = [(28, 56 * 56, (28, 56, 3)), (32, 64 * 64, (32, 64, 3)), (28, 10**6, (84, 140, 3))]
        for factor, budget, shape in cases:
            frames = src.get([149, 0, 75], max_pixels=budget, factor=factor)
            assert [f.pixels.shape for f in frames] == [shape] * 3
            assert [read_index(f.pixels) for f in frames] == [149, 0, 75]
