"""A byte-capped LRU cache of resized frames, shared by every source of a `VideoPool`.

Agentic episodes look at the same frames again (the overview, then a zoom around it; pairwise items open the
same video for several dimensions), so decoded frames are worth keeping, but memory must not grow with the
number or the length of the videos. The cap counts the pixel bytes (`ndarray.nbytes`), which dominate; a frame
larger than the whole cap is simply not cached. Cached arrays are made read-only: callers share them, so they
must copy before editing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

import numpy as np


class FrameCache:
    """LRU of `key -> uint8 array` holding at most `max_bytes` of pixels. Thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    @property
    def nbytes(self) -> int:
        """Pixel bytes held now (always <= max_bytes)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> np.ndarray | None:
        with self._lock:
            arr = self._items.get(key)
            if arr is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return arr

    def put(self, key: Hashable, arr: np.ndarray) -> None:
        """Insert (or refresh) `key`, evicting least recently used frames until the cap holds."""
        arr.setflags(write=False)
        if arr.nbytes > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._items[key] = arr
            self._bytes += arr.nbytes
            while self._bytes > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= evicted.nbytes
                self.evictions += 1

    def drop(self, prefix: Hashable) -> None:
        """Forget every frame whose key starts with `prefix` (a source's fingerprint): its file changed."""
        with self._lock:
            for key in [k for k in self._items if isinstance(k, tuple) and k[:1] == (prefix,)]:
                self._bytes -= self._items.pop(key).nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
