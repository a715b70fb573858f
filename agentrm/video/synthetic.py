"""Synthetic test videos whose frames carry their own index, and a reader for it.

Exactness cannot be tested with natural video: two neighbouring frames look almost alike, so a decoder that
returns frame 121 for 120 passes any "looks right" check. Here every frame shows its 0-based index as a grid
of black/white blocks (4 rows x 6 columns = 20 index bits + 4 check bits), large enough to survive lossy
codecs and resizing down to about 56x28 pixels. `read_index` turns pixels back into the index, or raises if
the blocks are unreadable (a grey, blended or damaged frame never reads as a valid index, thanks to the check
bits).

    timestamps = write_index_video("v.mp4", num_frames=300, fps=30, size=(128, 72), codec="libx264", gop=60)
    assert read_index(open_video("v.mp4").get([123])[0].pixels) == 123

Tests, the demo and the synthetic data sets reuse these writers, and `benchmarks/frames.py` makes its long
videos with them (ultrafast x264, so a 60-minute 640x360 video takes a minute or two).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

ROWS, COLS = 4, 6
INDEX_BITS = 20
CHECK_BITS = ROWS * COLS - INDEX_BITS
MAX_INDEX = 2**INDEX_BITS - 1
_VFR_TICKS = (1, 2, 1, 3, 1, 1, 4)  # frame i lasts _VFR_TICKS[i % 7] / fps seconds when vfr=True


def _check(index: int) -> int:
    """4 check bits: XOR of the index's nibbles and 0b1010, so that all-black and all-white frames fail."""
    c = 0b1010
    for shift in range(0, INDEX_BITS, 4):
        c ^= (index >> shift) & 0xF
    return c


def index_bits(index: int) -> np.ndarray:
    """The ROWS x COLS grid of bits (1 = white) that encodes `index`, most significant bit first."""
    if not 0 <= index <= MAX_INDEX:
        raise ValueError(f"index {index} does not fit in {INDEX_BITS} bits (0..{MAX_INDEX})")
    word = (index << CHECK_BITS) | _check(index)
    bits = [(word >> (ROWS * COLS - 1 - k)) & 1 for k in range(ROWS * COLS)]
    return np.array(bits, dtype=np.uint8).reshape(ROWS, COLS)


def index_image(index: int, size: tuple[int, int]) -> np.ndarray:
    """A (h, w) uint8 luma image showing `index` as blocks; size is (width, height) like the writers take."""
    w, h = size
    rows = np.arange(h) * ROWS // h
    cols = np.arange(w) * COLS // w
    return index_bits(index)[rows[:, None], cols[None, :]] * np.uint8(255)


def read_index(pixels: np.ndarray) -> int:
    """Decode the index drawn by `index_image` from an (H, W, 3) or (H, W) uint8 frame of any size >= 24x16.

    Each block is read from its central half (resizing blurs block edges). Raises ValueError when a block is
    neither clearly black nor clearly white, or when the check bits do not match: a wrong or damaged frame
    never reads as a valid index.
    """
    img = pixels.astype(np.float32)
    if img.ndim == 3:
        img = img.mean(axis=2)
    h, w = img.shape
    word = 0
    for r in range(ROWS):
        for c in range(COLS):
            y0, y1 = r * h / ROWS, (r + 1) * h / ROWS
            x0, x1 = c * w / COLS, (c + 1) * w / COLS
            dy, dx = (y1 - y0) / 4, (x1 - x0) / 4
            block = img[int(y0 + dy) : max(int(y0 + dy) + 1, int(np.ceil(y1 - dy))),
                        int(x0 + dx) : max(int(x0 + dx) + 1, int(np.ceil(x1 - dx)))]  # fmt: skip
            level = float(block.mean())
            if 64 < level < 192:
                raise ValueError(f"block ({r}, {c}) is grey ({level:.0f}), not an index frame")
            word = (word << 1) | int(level >= 128)
    index, check = word >> CHECK_BITS, word & (2**CHECK_BITS - 1)
    if _check(index) != check:
        raise ValueError(f"check bits {check:04b} do not match index {index} (expected {_check(index):04b})")
    return index


def frame_times(num_frames: int, fps: float, vfr: bool = False) -> list[float]:
    """Presentation times (seconds) of the frames `write_index_video` writes with these arguments."""
    if not vfr:
        return [i / fps for i in range(num_frames)]
    ticks = np.concatenate([[0], np.cumsum([_VFR_TICKS[i % len(_VFR_TICKS)] for i in range(num_frames - 1)])])
    return [float(t) / fps for t in ticks]


def write_index_video(
    path: str | os.PathLike[str],
    num_frames: int,
    fps: float = 30.0,
    size: tuple[int, int] = (128, 72),
    codec: str = "libx264",
    gop: int = 30,
    vfr: bool = False,
    options: dict[str, str] | None = None,
) -> list[float]:
    """Encode `num_frames` index frames to `path` and return their presentation times in seconds.

    size is (width, height). gop is the maximum keyframe interval. vfr=True gives frames irregular durations
    (1-4 ticks of 1/fps, see `frame_times`) written as true variable-frame-rate timestamps. `options` go to
    the encoder (defaults: preset ultrafast for x264/x265, 2 Mb/s for MPEG-1/2/4). The container follows the
    file extension (.mp4, .mkv, .webm, .ts, .avi, ...).
    """
    import av  # lazy: keep `import agentrm.video` cheap

    if codec == "libsvtav1":
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints a banner per encoder without this
    opts = dict(options or {})
    if codec in ("libx264", "libx265"):
        opts.setdefault("preset", "ultrafast")
    if codec == "libx265":
        opts.setdefault("x265-params", "log-level=error")
    if codec in ("mpeg1video", "mpeg2video", "mpeg4"):
        opts.setdefault("b", "2M")  # their default 200 kb/s blurs some blocks to grey
    w, h = size
    times = frame_times(num_frames, fps, vfr)
    rate = Fraction(fps).limit_denominator(1001)
    tick = Fraction(1, 90000) if vfr else 1 / rate
    with av.open(str(path), "w") as container:
        stream: Any = container.add_stream(codec, rate=rate, options=opts)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.gop_size = gop
        if vfr:
            stream.codec_context.time_base = tick
            stream.time_base = tick
        chroma = np.full((h // 2, w), 128, np.uint8)  # U then V plane, packed as yuv420p rows
        for i in range(num_frames):
            luma = index_image(i, size)
            frame = av.VideoFrame.from_ndarray(np.concatenate([luma, chroma]), format="yuv420p")
            frame.pts = round(Fraction(times[i]) / tick) if vfr else i
            frame.time_base = tick
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return times


def write_index_frames(
    directory: str | os.PathLike[str],
    num_frames: int,
    size: tuple[int, int] = (128, 72),
    fps: float | None = None,
    ext: str = "png",
    names: Sequence[str] | None = None,
) -> list[Path]:
    """Write a directory of index frames (a "video" as some data sets ship it) and return the image paths.

    Default names are frame_00000.png, ...; pass `names` to test other orderings. fps, when given, is written
    to `fps.txt`, which the frame-directory source reads (without it the source assumes 1 frame per second).
    """
    from PIL import Image

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    names = list(names) if names is not None else [f"frame_{i:05d}.{ext}" for i in range(num_frames)]
    if len(names) != num_frames:
        raise ValueError(f"got {len(names)} names for {num_frames} frames")
    paths = []
    for i, name in enumerate(names):
        rgb = np.repeat(index_image(i, size)[:, :, None], 3, axis=2)
        paths.append(out / name)
        Image.fromarray(rgb).save(paths[-1])
    if fps is not None:
        (out / "fps.txt").write_text(f"{fps}\n")
    return paths
