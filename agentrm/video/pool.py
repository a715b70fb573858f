"""`VideoPool`: open videos by path, keep a few decoders open, and share one frame cache.

An episode (and a batch of concurrent episodes) asks for frames of a handful of videos over and over. The pool
keeps one `FrameSource` per path (re-created when the file's size or mtime changes), an LRU of at most
`VideoConfig.max_open_decoders` open decoders, and ONE byte-capped cache of resized frames for all of them, so
memory is bounded by the config whatever the number or length of the videos.

Thread safety: `open` may be called from several threads (asyncio code runs decoding in worker threads). Each
source serialises its own decoding with a lock; the pool's lock only guards its tables and is never held while
decoding, and evicting a busy source's decoder waits until that source is idle instead of blocking.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

from agentrm.config import VideoConfig
from agentrm.errors import ConfigError, VideoNotFoundError
from agentrm.video.base import FrameSource
from agentrm.video.cache import FrameCache
from agentrm.video.index import default_cache_dir, file_fingerprint


def make_source(
    path: str | os.PathLike[str], config: VideoConfig, frame_cache: FrameCache | None = None
) -> FrameSource:
    """Open `path` with the configured backend (a directory is always read as frame images)."""
    from agentrm.video.alt_backends import DecordSource, OpenCVSource
    from agentrm.video.framedir import FrameDirSource
    from agentrm.video.pyav_source import PyAVSource

    p = os.path.abspath(os.fspath(path))
    if not os.path.exists(p):
        raise VideoNotFoundError(p, "does not exist; check the path (relative paths are resolved from the working dir)")
    timeout = config.decode_timeout_s
    if os.path.isdir(p):
        return FrameDirSource(p, frame_cache=frame_cache, timeout_s=timeout)
    cache_dir = default_cache_dir(config.index_cache_dir)
    backends = {"pyav": PyAVSource, "decord": DecordSource, "opencv": OpenCVSource}
    if config.backend not in backends:
        raise ConfigError(f"video.backend={config.backend!r} is not one of {sorted(backends)}")
    return backends[config.backend](p, cache_dir=cache_dir, frame_cache=frame_cache, timeout_s=timeout)


def open_video(path: str | os.PathLike[str], config: VideoConfig | None = None) -> FrameSource:
    """Open one video on its own (its own frame cache of config.cache_bytes). Use a VideoPool for many."""
    cfg = config or VideoConfig()
    return make_source(path, cfg, FrameCache(cfg.cache_bytes))


class VideoPool:
    """Sources by path, an LRU of open decoders and one shared frame cache; `close()` it (or use `with`)."""

    def __init__(self, config: VideoConfig | None = None) -> None:
        self.config = config or VideoConfig()
        self.frame_cache = FrameCache(self.config.cache_bytes)
        self._sources: dict[str, FrameSource] = {}
        self._open_lru: OrderedDict[str, FrameSource] = OrderedDict()  # sources with an open decoder
        self._lock = threading.Lock()

    def open(self, path: str | os.PathLike[str]) -> FrameSource:
        """The source for `path` (the same object while the file is unchanged). Raises VideoNotFoundError,
        VideoDecodeError or DecodeTimeoutError for bad input."""
        p = os.path.abspath(os.fspath(path))
        if not os.path.exists(p):
            raise VideoNotFoundError(p, "does not exist; check the path")
        with self._lock:
            source = self._sources.get(p)
        if source is not None and self._unchanged(source):
            return source
        fresh = make_source(p, self.config, self.frame_cache)  # outside the lock: indexing can take a while
        fresh.on_decoder_open = self._decoder_opened
        with self._lock:
            old = self._sources.get(p)
            if old is not None and old is not source and self._unchanged(old):  # another thread won the race
                return old
            self._sources[p] = fresh
            self._open_lru.pop(p, None)
        if old is not None:
            old.release_when_idle()
            self.frame_cache.drop(old.fingerprint)
        return fresh

    def __len__(self) -> int:
        return len(self._sources)

    @property
    def open_decoders(self) -> list[str]:
        """Paths whose decoder is open, least recently used first."""
        with self._lock:
            return [p for p, s in self._open_lru.items() if s.is_open]

    def close(self) -> None:
        """Close every decoder and forget every source and cached frame."""
        with self._lock:
            sources = list(self._sources.values())
            self._sources.clear()
            self._open_lru.clear()
        for s in sources:
            s.close()
        self.frame_cache.clear()

    def __enter__(self) -> VideoPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _unchanged(self, source: FrameSource) -> bool:
        if source.backend == "frames":
            st = os.stat(source.path)
            return source.fingerprint == (source.path, source.meta.num_frames, st.st_mtime_ns)
        try:
            return source.fingerprint == file_fingerprint(source.path)
        except FileNotFoundError:
            return False

    def _decoder_opened(self, source: FrameSource) -> None:
        """A source (re)opened its decoder: make it most recent, release the least recent beyond the cap."""
        evict = []
        with self._lock:
            self._open_lru.pop(source.path, None)
            self._open_lru[source.path] = source
            while len(self._open_lru) > self.config.max_open_decoders:
                _, victim = self._open_lru.popitem(last=False)
                evict.append(victim)
        for victim in evict:
            if victim is not source:
                victim.release_when_idle()


def index_cache_dir(config: VideoConfig | None = None) -> Path:
    """Where packet indexes are cached for this config."""
    return default_cache_dir((config or VideoConfig()).index_cache_dir)
