"""On-demand frame thumbnails, decoded with the project's frame source and cached on disk as JPEG.

Traces hold frame references, never pixels (every viewer that embedded base64 had to undo it), so the viewer
decodes a frame when a page first asks for it. The episode page asks for all its thumbnails at once; decoding
them one by one would seek the same video dozens of times, so the first miss for a video decodes every frame
of that video the trace references in one `FrameSource.get` call and the other requests find their file
already written.

Cache files are keyed by the video's real path, size and mtime, the frame index and the size name, so a
re-encoded video never shows stale frames. Files are written to a temporary name and renamed, so a reader
never sees half a JPEG.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agentrm.config import VideoConfig

log = logging.getLogger(__name__)

# Size name -> pixel budget. "thumb" fits the episode grid; "large" is the click-to-enlarge view.
SIZES = {"thumb": 240 * 136, "large": 1280 * 720}
FACTOR = 8  # the frame source rounds sides to multiples of this (the model's 28 is not needed for display)
QUALITY = 85


class ThumbCache:
    def __init__(self, cache_dir: str | Path, video_config: VideoConfig | None = None) -> None:
        self.dir = Path(cache_dir) / "thumbs"
        self.dir.mkdir(parents=True, exist_ok=True)
        # Packet indexes of the videos go next to the thumbnails, so the viewer's cache is one folder.
        self.video_config = video_config or VideoConfig(
            index_cache_dir=str(Path(cache_dir) / "video-index"), cache_bytes=32 * 2**20
        )
        self.decoded = 0  # frames decoded by this process (tests check that the disk cache is used)
        self._lock = threading.Lock()  # the pool's decoders are not shared between threads
        self._pool: Any = None

    def path_for(self, video: Path, index: int, size: str) -> Path:
        st = video.stat()
        key = f"{video.resolve()}|{st.st_size}|{st.st_mtime_ns}|{index}|{size}"
        digest = hashlib.sha1(key.encode()).hexdigest()
        return self.dir / digest[:2] / f"{digest}.jpg"

    def get(self, video: Path, index: int, size: str = "thumb", also: Iterable[int] = ()) -> Path:
        """Path of the cached JPEG of frame `index` of `video`, decoding it (and the missing frames among
        `also`) first if needed. Raises agentrm.errors.VideoError subclasses for a missing/corrupt video or a
        bad index."""
        if size not in SIZES:
            raise ValueError(f"unknown thumbnail size {size!r}; use one of {sorted(SIZES)}")
        target = self.path_for(video, index, size)
        if target.exists():
            return target
        with self._lock:
            if target.exists():  # another request decoded it while this one waited
                return target
            source = self._open(video)
            n = int(source.meta.num_frames)
            batch = {i for i in also if 0 <= i < n and not self.path_for(video, i, size).exists()}
            try:
                frames = source.get(sorted(batch | {index}), max_pixels=SIZES[size], factor=FACTOR)
            except Exception:
                if not batch - {index}:
                    raise
                log.warning("batch decode of %s failed; decoding frame %d alone", video, index)
                frames = source.get([index], max_pixels=SIZES[size], factor=FACTOR)
            for frame in frames:
                self._write(self.path_for(video, int(frame.index), size), frame.pixels)
            self.decoded += len(frames)
        return target

    def _open(self, video: Path) -> Any:
        if self._pool is None:
            from agentrm.video import VideoPool  # decoders are imported only when a frame is first needed

            self._pool = VideoPool(self.video_config)
        return self._pool.open(str(video))

    @staticmethod
    def _write(path: Path, pixels: Any) -> None:
        from PIL import Image

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        Image.fromarray(pixels).save(tmp, "JPEG", quality=QUALITY)
        os.replace(tmp, path)

    def close(self) -> None:
        with self._lock:
            close = getattr(self._pool, "close", None)
            if close is not None:
                close()
            self._pool = None
