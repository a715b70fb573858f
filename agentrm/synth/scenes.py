"""The synthetic long-video preference task: scenes, defects, labels — designed so that looking around pays off.

Why a synthetic task: nobody here can download a 7B checkpoint or a real benchmark, yet the claim to check is
VR-Thinker's "the agentic loop beats a same-budget non-agentic reward model, especially for longer videos". The task
is built so that this claim is *true by construction for a model that searches well* and checkable from pixels:

Scene (one video, 1-5 minutes, 112x112, 2 fps, lossless H.264 so the pixels are exactly what was rendered): a
coloured shape (circle or square; red, green, blue or yellow) on a grey gradient, moving slowly along a path
(one revolution or one left-to-right sweep over the whole video), as the text prompt says.

(a) The low-detail overview alone is not enough. Every defect is **short and local in time** (max(1.5 s,
    duration/60)): 8 overview frames of a 2-minute video are 15 s apart, so they (almost) never land on it. And
    every video — defective or clean — has exactly one **disturbance** (the lights dim for ~2 overview spacings),
    so the overview shows "something happens around here" in both videos and cannot tell which one is broken.
(b) The deciding evidence needs detail and is local. The two visual-quality defects are **mean-preserving 1-pixel
    checkerboards** (`flicker`: over the whole frame; `texture`: on the object): the frame source shrinks frames
    with area averaging, and at the low detail (56x56 from 112x112, 2x2 averaging) a checkerboard averages to
    exactly the clean frame — only a high-detail frame shows it. The motion defects (`vanish`: the object is gone;
    `jump`: it is on the opposite side of its path) are visible only on the few frames they last.
(c) Like real videos, there are weak cues that make searching better than blind: a defect always sits at the
    centre of its video's disturbance, and the dimming is a triangle peaking there (down to 55 % brightness). The
    dimming survives low detail, so a searcher can go overview (darkest overview frame) -> a low-detail range
    between that frame's neighbours (cheap, 4 visual tokens a frame; its darkest frame is within 1/7 of an
    overview spacing of the centre) -> a high-detail range between *that* frame's neighbours (8 frames, spaced
    closer than the defect is long, so one always lands on it) -> confirm. The distractor disturbance of a clean
    video looks the same until the last step. A same-budget uniform model (12 high-detail frames per video) hits a
    defect only by luck, less often the longer the video.
Text alignment (TA) errors contradict the prompt globally (the object has another colour than the prompt says),
so they are visible in any frame: the task does not pretend every dimension needs search.

Labels per pair: VQ/MQ — the video without a defect of that dimension wins, a tie when both or neither have one;
TA — the video whose colour matches the prompt; OA — fewer problems (VQ + MQ + TA counts) wins, equal is a tie.
Pointwise: 5 minus 2 per problem, at least 1. `check_frame` reads a rendered (or decoded) frame and says which
defect it shows; the tests run it on the written videos against the labels.

What it simplifies vs real videos: one object, a synthetic "defect" vocabulary, and a disturbance always present.
A frozen-frames defect is left out (it needs two frames compared, the others need one): a tiny model trained for
minutes on CPU must be able to learn the evidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from agentrm.config import StrictModel

DefectKind = Literal["flicker", "texture", "vanish", "jump"]
DEFECT_DIM: dict[str, str] = {"flicker": "VQ", "texture": "VQ", "vanish": "MQ", "jump": "MQ"}
DEFECT_WORDS: dict[str, str] = {
    "flicker": "the frame flickers with fine noise",
    "texture": "the object has a glitched checker texture",
    "vanish": "the object vanishes",
    "jump": "the object jumps off its path",
}
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (195, 60, 60), "green": (60, 180, 70), "blue": (60, 80, 195), "yellow": (190, 180, 60),
}
SHAPES = ("circle", "square")
MOTIONS: dict[str, str] = {"orbit": "moving in a slow circle", "sweep": "sliding slowly from left to right"}
SIZE = 112  # frame side (px): 16 visual tokens at high detail, 4 at low (56x56) with Qwen2.5-VL's factor 28
FPS = 2.0
OVERVIEW_FRAMES = 8  # the overview grid the disturbance is sized for (EpisodeConfig.overview.frames_per_video)
CHECKER_AMP = 60  # +-amplitude of the checkerboards; every rendered value stays in [60, 195], nothing clips
DIM_DEPTH = 0.45  # the disturbance dims the background to 55 % at its centre


class DefectSpec(StrictModel):
    kind: DefectKind
    start: int = Field(description="First defective frame (0-based).")
    end: int = Field(description="One past the last defective frame.")

    @property
    def dim(self) -> str:
        return DEFECT_DIM[self.kind]


class VideoSpec(StrictModel):
    """Everything that determines one video's pixels (the video is a pure function of this)."""

    num_frames: int
    fps: float = FPS
    shape: Literal["circle", "square"]
    colour: str = Field(description="Rendered colour (a TA error when it differs from the prompt's).")
    motion: Literal["orbit", "sweep"]
    phase: float = Field(description="Start angle of the orbit (radians) / vertical position of the sweep (0-1).")
    disturbance_center: int = Field(description="Frame where the dimming is deepest.")
    disturbance_halfwidth: int = Field(description="Frames from the centre to where the dimming ends.")
    defect: DefectSpec | None = None

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps


def prompt_text(shape: str, colour: str, motion: str) -> str:
    return f"a {colour} {shape} {MOTIONS[motion]} over a grey background"


def defect_length(num_frames: int, fps: float) -> int:
    """Frames a defect lasts: max(1.5 s, duration / 60) — short and local, longer than the confirm step."""
    return max(3, math.ceil(max(1.5, num_frames / fps / 60) * fps))


def sample_video_spec(rng: np.random.Generator, num_frames: int, shape: str, colour: str, motion: str,
                      defect: DefectKind | None) -> VideoSpec:
    """A video of the given content; the disturbance centre keeps 1.5 overview spacings from both ends, so the
    overview frame nearest it has a neighbour on each side."""
    spacing = num_frames / OVERVIEW_FRAMES
    center = int(rng.uniform(1.5 * spacing, num_frames - 1.5 * spacing))
    spec = None
    if defect is not None:
        n = defect_length(num_frames, FPS)
        spec = DefectSpec(kind=defect, start=center - n // 2, end=center - n // 2 + n)
    return VideoSpec(
        num_frames=num_frames, shape=shape, colour=colour, motion=motion,
        phase=float(rng.uniform(0, 2 * math.pi) if motion == "orbit" else rng.uniform(0.3, 0.7)),
        disturbance_center=center, disturbance_halfwidth=max(2, round(spacing)), defect=spec,
    )


# ------------------------------------------------------------------------------------------------ rendering
def _position(spec: VideoSpec, i: int) -> tuple[float, float]:
    """Object centre (x, y) in pixels at frame i: one slow revolution / sweep over the whole video."""
    u = i / max(1, spec.num_frames - 1)
    if spec.motion == "orbit":
        a = spec.phase + 2 * math.pi * u
        return SIZE / 2 + 30 * math.cos(a), SIZE / 2 + 30 * math.sin(a)
    return 22 + (SIZE - 44) * u, 22 + (SIZE - 44) * spec.phase


def expected_position(spec: VideoSpec, i: int) -> tuple[float, float]:
    """Where frame i shows the object: on its path, or 50 px off it during a jump defect."""
    x, y = _position(spec, i)
    if spec.defect is not None and spec.defect.kind == "jump" and spec.defect.start <= i < spec.defect.end:
        return x + (40 if x < SIZE / 2 else -40), y + (30 if y < SIZE / 2 else -30)
    return x, y


def path_position(spec: VideoSpec, i: int) -> tuple[float, float]:
    """Where a clean frame i would show the object, frame-relative ([0, 1] coordinates)."""
    x, y = _position(spec, i)
    return x / SIZE, y / SIZE


def dimming(spec: VideoSpec, i: int) -> float:
    """Background brightness factor at frame i (1 = normal)."""
    d = abs(i - spec.disturbance_center) / spec.disturbance_halfwidth
    return 1.0 - DIM_DEPTH * max(0.0, 1.0 - d)


_YY, _XX = np.mgrid[0:SIZE, 0:SIZE]
_CHECKER = ((_YY + _XX) % 2 * 2 - 1).astype(np.int16)  # +-1, 1-pixel period: gone after 2x2 area averaging
_BACKGROUND = (130 + 60 * _YY / (SIZE - 1)).astype(np.float32)  # grey, 130 (top) .. 190 (bottom); dimmed >= 71
RADIUS = 13


def object_mask(shape: str, x: float, y: float) -> np.ndarray:
    if shape == "circle":
        return np.asarray((_XX - x) ** 2 + (_YY - y) ** 2 <= RADIUS**2)
    return np.asarray((np.abs(_XX - x) <= RADIUS - 1) & (np.abs(_YY - y) <= RADIUS - 1))


def render_frame(spec: VideoSpec, i: int) -> np.ndarray:
    """Frame i as (SIZE, SIZE, 3) uint8."""
    d = spec.defect
    kind = d.kind if d is not None and d.start <= i < d.end else None
    grey = np.rint(_BACKGROUND * dimming(spec, i)).astype(np.int16)
    frame = np.repeat(grey[:, :, None], 3, axis=2)
    if kind != "vanish":
        x, y = expected_position(spec, i)
        mask = object_mask(spec.shape, x, y)
        colour = np.array(COLOURS[spec.colour], np.int16)
        frame[mask] = colour
        if kind == "texture":
            frame[mask] += (CHECKER_AMP * _CHECKER[mask])[:, None]
    if kind == "flicker":
        frame += (CHECKER_AMP * _CHECKER)[:, :, None]
    return np.clip(frame, 0, 255).astype(np.uint8)


def render_video(spec: VideoSpec) -> np.ndarray:
    return np.stack([render_frame(spec, i) for i in range(spec.num_frames)])


def write_video(path: str | Path, spec: VideoSpec) -> None:
    """Lossless H.264 (qp 0, 4:4:4): decoded pixels equal the rendered ones (up to YUV rounding, +-2)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=int(spec.fps), options={"preset": "ultrafast", "qp": "0"})
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv444p"
        stream.codec_context.gop_size = int(spec.fps) * 10
        for i in range(spec.num_frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(render_frame(spec, i), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


# ------------------------------------------------------------------------------------------------- reading
@dataclass
class FrameReading:
    """What one frame shows, read from its pixels alone (any size; 112x112 for the checker tests)."""

    brightness: float  # median grey level: the dimming cue
    centroid: tuple[float, float] | None  # object centre in frame-relative coordinates [0, 1], None if absent
    hue: str | None  # nearest named colour of the object
    frame_checker: float  # 1-pixel checker energy of the background
    object_checker: float  # 1-pixel checker energy on the object


def _checker_energy(px: np.ndarray, where: np.ndarray) -> float:
    """Mean |x - mean of 4 neighbours| where `where` (interior pixels only): ~CHECKER_AMP*2 on a checker, ~0 on
    smooth content."""
    g = px.astype(np.float32).mean(axis=2)
    lap = np.abs(g[1:-1, 1:-1] - 0.25 * (g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]))
    w = where[1:-1, 1:-1]
    return float(lap[w].mean()) if w.any() else 0.0


def read_frame(px: np.ndarray) -> FrameReading:
    f = px.astype(np.float32)
    sat = f.max(axis=2) - f.min(axis=2)
    obj = sat > 60  # the background is grey (saturation 0), every object colour has saturation >= 130
    h, w = obj.shape
    centroid = hue = None
    if obj.sum() >= max(4, h * w // 400):
        ys, xs = np.nonzero(obj)
        centroid = (float(xs.mean() + 0.5) / w, float(ys.mean() + 0.5) / h)
        mean = f[obj].mean(axis=0)
        hue = min(COLOURS, key=lambda c: float(np.abs(np.array(COLOURS[c]) - mean).sum()))
    eroded = obj.copy()
    eroded[1:-1, 1:-1] = obj[1:-1, 1:-1] & obj[:-2, 1:-1] & obj[2:, 1:-1] & obj[1:-1, :-2] & obj[1:-1, 2:]
    dilated = obj.copy()
    dilated[1:-1, 1:-1] = obj[1:-1, 1:-1] | obj[:-2, 1:-1] | obj[2:, 1:-1] | obj[1:-1, :-2] | obj[1:-1, 2:]
    return FrameReading(
        brightness=float(np.median(f.mean(axis=2))), centroid=centroid, hue=hue,
        frame_checker=_checker_energy(px, ~dilated), object_checker=_checker_energy(px, eroded),
    )


CHECKER_THRESHOLD = 20.0  # energy: ~120 on a checker at full detail, < 5 on clean or low-detail frames


def check_frame(px: np.ndarray, expected_xy: tuple[float, float] | None = None) -> str | None:
    """Which defect a frame shows from its pixels: 'flicker', 'texture', 'vanish', 'jump' (needs where the object
    should be, frame-relative) or None."""
    r = read_frame(px)
    if r.frame_checker > CHECKER_THRESHOLD:
        return "flicker"
    if r.centroid is None:
        return "vanish"
    if r.object_checker > CHECKER_THRESHOLD:
        return "texture"
    if expected_xy is not None and math.dist(r.centroid, expected_xy) > 0.25:
        return "jump"
    return None
