"""Bad input gives an agentrm error naming the file and the problem: never a hang, never a wrong frame."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from agentrm.config import VideoConfig
from agentrm.errors import (
    DecodeTimeoutError,
    FrameIndexError,
    VideoDecodeError,
    VideoError,
    VideoNotFoundError,
)
from agentrm.video import VideoPool, open_video
from agentrm.video import index as index_module
from agentrm.video.pyav_source import PyAVSource, _Lane
from agentrm.video.synthetic import read_index, write_index_video

Video = tuple[Path, list[float]]
BACKENDS = ["pyav", "decord", "opencv"]


def assert_names(err: pytest.ExceptionInfo[VideoError], path: Path) -> None:
    assert err.value.path == str(path) and str(path) in str(err.value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_missing_file(tmp_path: Path, cfg: Callable[..., VideoConfig], backend: str) -> None:
    with pytest.raises(VideoNotFoundError, match="does not exist") as err:
        open_video(tmp_path / "nope.mp4", cfg(backend=backend))
    assert_names(err, tmp_path / "nope.mp4")
    with VideoPool(cfg(backend=backend)) as pool, pytest.raises(VideoNotFoundError):
        pool.open(tmp_path / "nope.mp4")


@pytest.mark.parametrize("backend", BACKENDS)
def test_garbage_bytes(tmp_path: Path, cfg: Callable[..., VideoConfig], backend: str) -> None:
    path = tmp_path / "garbage.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoDecodeError, match="not a readable video") as err:
        open_video(path, cfg(backend=backend))
    assert_names(err, path)


def test_text_file_and_audio_only_file(tmp_path: Path, cfg: Callable[..., VideoConfig]) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("hello\n" * 100)
    with pytest.raises(VideoDecodeError):
        open_video(text, cfg())
    audio = tmp_path / "audio.mkv"
    with av.open(str(audio), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.rate = 8000
        for p in s.encode(frame):
            c.mux(p)
    with pytest.raises(VideoDecodeError, match="no video stream") as err:
        open_video(audio, cfg())
    assert_names(err, audio)


def test_corrupt_bytes_inside_a_video(tmp_path: Path, cfg: Callable[..., VideoConfig]) -> None:
    """Garbage over part of the frame data: every frame is either exact or an error naming the file."""
    path = tmp_path / "damaged.mp4"
    write_index_video(path, 120, 30, (128, 72), gop=30)
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 300] = np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    src = open_video(path, cfg())
    exact, failed = 0, 0
    for i in range(src.meta.num_frames):
        try:
            (frame,) = src.get([i])
        except VideoDecodeError as exc:
            assert str(path) in str(exc)
            failed += 1
            continue
        assert read_index(frame.pixels) == i
        exact += 1
    assert failed >= 1 and exact >= 60


def test_truncated_mp4(tmp_path: Path, cfg: Callable[..., VideoConfig]) -> None:
    """An .mp4 cut short loses its index (moov atom, written last): unreadable, said so."""
    path = tmp_path / "cut.mp4"
    write_index_video(path, 120, 30, (128, 72))
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 6 // 10])
    with pytest.raises(VideoDecodeError, match="not a readable video") as err:
        open_video(path, cfg())
    assert_names(err, path)


def test_truncated_mkv_keeps_its_complete_frames(tmp_path: Path, cfg: Callable[..., VideoConfig]) -> None:
    """A streamable container cut short still has its first frames: the index counts only those, all exact."""
    path = tmp_path / "cut.mkv"
    write_index_video(path, 120, 30, (128, 72))
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 6 // 10])
    src = open_video(path, cfg())
    n = src.meta.num_frames
    assert 30 < n < 120
    assert [read_index(f.pixels) for f in src.get(list(range(n)))] == list(range(n))
    with pytest.raises(FrameIndexError):
        src.get([n])


def test_zero_frames(tmp_path: Path, cfg: Callable[..., VideoConfig]) -> None:
    empty = tmp_path / "empty.mp4"
    with av.open(str(empty), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        c.start_encoding()  # header and an empty track, no frames
    with pytest.raises(VideoDecodeError, match="zero frames") as err:
        open_video(empty, cfg())
    assert_names(err, empty)

    # Packets but no keyframe (a stream cut after its only keyframe): no frame can be decoded exactly.
    whole, cut = tmp_path / "whole.mkv", tmp_path / "no_keyframe.mkv"
    write_index_video(whole, 40, 30, (64, 48), gop=1000)
    with av.open(str(whole)) as src, av.open(str(cut), "w") as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(video=0):
            if packet.size and not packet.is_keyframe:
                packet.stream = out
                dst.mux(packet)
    with pytest.raises(VideoDecodeError, match="zero decodable frames") as err:
        open_video(cut, cfg())
    assert_names(err, cut)


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_of_range_and_non_integer_indices(
    video: Callable[[str], Video], cfg: Callable[..., VideoConfig], backend: str
) -> None:
    path, _ = video("h264")
    src = open_video(path, cfg(backend=backend))
    for bad in ([150], [-1], [0, 10**9]):
        with pytest.raises(FrameIndexError, match=r"frames are 0\.\.149") as err:
            src.get(bad)
        assert_names(err, path)
    for bad_type in ([1.0], [True], ["3"]):
        with pytest.raises(FrameIndexError, match="must be an integer"):
            src.get(bad_type)  # type: ignore[list-item]
    assert read_index(src.get([np.int64(149)])[0].pixels) == 149  # numpy integers are fine


def test_slow_decode_times_out(
    video: Callable[[str], Video], cfg: Callable[..., VideoConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decode that keeps going but too slowly stops itself at the deadline (checked between packets)."""
    path, _ = video("h264")
    src = open_video(path, cfg(decode_timeout_s=0.3))
    real = _Lane.collect

    def slow(self: _Lane, *args: object) -> None:
        time.sleep(0.05)
        real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(_Lane, "collect", slow)
    t0 = time.monotonic()
    with pytest.raises(DecodeTimeoutError, match="decode_timeout_s") as err:
        src.get([29])  # 30 packets x 0.05 s > 0.3 s
    assert time.monotonic() - t0 < 2
    assert_names(err, path)
    monkeypatch.undo()
    assert read_index(src.get([29])[0].pixels) == 29  # the source is still usable


def test_hung_decode_times_out(
    video: Callable[[str], Video], cfg: Callable[..., VideoConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decoder stuck inside one call (as decord does on some files) is abandoned by the watchdog."""
    path, _ = video("h264")
    src = open_video(path, cfg(decode_timeout_s=0.3))
    src.get([1])
    monkeypatch.setattr(PyAVSource, "_decode", lambda self, *a: time.sleep(3))
    t0 = time.monotonic()
    with pytest.raises(DecodeTimeoutError) as err:
        src.get([100])
    assert time.monotonic() - t0 < 2
    assert_names(err, path)
    assert not src.is_open  # the stuck decoder was dropped
    monkeypatch.undo()
    assert read_index(src.get([100])[0].pixels) == 100  # a fresh decoder is opened


def test_hung_indexing_times_out(
    tmp_path: Path, cfg: Callable[..., VideoConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "v.mp4"
    write_index_video(path, 10, 10, (64, 48))
    monkeypatch.setattr(index_module, "build_index", lambda *a: time.sleep(3))
    t0 = time.monotonic()
    with pytest.raises(DecodeTimeoutError, match="indexing") as err:
        open_video(path, cfg(decode_timeout_s=0.3))
    assert time.monotonic() - t0 < 2
    assert_names(err, path)
