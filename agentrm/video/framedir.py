"""A directory of frame images used as a video (some data sets ship frames, not files).

Frame order is the natural sort of the file names (frame_2.png before frame_10.png; zero-padded names sort the
same either way). Image files are those with a common image extension; anything else (fps.txt, .json sidecars)
is ignored. The frame rate comes from `fps.txt` in the directory (one number, e.g. `8` or `29.97`); without it
we assume 1.0 fps, so frame i is at i seconds: frame indices stay exact, only times depend on this choice.

Every frame is treated as having the first image's size (as in a video): images of another size are resized to
it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from agentrm.errors import VideoDecodeError
from agentrm.video.base import FrameSource, VideoMeta, check_deadline
from agentrm.video.cache import FrameCache
from agentrm.video.resize import resize_rgb

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
FPS_FILE = "fps.txt"
DEFAULT_FPS = 1.0


def _natural_key(name: str) -> list[object]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_frames(directory: str) -> list[Path]:
    names = [e.name for e in os.scandir(directory) if e.is_file() and Path(e.name).suffix.lower() in IMAGE_EXTENSIONS]
    return [Path(directory) / n for n in sorted(names, key=_natural_key)]


def read_fps(directory: str) -> float:
    file = Path(directory) / FPS_FILE
    if not file.exists():
        return DEFAULT_FPS
    text = file.read_text().strip()
    try:
        fps = float(text)
    except ValueError:
        fps = 0.0
    if not fps > 0:
        raise VideoDecodeError(directory, f"{FPS_FILE} must hold one positive number (frames per second), got {text!r}")
    return fps


class FrameDirSource(FrameSource):
    backend = "frames"

    def __init__(self, path: str, *, frame_cache: FrameCache | None = None, timeout_s: float = 60.0) -> None:
        self.files = list_frames(path)
        if not self.files:
            raise VideoDecodeError(
                path,
                f"is a directory without image files ({', '.join(sorted(IMAGE_EXTENSIONS))}): zero frames",
            )
        fps = read_fps(path)
        first = self._read(0)
        height, width = first.shape[:2]
        n = len(self.files)
        meta = VideoMeta(
            path=path,
            num_frames=n,
            fps=fps,
            duration_s=n / fps,
            width=width,
            height=height,
            backend=self.backend,
            codec=self.files[0].suffix.lower().lstrip("."),
            vfr=False,
        )
        st = os.stat(path)
        fingerprint = (path, len(self.files), st.st_mtime_ns)
        super().__init__(meta, np.arange(n) / fps, fingerprint, frame_cache, timeout_s)

    @property
    def is_open(self) -> bool:
        return False  # no decoder state is kept between calls

    def _release(self) -> None:
        pass

    def _read(self, i: int) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        file = self.files[i]
        try:
            with Image.open(file) as img:
                return np.asarray(img.convert("RGB"))
        except FileNotFoundError:
            raise VideoDecodeError(str(file.parent), f"frame file {file.name} disappeared") from None
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise VideoDecodeError(
                str(file.parent), f"frame {i} ({file.name}) is not a readable image: {exc}"
            ) from None

    def _decode(self, indices: list[int], size: tuple[int, int], deadline: float) -> dict[int, np.ndarray]:
        out = {}
        native = (self._meta.height, self._meta.width)
        for i in indices:
            rgb = self._read(i)
            self.stats.frames_decoded += 1
            if rgb.shape[:2] != native:
                rgb = resize_rgb(rgb, native)
            out[i] = resize_rgb(rgb, size)
            check_deadline(deadline, self.path, "reading frames", self.timeout_s)
        return out
