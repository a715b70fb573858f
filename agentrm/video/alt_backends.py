"""Optional backends behind the same interface: decord (the `[decord]` extra) and OpenCV.

Both take their metadata and frame times from the PyAV packet index (never from their own header-based
counts), and both are checked against it, so they refuse or fail loudly instead of returning a wrong frame:

- decord: only H.264 and MPEG-4 Part 2. Refused for HEVC (after a seek in an x265 file it returned frames 3
  later than asked, silently), AV1 (it does not find the stream) and VP9 (failed in the project's
  measurements), and refused when its frame count or frame timestamps disagree with the index. Frames come
  from `get_batch` on the sorted, distinct indices.
- OpenCV: seeks with CAP_PROP_POS_FRAMES, which is exact on constant-frame-rate files but lands on the wrong
  frame in some variable-frame-rate ones (it converts the frame number to a time with the average fps). Every
  frame read is checked against the index's timestamp; after the first mismatch the source stops seeking and
  reads forward from the start instead (exact, slower). Codecs differ by wheel: OpenCV 4.x's bundled
  FFmpeg could not decode AV1 (open refuses with a VideoDecodeError), 5.1's decodes it exactly.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import numpy as np

from agentrm.errors import ConfigError, VideoDecodeError
from agentrm.video.base import FrameSource, check_deadline
from agentrm.video.cache import FrameCache
from agentrm.video.pyav_source import meta_from_index, open_index
from agentrm.video.resize import resize_rgb

log = logging.getLogger(__name__)

DECORD_CODECS = {"h264", "mpeg4"}
DECORD_BATCH = 8  # frames per get_batch call (they come at full size)
GRAB_GAP = 48  # OpenCV: read forward instead of seeking when the next frame is at most this far ahead


class DecordSource(FrameSource):
    backend = "decord"

    def __init__(
        self,
        path: str,
        *,
        cache_dir: Path | None = None,
        frame_cache: FrameCache | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        if importlib.util.find_spec("decord") is None:
            raise ConfigError(
                "VideoConfig.backend='decord' needs decord: pip install 'agentrm[decord]' (or use 'pyav')"
            )
        index, self.index_from_cache, fingerprint = open_index(path, cache_dir, timeout_s)
        if index.codec not in DECORD_CODECS:
            raise VideoDecodeError(
                path,
                f"backend 'decord' cannot decode {index.codec} (it supports {sorted(DECORD_CODECS)} here); "
                "use VideoConfig.backend='pyav'",
            )
        super().__init__(meta_from_index(path, index, self.backend), index.times, fingerprint, frame_cache, timeout_s)
        self._reader: Any = None
        self._checked = False

    @property
    def is_open(self) -> bool:
        return self._reader is not None

    def _release(self) -> None:
        self._reader = None  # decord frees the reader when its last reference goes

    def _open(self) -> Any:
        if self._reader is not None:
            return self._reader
        import decord

        try:
            reader = decord.VideoReader(self.path, ctx=decord.cpu(0), num_threads=1)
        except decord.DECORDError as exc:
            raise VideoDecodeError(self.path, f"decord cannot open it ({str(exc)[:200]}); use backend 'pyav'") from None
        if not self._checked:
            self._check(reader)
        self._reader = reader
        self._opened()
        return reader

    def _check(self, reader: Any) -> None:
        n = self._meta.num_frames
        if len(reader) != n:
            raise VideoDecodeError(
                self.path,
                f"decord sees {len(reader)} frames but the packet index has {n}; use backend 'pyav'",
            )
        starts = reader.get_frame_timestamp(np.arange(n))[:, 0].astype(np.float64)
        tol = 0.5 * float(np.min(np.diff(self._times))) if n > 1 else 1e-3
        if np.max(np.abs((starts - starts[0]) - self._times)) > tol:
            raise VideoDecodeError(self.path, "decord's frame timestamps disagree with the packet index; use 'pyav'")
        self._checked = True

    def _decode(self, indices: list[int], size: tuple[int, int], deadline: float) -> dict[int, np.ndarray]:
        import decord

        reader = self._open()
        out = {}
        for k in range(0, len(indices), DECORD_BATCH):
            chunk = indices[k : k + DECORD_BATCH]
            try:
                batch = reader.get_batch(chunk).asnumpy()  # full-size RGB: keep batches small
            except decord.DECORDError as exc:
                self._release()
                raise VideoDecodeError(self.path, f"decord failed ({str(exc)[:200]}); use backend 'pyav'") from None
            out.update({i: resize_rgb(rgb, size) for i, rgb in zip(chunk, batch, strict=True)})
            self.stats.frames_decoded += len(chunk)  # decord does not say how many it decoded internally
            check_deadline(deadline, self.path, "decoding", self.timeout_s)
        return out


class OpenCVSource(FrameSource):
    backend = "opencv"

    def __init__(
        self,
        path: str,
        *,
        cache_dir: Path | None = None,
        frame_cache: FrameCache | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        index, self.index_from_cache, fingerprint = open_index(path, cache_dir, timeout_s)
        super().__init__(meta_from_index(path, index, self.backend), index.times, fingerprint, frame_cache, timeout_s)
        self._cap: Any = None
        self._next = 0  # index of the frame the next read() returns
        self._base_ms = 0.0  # CAP_PROP_POS_MSEC of frame 0 (timestamps are compared relative to it)
        self.seek_reliable = True
        n = len(self._times)
        self._tol_s = 0.5 * float(np.min(np.diff(self._times))) if n > 1 else 1e-3
        self._open()  # fail at open, not at the first get, when OpenCV cannot decode this codec
        self._release()

    @property
    def is_open(self) -> bool:
        return self._cap is not None

    def _release(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def _abandon(self) -> None:
        self._cap = None

    def _open(self) -> Any:
        if self._cap is not None:
            return self._cap
        import cv2

        cap = cv2.VideoCapture(self.path, cv2.CAP_FFMPEG)
        if not cap.isOpened():
            raise VideoDecodeError(self.path, "OpenCV cannot open it; use backend 'pyav'")
        ok = cap.grab()
        if not ok:
            cap.release()
            raise VideoDecodeError(self.path, f"OpenCV cannot decode it ({self._meta.codec}?); use backend 'pyav'")
        self._base_ms = float(cap.get(cv2.CAP_PROP_POS_MSEC))
        self._cap, self._next = cap, 1
        self._opened()
        return cap

    def _position(self, i: int) -> None:
        """Make the next read() return frame i: read forward when it is close (or seeking is unreliable)."""
        import cv2

        cap = self._cap
        if not self.seek_reliable and i < self._next:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)  # rewind; frame 0 is found exactly (verified on read anyway)
            self.stats.seeks += 1
            self._next = 0
        if self.seek_reliable and not 0 <= i - self._next <= GRAB_GAP:
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
            self.stats.seeks += 1
        else:
            for _ in range(i - self._next):
                if not cap.grab():
                    raise VideoDecodeError(self.path, f"OpenCV stopped before frame {i}; use backend 'pyav'")
                self.stats.frames_decoded += 1
        self._next = i

    def _read(self, i: int) -> np.ndarray | None:
        """Frame i as RGB, or None when OpenCV returned nothing or a frame with another timestamp."""
        import cv2

        self._position(i)
        ok, bgr = self._cap.read()
        self._next = i + 1
        if not ok:
            return None
        self.stats.frames_decoded += 1
        got_s = (float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) - self._base_ms) / 1000
        if abs(got_s - self._times[i]) > self._tol_s:
            return None
        return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))

    def _decode(self, indices: list[int], size: tuple[int, int], deadline: float) -> dict[int, np.ndarray]:
        self._open()
        out = {}
        for i in indices:
            rgb = self._read(i)
            if rgb is None and self.seek_reliable:
                log.info("%s: OpenCV seeking is inexact here; reading forward from the start", self.path)
                self.seek_reliable = False
                self._next = 1 << 62  # force a rewind
                rgb = self._read(i)
            if rgb is None:
                raise VideoDecodeError(self.path, f"OpenCV returned a wrong or no frame for {i}; use backend 'pyav'")
            out[i] = resize_rgb(rgb, size)
            check_deadline(deadline, self.path, "decoding", self.timeout_s)
        return out
