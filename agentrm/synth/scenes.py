"""The synthetic long-video preference task: scenes, defects, labels — designed so that looking around pays off.

Why a synthetic task: nobody here can download a 7B checkpoint or a real benchmark, yet the claim to check is
VR-Thinker's "the agentic loop beats a same-budget non-agentic reward model, especially for longer videos". The task
is built so that this claim is *true by construction for a model that searches well* and checkable from pixels:

Scene (one video, 1-5 minutes, 112x112, 2 fps, lossless H.264 so the pixels are exactly what was rendered): a
coloured shape (circle or square; red, green, blue or yellow) on a grey gradient, moving slowly along a path
(one revolution or one left-to-right sweep over the whole video), as the text prompt says.

(a) The low-detail overview alone is not enough. Every defect is **short and local in time** (about 1/50 of the
    video): 8 overview frames land on it only by luck (~1 in 7). And every video — defective or clean — has
    exactly one **disturbance** (the lights dim slowly over 2 overview spacings, then snap back), so the overview
    shows "something happens around here" in both videos and cannot tell which one is broken.
(b) The deciding evidence needs detail and is local. The two visual-quality defects are **mean-preserving 1-pixel
    checkerboards** (`flicker`: over the whole frame; `texture`: on the object): the frame source shrinks frames
    with area averaging, and at the low detail (56x56 from 112x112, 2x2 averaging) a checkerboard averages to
    exactly the clean frame — only a high-detail frame shows it. The motion defects (`vanish`: the object is gone;
    `hollow`: the object's shape breaks — its middle shows the background, a morphing artefact) are visible only
    on the few frames they last. Every defect is readable from one frame, so a model never has to compare frames
    to see it — and from the look of the object's own tokens: round 4's `ghost` (a second copy of the object)
    needed a *count* of object tokens, which the small model never learnt (0 of 29 ghost frames read; in a
    one-frame study 0/21 where a hollow object reads 21/21: docs/learning_proof/NOTES.md).
(c) Like real videos, there are weak cues that make searching better than blind: a defect always starts where its
    video's disturbance snaps back. The disturbance (`cue`: the background dims, or turns magenta — the tint
    survives the vision tower's normalisation far better, see docs/learning_proof/NOTES.md) deepens over two
    overview spacings, so the last overview frame before the snap is always clearly disturbed and the one after
    it is clean. It survives low detail, so a searcher goes overview -> scan the frames in order (plain, odd, ...)
    -> one high-detail range from the last odd frame's timestamp to the next frame's (8 frames, spaced closer
    than the defect is long, so one always lands on it) -> verdict. Both range ends are *copied* from frame
    labels the scan has just written (no arithmetic), which is what makes the policy learnable by a small
    model. The distractor disturbance of a clean video looks the same until the zoom. A same-budget uniform
    model (12 high-detail frames per video) hits a defect only by luck (~1 in 4).
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
from typing import Literal, get_args

import numpy as np
from pydantic import Field

from agentrm.config import StrictModel

DefectKind = Literal["flicker", "texture", "vanish", "hollow"]
DEFECTS: tuple[DefectKind, ...] = get_args(DefectKind)  # the order every sampler and class list uses
Cue = Literal["dim", "tint"]  # how a video's disturbance shows: the background dims, or it turns magenta
DEFECT_DIM: dict[str, str] = {"flicker": "VQ", "texture": "VQ", "vanish": "MQ", "hollow": "MQ"}
DEFECT_WORDS: dict[str, str] = {"flicker": "flicker", "texture": "glitch", "vanish": "vanish", "hollow": "hollow"}
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (195, 60, 60), "green": (60, 180, 70), "blue": (60, 80, 195), "yellow": (190, 180, 60),
}
SHAPES = ("circle", "square")
MOTIONS: dict[str, str] = {"orbit": "moving in a slow circle", "sweep": "sliding slowly from left to right"}
SIZE = 112  # frame side (px): 16 visual tokens at high detail, 4 at low (56x56) with Qwen2.5-VL's factor 28
FPS = 2.0
OVERVIEW_FRAMES = 8  # the overview grid the disturbance is sized for (EpisodeConfig.overview.frames_per_video)
CHECKER_AMP = 60  # +-amplitude of the checkerboards; every rendered value stays in [60, 195], nothing clips
DIM_DEPTH = 0.5  # the disturbance dims the background to 50 % just before it snaps back
TINT_DEPTH = 0.3  # the tint cue: green falls to 70 % at its deepest (background saturation <= 57 < 60)
HOLE_RADIUS = 8  # a hollow object's middle (radius 8 of 13) shows the background


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
    cue_frame: int = Field(description="Frame where the dimming snaps back (deepest on the frame before); a "
                                       "defect, if any, starts here.")
    ramp_frames: int = Field(description="Frames over which the dimming deepens before `cue_frame`.")
    cue: Literal["dim", "tint"] = Field("dim", description="How the disturbance shows: the background dims, or it "
                                        "turns magenta (a colour change survives the vision tower's normalisation; "
                                        "see docs/learning_proof/NOTES.md).")
    defect: DefectSpec | None = None

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps


def prompt_text(shape: str, colour: str, motion: str) -> str:
    return f"a {colour} {shape} {MOTIONS[motion]} over a grey background"


def overview_indices(num_frames: int) -> list[int]:
    """The overview's frames (`agentrm.episode.uniform_indices`: segment centres), restated so the scene does not
    import the loop."""
    return [min(num_frames - 1, int((k + 0.5) * num_frames / OVERVIEW_FRAMES)) for k in range(OVERVIEW_FRAMES)]


def defect_length(num_frames: int) -> int:
    """Frames a defect lasts: one more than the widest gap of an 8-frame range between two neighbouring overview
    frames, so the zoom always lands on it (~1/50 of the video; at least 3 frames)."""
    spacing = num_frames / OVERVIEW_FRAMES + 1
    return max(3, math.ceil(spacing / 7) + 1)


def sample_video_spec(rng: np.random.Generator, num_frames: int, shape: str, colour: str, motion: str,
                      defect: DefectKind | None, cue: Cue = "dim") -> VideoSpec:
    """A video of the given content; the cue frame lies after the first overview frame and at or before the last,
    so the darkest overview frame always has a next one, and the defect ends before the video does."""
    idx = overview_indices(num_frames)
    n = defect_length(num_frames)
    start = int(rng.integers(idx[0] + 1, idx[-1] + 1))
    spec = None if defect is None else DefectSpec(kind=defect, start=start, end=min(num_frames, start + n))
    return VideoSpec(
        num_frames=num_frames, shape=shape, colour=colour, motion=motion,
        phase=float(rng.uniform(0, 2 * math.pi) if motion == "orbit" else rng.uniform(0.3, 0.7)),
        cue_frame=start, ramp_frames=max(2, round(2 * num_frames / OVERVIEW_FRAMES)), defect=spec, cue=cue,
    )


# ------------------------------------------------------------------------------------------------ rendering
def _position(spec: VideoSpec, i: int) -> tuple[float, float]:
    """Object centre (x, y) in pixels at frame i: one slow revolution / sweep over the whole video."""
    u = i / max(1, spec.num_frames - 1)
    if spec.motion == "orbit":
        a = spec.phase + 2 * math.pi * u
        return SIZE / 2 + 30 * math.cos(a), SIZE / 2 + 30 * math.sin(a)
    return 22 + (SIZE - 44) * u, 22 + (SIZE - 44) * spec.phase


def dimming(spec: VideoSpec, i: int) -> float:
    """Background brightness factor at frame i (1 = normal): a linear ramp down to 1 - DIM_DEPTH on the frame
    before `cue_frame`, normal from `cue_frame` on."""
    d = spec.cue_frame - i  # 1 on the darkest frame
    if d < 1 or d > spec.ramp_frames:
        return 1.0
    return 1.0 - DIM_DEPTH * (1.0 - (d - 1) / spec.ramp_frames)


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
    if spec.cue == "dim":
        grey = np.rint(_BACKGROUND * dimming(spec, i)).astype(np.int16)
        frame = np.repeat(grey[:, :, None], 3, axis=2)
    else:  # tint: green fades by up to TINT_DEPTH along the same ramp (saturation stays under the object's)
        strength = (1.0 - dimming(spec, i)) / DIM_DEPTH
        frame = np.repeat(np.rint(_BACKGROUND).astype(np.int16)[:, :, None], 3, axis=2)
        frame[:, :, 1] = np.rint(_BACKGROUND * (1.0 - TINT_DEPTH * strength)).astype(np.int16)
    if kind != "vanish":
        x, y = _position(spec, i)
        mask = object_mask(spec.shape, x, y)
        if kind == "hollow":
            mask &= (_XX - x) ** 2 + (_YY - y) ** 2 > HOLE_RADIUS**2
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
    cue_level: float  # how strongly the frame shows either cue: darkness plus magenta tint (higher = nearer)
    centroid: tuple[float, float] | None  # object centre in frame-relative coordinates [0, 1], None if absent
    hue: str | None  # nearest named colour of the object
    frame_checker: float  # 1-pixel checker energy of the background
    object_checker: float  # 1-pixel checker energy on the object
    area: float  # fraction of the frame the object covers (0.042-0.050 whole, 0.026-0.034 hollow)


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
        cue_level=float(255 - np.median(f.mean(axis=2)) + np.median((f[:, :, 0] + f[:, :, 2]) / 2 - f[:, :, 1])),
        frame_checker=_checker_energy(px, ~dilated), object_checker=_checker_energy(px, eroded),
        area=float(obj.mean()),
    )


CHECKER_THRESHOLD = 20.0  # energy: ~120 on a checker at full detail, < 5 on clean or low-detail frames


HOLLOW_AREA = 0.038  # object area fraction: whole 0.042 (circle) - 0.050 (square), hollow 0.026 - 0.034


def check_frame(px: np.ndarray) -> str | None:
    """Which defect a frame shows from its pixels alone: 'flicker', 'texture', 'vanish', 'hollow' or None."""
    r = read_frame(px)
    if r.frame_checker > CHECKER_THRESHOLD:
        return "flicker"
    if r.centroid is None:
        return "vanish"
    if r.object_checker > CHECKER_THRESHOLD:
        return "texture"
    if r.area < HOLLOW_AREA:
        return "hollow"
    return None
