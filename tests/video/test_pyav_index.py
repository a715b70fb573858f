"""The PyAV packet index and GOP-grouped decoding: metadata, time <-> index, caching, amplification."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import av
import pytest

from agentrm.config import VideoConfig
from agentrm.errors import FrameIndexError
from agentrm.video import open_video, pyav_source
from agentrm.video.pyav_source import DECODER_THREADS, PyAVSource
from agentrm.video.synthetic import frame_times, read_index, write_index_video

Video = tuple[Path, list[float]]
SLACK = DECODER_THREADS + 2  # frame threads make the decoder show a frame a few packets after it is fed


def open_pyav(path: Path, config: VideoConfig) -> PyAVSource:
    src = open_video(path, config)
    assert isinstance(src, PyAVSource)
    return src


def test_metadata_comes_from_the_index(video: Callable[[str], Video], cfg: Callable[..., VideoConfig]) -> None:
    path, _ = video("vp9")
    with av.open(str(path)) as c:
        assert c.streams.video[0].frames == 0  # WebM states no frame count: only the index knows it
    m = open_video(path, cfg()).meta
    assert (m.num_frames, m.width, m.height, m.backend, m.codec) == (150, 128, 72, "pyav", "vp9")
    assert m.fps == pytest.approx(30.0) and m.duration_s == pytest.approx(5.0, abs=2e-3)
    assert not m.vfr
    assert m.path == os.path.abspath(path)


def test_vfr_metadata_and_time_index_round_trip(video: Callable[[str], Video], cfg: Callable[..., VideoConfig]) -> None:
    path, times = video("vfr_mp4")
    src = open_video(path, cfg())
    last_duration = 1 / 30  # frame 149 lasts _VFR_TICKS[149 % 7] = 1 tick
    assert src.meta.vfr
    assert src.meta.duration_s == pytest.approx(times[-1] + last_duration, abs=1e-4)
    assert src.meta.fps == pytest.approx(150 / src.meta.duration_s)
    for i in range(150):
        assert src.time_of(i) == pytest.approx(times[i], abs=1e-4)
        assert src.index_at(src.time_of(i)) == i
    # the frame shown at a time between two frames is the earlier one; the end of the video shows the last
    # frame
    assert src.index_at((times[10] + times[11]) / 2) == 10
    assert src.index_at(src.meta.duration_s) == 149
    for bad in (-0.01, src.meta.duration_s + 0.01):
        with pytest.raises(FrameIndexError, match="outside the video"):
            src.index_at(bad)
    with pytest.raises(FrameIndexError, match=r"0\.\.149"):
        src.time_of(150)


def test_frames_of_one_gop_share_one_decode_pass(
    video: Callable[[str], Video], cfg: Callable[..., VideoConfig]
) -> None:
    path, _ = video("h264")  # keyframes at 0, 30, 60, ...
    src = open_pyav(path, cfg())
    assert src.index.key.nonzero()[0].tolist() == [0, 30, 60, 90, 120]
    frames = src.get([29, 5, 20, 10])
    assert [read_index(f.pixels) for f in frames] == [29, 5, 20, 10]
    assert src.stats.seeks == 1
    assert 30 <= src.stats.frames_decoded <= 30 + SLACK  # frames 0..29 once, not once per wanted frame

    src = open_pyav(path, cfg())
    src.get([95, 35])  # two GOPs: 30..35 and 90..95
    assert src.stats.seeks == 2
    assert src.stats.frames_decoded <= 12 + 2 * SLACK
    assert src.stats.amplification <= (12 + 2 * SLACK) / 2


def test_separate_calls_cost_more_than_one_grouped_call(
    video: Callable[[str], Video], cfg: Callable[..., VideoConfig]
) -> None:
    path, _ = video("h264")
    grouped, single = open_pyav(path, cfg()), open_pyav(path, cfg())
    wanted = [28, 20, 12, 4]
    grouped.get(wanted)
    for i in wanted:  # backwards: each call must seek again
        single.get([i])
    assert single.stats.seeks == 4 and grouped.stats.seeks == 1
    assert single.stats.frames_decoded > 2 * grouped.stats.frames_decoded


def test_reading_forward_never_seeks_again(video: Callable[[str], Video], cfg: Callable[..., VideoConfig]) -> None:
    path, _ = video("h264_bframes")
    src = open_pyav(path, cfg())
    for i in range(0, 150, 3):
        assert read_index(src.get([i])[0].pixels) == i
    assert src.stats.seeks == 1
    assert src.stats.frames_decoded <= 150 + SLACK


def test_parallel_lanes_split_gops_and_stay_exact(
    video: Callable[[str], Video], cfg: Callable[..., VideoConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request spanning many GOPs is cut into runs decoded by several decoders at once; the extra decoders
    are closed afterwards and the answer is the same."""
    monkeypatch.setattr(pyav_source, "MIN_LANE_WORK", 10)
    path, _ = video("h264_bframes")
    src = PyAVSource(str(path), cache_dir=Path(cfg().index_cache_dir or ""), lanes=3)
    want = [149, 3, 40, 41, 95, 120, 3, 66]
    groups: dict[int, list[int]] = {}
    for i in sorted(set(want)):
        groups.setdefault(int(src.index.frame_start[i]), []).append(i)
    runs = pyav_source.split_work(sorted(groups.items()), src.index, 3)
    assert len(runs) == 3 and [g for run in runs for g in run] == sorted(groups.items())
    assert [read_index(f.pixels) for f in src.get(want)] == want
    assert src.stats.decoder_opens == 3 and src.is_open  # one kept open, two extra ones closed
    single = PyAVSource(str(path), cache_dir=Path(cfg().index_cache_dir or ""), lanes=1)
    single.get(want)
    assert single.stats.decoder_opens == 1
    assert single.stats.frames_decoded == src.stats.frames_decoded  # same work, spread over lanes


def test_open_gop_leading_frames_start_one_keyframe_earlier(
    video: Callable[[str], Video], cfg: Callable[..., VideoConfig]
) -> None:
    """x265 writes frames that are decoded after a keyframe but shown before it; they may reference the
    previous GOP, so the index starts them at the previous keyframe. Each is exact when asked for alone."""
    path, _ = video("hevc")
    src = open_pyav(path, cfg())
    idx = src.index
    assert not any(idx.pts[idx.frame_start[i]] > idx.frame_pts[i] for i in range(150))
    keys = idx.key.nonzero()[0]
    rasl = [i for i in range(150) if idx.frame_dec[i] > keys[1] and idx.frame_pts[i] < idx.pts[keys[1]]]
    assert rasl, "expected leading pictures after the second keyframe of the x265 stream"
    for i in rasl:
        fresh = open_pyav(path, cfg())
        assert read_index(fresh.get([i])[0].pixels) == i


def test_index_cache_is_reused_and_invalidated(tmp_path: Path, cfg: Callable[..., VideoConfig]) -> None:
    path = tmp_path / "v.mkv"
    write_index_video(path, 60, 30, (64, 48), gop=30)
    first = open_pyav(path, cfg())
    assert not first.index_from_cache
    cache_files = list(Path(cfg().index_cache_dir or "").glob("*.npz"))
    assert len(cache_files) == 1
    second = open_pyav(path, cfg())
    assert second.index_from_cache
    assert (second.index.pts == first.index.pts).all()
    assert second.meta == first.meta

    mtime = path.stat().st_mtime_ns + 10**9
    os.utime(path, ns=(mtime, mtime))  # same bytes, new mtime: the cached index is not trusted
    third = open_pyav(path, cfg())
    assert not third.index_from_cache and third.meta == first.meta

    write_index_video(path, 90, 30, (64, 48), gop=30)  # a new file at the same path
    fourth = open_pyav(path, cfg())
    assert not fourth.index_from_cache
    assert fourth.meta.num_frames == 90
    assert read_index(fourth.get([89])[0].pixels) == 89


def test_index_cache_location_defaults_to_agentrm_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTRM_CACHE", str(tmp_path / "c"))
    path = tmp_path / "v.mp4"
    write_index_video(path, 10, 10, (64, 48))
    open_video(path)
    assert len(list((tmp_path / "c" / "index").glob("*.npz"))) == 1


def test_damaged_index_cache_is_rebuilt(tmp_path: Path, cfg: Callable[..., VideoConfig]) -> None:
    path = tmp_path / "v.mp4"
    write_index_video(path, 20, 10, (64, 48))
    open_video(path, cfg())
    (cache_file,) = Path(cfg().index_cache_dir or "").glob("*.npz")
    cache_file.write_bytes(b"not an npz")
    src = open_pyav(path, cfg())
    assert not src.index_from_cache and src.meta.num_frames == 20


def test_frame_times_helper_matches_written_vfr_video(tmp_path: Path, cfg: Callable[..., VideoConfig]) -> None:
    path = tmp_path / "v.mkv"
    times = write_index_video(path, 30, 25, (64, 48), vfr=True)
    assert times == frame_times(30, 25, vfr=True)
    src = open_video(path, cfg())
    assert [round(src.time_of(i), 3) for i in range(30)] == [round(t, 3) for t in times]
