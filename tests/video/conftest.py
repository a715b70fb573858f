"""Small generated videos whose frames show their own index (see agentrm.video.synthetic).

Each video is encoded once per test session (150 frames of 128x72, ~0.1 s each); every test gets its own empty
packet-index cache directory so no test sees another's cached index.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av
import pytest

from agentrm.config import VideoConfig
from agentrm.video.synthetic import write_index_video

N_FRAMES = 150
GOP = 30

# name -> (file name, encoder, encoder options, variable frame rate)
SPECS: dict[str, tuple[str, str, dict[str, str], bool]] = {
    "h264": ("h264.mp4", "libx264", {}, False),  # ultrafast: no B-frames, a keyframe every GOP frames
    "h264_bframes": ("h264_b.mp4", "libx264", {"preset": "medium"}, False),  # B-frames, scene-cut keyframes
    "hevc": ("hevc.mp4", "libx265", {}, False),  # B-frames and open GOPs (leading pictures)
    "mpeg4": ("mpeg4.avi", "mpeg4", {}, False),
    "vp9": ("vp9.webm", "libvpx-vp9", {"deadline": "realtime", "cpu-used": "8"}, False),
    "av1": ("av1.mkv", "libsvtav1", {}, False),  # faster presets blur the blocks too much at 56x28
    "h264_ts": ("h264.ts", "libx264", {"preset": "medium"}, False),  # MPEG-TS: seeking needs the dts
    "mpeg2_ps": ("mpeg2.mpg", "mpeg2video", {}, False),  # MPEG-PS: packets are re-timed after a seek
    "vfr_mp4": ("vfr.mp4", "libx264", {}, True),
    "vfr_mkv": ("vfr.mkv", "libx264", {}, True),  # OpenCV's seeking lands on wrong frames in this one
}

Video = tuple[Path, list[float]]


def has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def video(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Video]:
    """video(name) -> (path, frame times in seconds), encoded on first use; skips without the encoder."""
    root = tmp_path_factory.mktemp("videos")
    made: dict[str, Video] = {}

    def get(name: str) -> Video:
        if name not in made:
            file, encoder, options, vfr = SPECS[name]
            if not has_encoder(encoder):
                pytest.skip(f"PyAV has no {encoder} encoder here")
            times = write_index_video(root / file, N_FRAMES, 30, (128, 72), encoder, GOP, vfr, options)
            made[name] = (root / file, times)
        return made[name]

    return get


@pytest.fixture(autouse=True)
def index_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh packet-index cache per test, also as $AGENTRM_CACHE for code that uses the default."""
    monkeypatch.setenv("AGENTRM_CACHE", str(tmp_path / "agentrm-cache"))
    return tmp_path / "index-cache"


@pytest.fixture
def cfg(index_cache: Path) -> Callable[..., VideoConfig]:
    def make(**kw: object) -> VideoConfig:
        return VideoConfig(index_cache_dir=str(index_cache), **kw)  # type: ignore[arg-type]

    return make
