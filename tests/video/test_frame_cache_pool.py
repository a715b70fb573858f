"""The byte-capped frame cache and the VideoPool's decoder LRU."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from agentrm.config import VideoConfig
from agentrm.video import FrameCache, VideoPool
from agentrm.video.synthetic import read_index, write_index_video

Video = tuple[Path, list[float]]


def test_cache_never_exceeds_its_byte_cap() -> None:
    cache = FrameCache(max_bytes=10_000)
    frame = np.zeros((30, 40, 3), np.uint8)  # 3600 bytes: two fit, three do not
    for k in range(5):
        cache.put(("v", k), frame.copy())
        assert cache.nbytes <= 10_000
    assert len(cache) == 2 and cache.evictions == 3
    assert cache.get(("v", 0)) is None and cache.get(("v", 4)) is not None
    cache.put(("big",), np.zeros((100, 100, 3), np.uint8))  # larger than the cap: not cached, nothing evicted
    assert cache.get(("big",)) is None and len(cache) == 2


def test_cache_is_lru_and_its_frames_read_only() -> None:
    cache = FrameCache(max_bytes=2 * 300)
    a, b, c = (np.full((10, 10, 3), v, np.uint8) for v in (1, 2, 3))
    cache.put("a", a)
    cache.put("b", b)
    assert cache.get("a") is a  # a is now the most recent
    cache.put("c", c)
    assert cache.get("b") is None and cache.get("a") is a and cache.get("c") is c
    with pytest.raises(ValueError):
        a[0, 0, 0] = 9


def test_pool_shares_one_capped_cache(video: Callable[[str], Video], cfg: Callable[..., VideoConfig]) -> None:
    path, _ = video("h264")
    frame_bytes = 28 * 56 * 3
    with VideoPool(cfg(cache_bytes=10 * frame_bytes)) as pool:
        src = pool.open(path)
        assert pool.open(path) is src  # one source per path
        src.get(list(range(0, 40)), max_pixels=56 * 56)
        assert pool.frame_cache.nbytes <= 10 * frame_bytes and len(pool.frame_cache) == 10
        decoded = src.stats.frames_decoded
        again = src.get([39, 35, 30], max_pixels=56 * 56)  # the 10 most recent frames are cached
        assert src.stats.frames_decoded == decoded and src.stats.cache_hits == 3
        assert [read_index(f.pixels) for f in again] == [39, 35, 30]
        src.get([39], max_pixels=None)  # another target size is another cache entry
        assert src.stats.frames_decoded > decoded


def test_pool_keeps_at_most_n_decoders_open(tmp_path: Path, cfg: Callable[..., VideoConfig]) -> None:
    paths = []
    for k in range(3):
        paths.append(tmp_path / f"v{k}.mp4")
        write_index_video(paths[-1], 20 + k, 10, (64, 48))
    with VideoPool(cfg(max_open_decoders=2)) as pool:
        a, b, c = (pool.open(p) for p in paths)
        assert pool.open_decoders == []  # opening indexes; decoders open on the first get
        a.get([5])
        b.get([5])
        assert pool.open_decoders == [str(paths[0]), str(paths[1])]
        c.get([5])
        assert pool.open_decoders == [str(paths[1]), str(paths[2])] and not a.is_open
        assert read_index(a.get([19])[0].pixels) == 19  # an evicted source reopens on demand ...
        assert pool.open_decoders == [str(paths[2]), str(paths[0])] and not b.is_open  # ... evicting the LRU
        assert a.stats.decoder_opens == 2
    assert not a.is_open and not c.is_open


def test_pool_reopens_a_changed_file(tmp_path: Path, cfg: Callable[..., VideoConfig]) -> None:
    path = tmp_path / "v.mp4"
    write_index_video(path, 20, 10, (64, 48))
    with VideoPool(cfg()) as pool:
        old = pool.open(path)
        old.get([3])
        write_index_video(path, 30, 10, (64, 48))
        new = pool.open(path)
        assert new is not old and new.meta.num_frames == 30
        assert read_index(new.get([29])[0].pixels) == 29


def test_pool_from_threads(video: Callable[[str], Video], cfg: Callable[..., VideoConfig]) -> None:
    """Worker threads (as asyncio.to_thread uses) sharing one pool get exact frames."""
    paths = [video("h264")[0], video("vp9")[0]]
    errors: list[BaseException] = []
    with VideoPool(cfg(max_open_decoders=1, cache_bytes=2**16)) as pool:

        def work(seed: int) -> None:
            rng = np.random.default_rng(seed)
            try:
                for _ in range(6):
                    src = pool.open(paths[int(rng.integers(2))])
                    want = [int(x) for x in rng.integers(0, 150, 3)]
                    assert [read_index(f.pixels) for f in src.get(want, max_pixels=56 * 56)] == want
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not errors, errors
