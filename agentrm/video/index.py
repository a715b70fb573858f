"""The packet index: every frame's timestamp and keyframe, read by demuxing (no decoding), cached on disk.

Why: container headers lie (frame counts are estimates or missing in WebM/MKV, variable-frame-rate files have
no single fps), and seeking by "frame number" is inexact unless you know each frame's timestamp. Demuxing
reads only packet headers, about 1 s per hour of 30 fps video, and gives us for every packet, in decode order,
its presentation timestamp (pts) and whether it is a keyframe. From that:

- frames in presentation order = packets sorted by pts; frame i is the one whose pts is i-th smallest;
- the keyframe to start decoding frame i from = the last keyframe at or before it in decode order whose pts is
  not after frame i's pts (so open-GOP leading pictures, which reference the previous GOP, start one keyframe
  earlier);
- frames that cannot be decoded exactly are left out: those before the first usable keyframe, and those after
  a corrupt (e.g. truncated) packet up to the next keyframe.

The index is cached as .npz keyed by (absolute path, size, mtime), so a changed file is re-indexed.
"""

from __future__ import annotations

import array
import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from agentrm.errors import VideoDecodeError
from agentrm.video.base import check_deadline

log = logging.getLogger(__name__)

INDEX_VERSION = 2


def default_cache_dir(configured: str | None = None) -> Path:
    """VideoConfig.index_cache_dir, else $AGENTRM_CACHE/index, else ~/.cache/agentrm/index."""
    if configured:
        return Path(configured).expanduser()
    if os.environ.get("AGENTRM_CACHE"):
        return Path(os.environ["AGENTRM_CACHE"]).expanduser() / "index"
    return Path.home() / ".cache" / "agentrm" / "index"


def file_fingerprint(path: str) -> tuple[str, int, int]:
    """(absolute path, size, mtime_ns): the identity of a file's content for every cache."""
    st = os.stat(path)
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns)


@dataclass
class PacketIndex:
    """Decode-order packet arrays and stream facts; presentation-order arrays are derived on creation."""

    pts: np.ndarray  # int64, decode order, in time_base units
    key: np.ndarray  # bool, decode order
    corrupt: np.ndarray  # bool, decode order
    discard: np.ndarray  # bool, decode order: decoded (it may be a reference) but not shown, e.g. before an edit list
    time_base: Fraction
    end_pts: int  # where the last frame ends (its pts + duration), in time_base units
    width: int
    height: int
    codec: str
    stream_index: int
    key_dts: np.ndarray  # int64, one per keyframe: its dts (pts if unknown), a second seek target
    rate: Fraction | None = None  # the container's average frame rate, if it states one
    # presentation order (derived):
    frame_pts: np.ndarray = field(init=False)  # int64, sorted
    frame_dec: np.ndarray = field(init=False)  # decode position of each frame
    frame_start: np.ndarray = field(init=False)  # decode position of the keyframe to start decoding it from
    times: np.ndarray = field(init=False)  # float64 seconds from the first frame
    # any packet's pts -> decode position (for locating the demuxer after a seek):
    sorted_pts: np.ndarray = field(init=False)
    sorted_dec: np.ndarray = field(init=False)
    key_positions: np.ndarray = field(init=False)  # decode positions of the keyframes

    def __post_init__(self) -> None:
        n = len(self.pts)
        dec = np.arange(n)
        self.key_positions = np.flatnonzero(self.key)
        last_key = np.maximum.accumulate(np.where(self.key, dec, -1)) if n else dec
        start = last_key.copy()
        # Open GOP: a frame decoded after keyframe k but shown before it may reference the previous GOP.
        for d in np.nonzero((start >= 0) & (self.pts[np.maximum(start, 0)] > self.pts))[0]:
            s = int(start[d])
            while s >= 0 and self.pts[s] > self.pts[d]:
                s = int(last_key[s - 1]) if s > 0 else -1
            start[d] = s
        valid = (start >= 0) & ~self.discard
        for d in np.nonzero(self.corrupt)[0]:  # a damaged packet spoils its GOP from there on
            later_keys = np.nonzero(self.key[d + 1 :])[0]
            valid[d : d + 1 + later_keys[0] if len(later_keys) else n] = False
        order = np.argsort(self.pts, kind="stable").astype(np.int32)
        frames = order[valid[order]]
        self.frame_pts, self.frame_dec, self.frame_start = (
            self.pts[frames],
            frames,
            start[frames].astype(np.int32),
        )
        # any packet's pts -> decode position; shares the frame arrays when every packet is a frame (the usual
        # case)
        all_frames = len(frames) == n
        self.sorted_pts = self.frame_pts if all_frames else self.pts[order]
        self.sorted_dec = frames if all_frames else order
        if len(self.frame_pts) > 1 and np.any(np.diff(self.frame_pts) == 0):
            raise ValueError("duplicate presentation timestamps")
        first = int(self.frame_pts[0]) if len(self.frame_pts) else 0
        self.times = (self.frame_pts - first).astype(np.float64) * float(self.time_base)

    @property
    def num_frames(self) -> int:
        return len(self.frame_pts)

    @property
    def duration_s(self) -> float:
        if not self.num_frames:
            return 0.0
        return float((self.end_pts - int(self.frame_pts[0])) * self.time_base)

    @property
    def vfr(self) -> bool:
        """Frame durations differ by more than 1% (beyond the rounding of timestamps to the time base)."""
        if self.num_frames < 3:
            return False
        d = np.diff(self.frame_pts)
        return bool(d.max() - d.min() > max(2, 0.01 * float(np.median(d))))

    @property
    def fps(self) -> float:
        """Average frame rate from the index; the container's stated rate when it agrees within 1%."""
        duration = self.duration_s
        measured = self.num_frames / duration if duration > 0 else 0.0
        if self.rate and measured and abs(float(self.rate) - measured) < 0.01 * measured:
            return float(self.rate)
        return measured

    def seek_targets(self, start: int) -> list[int]:
        """Timestamps to seek to for keyframe `start`, best first: its pts (exact in MP4/MKV), its dts (exact in
        MPEG-TS, where seeking to the pts overshoots), then the dts of the two keyframes before it."""
        k = int(np.searchsorted(self.key_positions, start))
        return [int(self.pts[start])] + [int(self.key_dts[j]) for j in (k, k - 1, k - 2) if j >= 0]

    def dec_of(self, pts: int | None) -> int:
        """Decode position of the packet with this pts, or -1 if no indexed packet has it."""
        if pts is None:
            return -1
        i = int(np.searchsorted(self.sorted_pts, pts))
        return int(self.sorted_dec[i]) if i < len(self.sorted_pts) and self.sorted_pts[i] == pts else -1

    # --- disk cache -----------------------------------------------------------------------------------------
    def save(self, file: Path, key: str) -> None:
        meta = {
            "key": key,
            "time_base": [self.time_base.numerator, self.time_base.denominator],
            "end_pts": self.end_pts,
            "width": self.width,
            "height": self.height,
            "codec": self.codec,
            "stream_index": self.stream_index,
            "rate": [self.rate.numerator, self.rate.denominator] if self.rate else None,
        }
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(f"{file.name}.{os.getpid()}-{threading.get_ident()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(
                f, meta=np.array(json.dumps(meta)), pts=self.pts, key=self.key, corrupt=self.corrupt,
                discard=self.discard, key_dts=self.key_dts,
            )  # fmt: skip
        os.replace(tmp, file)

    @classmethod
    def load(cls, file: Path, key: str) -> PacketIndex | None:
        """The cached index, or None when absent, stale or unreadable (it is then rebuilt)."""
        try:
            with np.load(file, allow_pickle=False) as z:
                meta: dict[str, Any] = json.loads(str(z["meta"]))
                if meta.get("key") != key:
                    return None
                return cls(
                    pts=z["pts"].astype(np.int64),
                    key=z["key"].astype(bool),
                    corrupt=z["corrupt"].astype(bool),
                    discard=z["discard"].astype(bool),
                    time_base=Fraction(*meta["time_base"]),
                    end_pts=int(meta["end_pts"]),
                    width=int(meta["width"]),
                    height=int(meta["height"]),
                    codec=str(meta["codec"]),
                    stream_index=int(meta["stream_index"]),
                    key_dts=z["key_dts"].astype(np.int64),
                    rate=Fraction(*meta["rate"]) if meta.get("rate") else None,
                )
        except FileNotFoundError:
            return None
        except Exception as exc:  # a damaged cache file must never stop decoding: rebuild it
            log.warning("ignoring unreadable index cache %s (%s)", file, exc)
            return None


def cache_key(fingerprint: tuple[str, int, int]) -> str:
    path, size, mtime_ns = fingerprint
    return f"v{INDEX_VERSION}|{path}|{size}|{mtime_ns}"


def cache_file(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.npz"


def build_index(path: str, deadline: float, timeout_s: float) -> PacketIndex:
    """Demux (never decode) the first video stream of `path` into a PacketIndex."""
    import av

    try:
        container = av.open(path)
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise VideoDecodeError(path, f"not a readable video ({exc}); check the file is complete") from None
    with container:
        if not container.streams.video:
            # FFmpeg hides an .mp4 track without samples, so an empty video shows up as a file without streams
            raise VideoDecodeError(path, "has no video stream" if len(container.streams) else "is empty: zero frames")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        # compact buffers (8 + 3 bytes per packet): Python lists of ints would cost ~10x that on long videos
        pts, key_dts = array.array("q"), array.array("q")
        key, corrupt, discard = bytearray(), bytearray(), bytearray()
        end = 0
        try:
            for n, packet in enumerate(container.demux(stream)):
                if not n & 4095:
                    check_deadline(deadline, path, "indexing", timeout_s)
                p = packet.pts
                if p is None:
                    if not packet.size:  # the demuxer's end-of-stream marker
                        continue
                    raise VideoDecodeError(
                        path,
                        "has packets without timestamps (a raw stream?); remux: ffmpeg -i IN -c copy OUT.mkv",
                    )
                hidden, is_key = packet.is_discard, packet.is_keyframe
                pts.append(p)
                key.append(is_key)
                if is_key:
                    key_dts.append(p if packet.dts is None else packet.dts)
                corrupt.append(packet.is_corrupt)
                discard.append(hidden)
                if not hidden:
                    end = max(end, p + (packet.duration or 0))
        except av.FFmpegError as exc:
            if not pts:
                raise VideoDecodeError(path, f"cannot be demuxed ({exc})") from None
            log.warning("%s: demuxing stopped after %d packets (%s); later frames are lost", path, len(pts), exc)
        arr = np.array(pts, dtype=np.int64)
        flags = {name: np.frombuffer(bytes(buf), dtype=bool) for name, buf in
                 [("key", key), ("corrupt", corrupt), ("discard", discard)]}  # fmt: skip
        shown = arr[~flags["discard"]]
        if len(shown) and end <= shown.max():  # no packet durations: the last frame lasts the median step
            end = int(shown.max() + (np.median(np.diff(np.sort(shown))) if len(shown) > 1 else 1))
        try:
            return PacketIndex(
                pts=arr,
                key=flags["key"],
                corrupt=flags["corrupt"],
                discard=flags["discard"],
                time_base=Fraction(stream.time_base or Fraction(1, 1)),
                end_pts=int(end),
                width=int(ctx.width),
                height=int(ctx.height),
                codec=str(getattr(ctx.codec, "canonical_name", ctx.name)),
                stream_index=int(stream.index),
                key_dts=np.array(key_dts, dtype=np.int64),
                rate=Fraction(stream.average_rate) if stream.average_rate else None,
            )
        except ValueError as exc:
            raise VideoDecodeError(path, f"cannot be indexed exactly: {exc}") from None


def load_or_build_index(
    path: str, cache_dir: Path | None, deadline: float, timeout_s: float
) -> tuple[PacketIndex, bool]:
    """The index of `path` and whether it came from the disk cache. cache_dir=None disables the cache."""
    fingerprint = file_fingerprint(path)
    key = cache_key(fingerprint)
    file = cache_file(cache_dir, key) if cache_dir is not None else None
    if file is not None:
        cached = PacketIndex.load(file, key)
        if cached is not None:
            return cached, True
    t0 = time.perf_counter()
    index = build_index(path, deadline, timeout_s)
    log.debug("indexed %s: %d frames in %.2fs", path, index.num_frames, time.perf_counter() - t0)
    if file is not None:
        try:
            index.save(file, key)
        except OSError as exc:
            log.warning("cannot write index cache %s (%s); set VideoConfig.index_cache_dir", file, exc)
    return index, False
