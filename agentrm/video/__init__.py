"""Exact, memory-bounded frames from video files and frame directories.

    from agentrm.video import VideoPool
    with VideoPool(cfg.video) as pool:
        src = pool.open("clip.mp4")
        frames = src.get([0, 120, 121], max_pixels=336 * 336, factor=28)  # exact frames, in this order

The default backend (PyAV) builds a packet index when a video is opened (demuxing only, cached on disk), then
serves each request by seeking to keyframes and decoding forward, one pass per GOP. Frame counts and times
come from that index, not from the container header. decord and OpenCV are optional backends behind the same
interface, checked against the same index. See `pyav_source`, `index` and `alt_backends` for the details and
measured trade-offs.
"""

from agentrm.video.base import DecodeStats, Frame, FrameSource, VideoMeta
from agentrm.video.cache import FrameCache
from agentrm.video.pool import VideoPool, make_source, open_video
from agentrm.video.resize import QWEN3_FACTOR, QWEN25_FACTOR, smart_resize, target_size, visual_tokens

__all__ = [
    "QWEN25_FACTOR",
    "QWEN3_FACTOR",
    "DecodeStats",
    "Frame",
    "FrameCache",
    "FrameSource",
    "VideoMeta",
    "VideoPool",
    "make_source",
    "open_video",
    "smart_resize",
    "target_size",
    "visual_tokens",
]
