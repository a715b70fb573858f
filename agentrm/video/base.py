"""The frame-source interface every backend implements, and the logic they share.

A `FrameSource` knows its frames' presentation times up front (from a packet index, or the file list of a
frame directory), so metadata, `time_of` and `index_at` never decode. `get` validates the request, serves what
it can from the shared frame cache, asks the backend for the rest (sorted, without duplicates) under a
watchdog, and returns frames in the order asked, duplicates included.

The watchdog: backends decode on a worker thread; if it has not finished after `timeout_s`, the caller gets a
`DecodeTimeoutError` and the source drops that decoder (a C call that hangs cannot be interrupted from Python,
so the stuck thread is abandoned, and the next `get` opens a fresh decoder). Backends also check the deadline
between packets, so a slow but live decode stops itself.
"""

from __future__ import annotations

import operator
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from pydantic import ConfigDict, Field

from agentrm.config import StrictModel
from agentrm.errors import ConfigError, DecodeTimeoutError, FrameIndexError
from agentrm.video.cache import FrameCache
from agentrm.video.resize import QWEN25_FACTOR, target_size

T = TypeVar("T")


class VideoMeta(StrictModel):
    """What a video is, from its packet index (never from the container header, which is often wrong)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="Absolute path of the video file or frame directory.")
    num_frames: int = Field(description="Frames that can be decoded, counted in the packet index.")
    fps: float = Field(description="Average frame rate: num_frames / duration_s.")
    duration_s: float = Field(description="From the first frame's start to the last frame's end.")
    width: int = Field(description="Decoded width in pixels (sample aspect ratio and rotation are not applied).")
    height: int = Field(description="Decoded height in pixels.")
    backend: str = Field(description="Backend decoding the pixels: pyav, decord, opencv or frames (a directory).")
    codec: str = Field("", description="Codec name (e.g. h264), or the image format of a frame directory.")
    vfr: bool = Field(False, description="True when frame durations differ by more than 1% (variable frame rate).")


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame. `pixels` is (H, W, 3) RGB uint8, already resized, and read-only (it may be shared
    with the cache: copy before editing)."""

    index: int
    timestamp_s: float
    pixels: np.ndarray

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


@dataclass
class DecodeStats:
    """Counters for tests and benchmarks. Decode amplification = frames_decoded / frames_returned."""

    frames_decoded: int = 0  # frames the decoder produced, wanted or not
    frames_returned: int = 0  # distinct frames decoded for requests (cache hits not counted)
    seeks: int = 0
    cache_hits: int = 0
    decoder_opens: int = 0

    @property
    def amplification(self) -> float:
        return self.frames_decoded / self.frames_returned if self.frames_returned else 0.0


def call_with_timeout(fn: Callable[[], T], timeout_s: float, path: str, what: str) -> T:
    """Run `fn` on a worker thread; raise DecodeTimeoutError if it is not done after `timeout_s` seconds."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=work, name=f"agentrm-decode:{path[-40:]}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise DecodeTimeoutError(path, timeout_message(what, timeout_s))
    if "error" in box:
        raise box["error"]
    return box["value"]


def timeout_message(what: str, timeout_s: float) -> str:
    return (
        f"{what} took longer than {timeout_s:g}s (VideoConfig.decode_timeout_s); the file may be damaged, "
        "or raise the timeout for very long videos"
    )


def check_deadline(deadline: float, path: str, what: str, timeout_s: float) -> None:
    """Cooperative part of the watchdog: called between packets by the decode loops."""
    if time.monotonic() > deadline:
        raise DecodeTimeoutError(path, timeout_message(what, timeout_s))


class FrameSource(ABC):
    """Exact frames of one video by 0-based presentation-order index. Subclasses implement `_decode`,
    `_release` and `is_open`; everything else (validation, caching, ordering, timeouts, time <-> index) lives
    here."""

    backend: str = ""

    def __init__(
        self,
        meta: VideoMeta,
        times: np.ndarray,
        fingerprint: Hashable,
        frame_cache: FrameCache | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        self._meta = meta
        self._times = np.asarray(times, dtype=np.float64)
        self.fingerprint = fingerprint
        self.cache = frame_cache if frame_cache is not None else FrameCache(0)
        self.timeout_s = timeout_s
        self.stats = DecodeStats()
        self._lock = threading.RLock()
        self._release_requested = False
        # Called with this source whenever it (re)opens a decoder; VideoPool uses it to keep its LRU bounded.
        self.on_decoder_open: Callable[[FrameSource], None] | None = None

    @property
    def meta(self) -> VideoMeta:
        return self._meta

    @property
    def path(self) -> str:
        return self._meta.path

    # --- what backends implement ----------------------------------------------------------------------------
    @abstractmethod
    def _decode(self, indices: list[int], size: tuple[int, int], deadline: float) -> dict[int, np.ndarray]:
        """Decode frames `indices` (sorted, distinct, valid) as (h, w, 3) uint8 arrays of `size`."""

    @abstractmethod
    def _release(self) -> None:
        """Close the decoder (file handle, codec state). The source stays usable: the next get reopens it."""

    def _abandon(self) -> None:
        """Forget a decoder whose worker thread timed out (it may still be running; it must not be closed)."""
        self._release()

    @property
    @abstractmethod
    def is_open(self) -> bool:
        """Whether a decoder is open now."""

    # --- the public interface -------------------------------------------------------------------------------
    def get(self, indices: Sequence[int], max_pixels: int | None = None, factor: int = QWEN25_FACTOR) -> list[Frame]:
        """The exact frames `indices` (0-based, presentation order), in the order asked; duplicates allowed.

        Frames are resized to the Qwen `smart_resize` of the video size for `max_pixels` and `factor`, or
        returned at native size when max_pixels is None.
        """
        wanted = [self._check_index(i) for i in indices]
        try:
            size = target_size(self._meta.height, self._meta.width, max_pixels, factor)
        except ValueError as exc:
            msg = f"cannot resize {self.path} with max_pixels={max_pixels}, factor={factor}: {exc}"
            raise ConfigError(msg) from None
        found: dict[int, np.ndarray] = {}
        missing = []
        for i in sorted(set(wanted)):
            arr = self.cache.get((self.fingerprint, i, size))
            if arr is None:
                missing.append(i)
            else:
                found[i] = arr
                self.stats.cache_hits += 1
        if missing:
            with self._lock:
                deadline = time.monotonic() + self.timeout_s
                try:
                    decoded = call_with_timeout(
                        lambda: self._decode(missing, size, deadline), self.timeout_s, self.path,
                        f"decoding {len(missing)} frame(s)",
                    )  # fmt: skip
                except DecodeTimeoutError:
                    self._abandon()
                    raise
                finally:
                    if self._release_requested:
                        self._release()
                        self._release_requested = False
            for i in missing:
                arr = decoded[i]
                arr.setflags(write=False)
                self.cache.put((self.fingerprint, i, size), arr)
                found[i] = arr
            self.stats.frames_returned += len(missing)
        return [Frame(i, float(self._times[i]), found[i]) for i in wanted]

    def time_of(self, index: int) -> float:
        """Presentation time (seconds from the first frame) of frame `index`."""
        return float(self._times[self._check_index(index)])

    def index_at(self, seconds: float) -> int:
        """The frame shown at `seconds`: the last one starting at or before it. 0 <= seconds <= duration_s."""
        if not 0.0 <= seconds <= self._meta.duration_s:
            raise FrameIndexError(
                self.path,
                f"time {seconds}s is outside the video, whose time range is 0..{self._meta.duration_s:g}s",
            )
        return int(np.searchsorted(self._times, seconds, side="right")) - 1

    def close(self) -> None:
        """Release the decoder now. The index stays: the source can still be used (it reopens on demand)."""
        with self._lock:
            self._release()

    def release_when_idle(self) -> None:
        """Release the decoder now if it is idle, else right after the running decode (never blocks)."""
        if self._lock.acquire(blocking=False):
            try:
                self._release()
            finally:
                self._lock.release()
        else:
            self._release_requested = True

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        m = self._meta
        return f"{type(self).__name__}({m.path!r}, {m.num_frames} frames, {m.fps:.3g} fps, {m.width}x{m.height})"

    # --- helpers --------------------------------------------------------------------------------------------
    def _check_index(self, index: int) -> int:
        if isinstance(index, bool | float):
            raise FrameIndexError(self.path, f"frame index must be an integer, got {index!r}")
        try:
            i = operator.index(index)
        except TypeError:
            raise FrameIndexError(self.path, f"frame index must be an integer, got {index!r}") from None
        if not 0 <= i < self._meta.num_frames:
            raise FrameIndexError(
                self.path, f"frame {i} is outside the video, whose frames are 0..{self._meta.num_frames - 1}"
            )
        return i

    def _opened(self) -> None:
        """Backends call this after opening a decoder."""
        self.stats.decoder_opens += 1
        if self.on_decoder_open is not None:
            self.on_decoder_open(self)
