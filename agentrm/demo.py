"""`agentrm demo`: make a few synthetic videos, score them with the embedded default model, write traces.

When the learning proof's model is packaged (`agentrm synth experiment --ship` writes `agentrm/synth/default_model`),
the demo scores two long pairs of that task (`make_synth_demo_items`) with it, with the settings, prompts and cue
it was trained with: the traces show the search (overview -> scan for the disturbed frames -> one high-detail
range per video, read frame by frame) finding a short defect. The package ships the round-6 RS-SFT model
(4.8 MB; its accuracy on the task's test split: docs/learning_proof). Without it (e.g. deleted), the default is
a tiny *untrained* Qwen2.5-VL built offline and simple scenes (a ball that jumps and flickers for a few frames):
the demo then shows the machinery (overview, turns, format errors fed back, limits, traces, viewer) rather than
good judgments, and says so.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from agentrm.config import ScoreConfig
from agentrm.data.schema import Item

if TYPE_CHECKING:
    from agentrm.synth.scenes import Cue

log = logging.getLogger(__name__)


def scene_frames(num_frames: int, size: tuple[int, int], colour: tuple[int, int, int], glitch: range | None,
                 seed: int) -> np.ndarray:
    """RGB frames (N, H, W, 3): a ball on a slow circular path; inside `glitch` it jumps and the frame flickers."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    background = np.stack([(xx * 255 // max(1, w - 1)), (yy * 255 // max(1, h - 1)), np.full_like(xx, 90)], -1)
    frames = np.empty((num_frames, h, w, 3), np.uint8)
    r = max(3, min(w, h) // 8)
    for i in range(num_frames):
        t = i / num_frames * 2 * np.pi
        cx, cy = w / 2 + 0.3 * w * np.cos(t), h / 2 + 0.3 * h * np.sin(t)
        frame = background.copy()
        if glitch is not None and i in glitch:
            cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
            frame = 255 - frame  # flicker: inverted colours
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        frame[mask] = colour
        frames[i] = frame
    return frames


def write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    import av

    h, w = frames.shape[1:3]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=int(fps), options={"preset": "ultrafast", "crf": "23"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.gop_size = int(fps) * 2
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def make_demo_items(out: Path, seconds: float = 30.0, fps: float = 10.0, size: tuple[int, int] = (160, 96)
                    ) -> list[Item]:
    """Two pairwise items: in each, one video has a 0.5 s glitch somewhere in the middle third."""
    out.mkdir(parents=True, exist_ok=True)
    n = int(seconds * fps)
    items = []
    for k, (colour, bad) in enumerate((((220, 40, 40), 2), ((40, 200, 60), 1))):
        paths = []
        for v in (1, 2):
            glitch = range(n // 3 + 37 * k, n // 3 + 37 * k + int(fps / 2)) if v == bad else None
            path = out / f"pair{k}_video{v}.mp4"
            if not path.exists():
                write_video(path, scene_frames(n, size, colour, glitch, seed=k * 10 + v), fps)
            paths.append(str(path))
        label = "1" if bad == 2 else "2"
        items.append(Item(id=f"demo-pair{k}", mode="pairwise", prompt="a coloured ball circling smoothly",
                          videos=paths, labels={"VQ": label, "MQ": label, "TA": "tie", "OA": label}))
    return items


SYNTH_MODEL = Path(__file__).parent / "synth" / "default_model"  # `agentrm synth experiment --ship` writes it


def default_model_dir() -> tuple[Path, bool]:
    """(model dir, trained?) of the embedded default model: the learning proof's RS-SFT model when it is packaged
    (it was trained on `agentrm.synth` scenes, with `synth_demo_setup`'s settings and prompts), else a tiny
    untrained Qwen2.5-VL."""
    if (SYNTH_MODEL / "agentrm.json").is_file():
        return SYNTH_MODEL, True
    from agentrm.testing import tiny_model_dir

    return tiny_model_dir("qwen2_5_vl"), False


def make_synth_demo_items(out: Path, cue: Cue = "dim") -> list[Item]:
    """Two long pairs of the synthetic task (2.5 and 4 minutes) for the trained default: in the first, video 2's
    object vanishes for a few seconds; in the second, video 1 flickers with a fine checkerboard only high detail
    shows. Both videos of each pair are disturbed once (the weak `cue`, the one the model was trained on), so the
    overview alone cannot tell them apart."""
    from agentrm.synth.generate import pair_labels
    from agentrm.synth.scenes import FPS, DefectKind, prompt_text, sample_video_spec, write_video

    out.mkdir(parents=True, exist_ok=True)
    items = []
    pairs: tuple[tuple[int, str, str, tuple[DefectKind | None, DefectKind | None]], ...] = (
        (150, "red", "orbit", (None, "vanish")), (240, "blue", "sweep", ("flicker", None)))
    for k, (seconds, colour, motion, defects) in enumerate(pairs):
        rng = np.random.default_rng(100 + k)
        specs = [sample_video_spec(rng, int(seconds * FPS), "circle", colour, motion, d, cue) for d in defects]
        paths = []
        for v, spec in enumerate(specs, 1):
            path = out / f"synth{k}_{cue}_video{v}.mp4"
            if not path.exists():
                write_video(path, spec)
            paths.append(str(path))
        labels, _ = pair_labels(specs, colour)
        items.append(Item(id=f"demo-synth{k}", mode="pairwise", prompt=prompt_text("circle", colour, motion),
                          videos=paths, labels=labels, meta={"defects": list(defects)}))
    return items


def synth_demo_setup(model: Path) -> tuple[ScoreConfig, Path, Cue]:
    """The episode settings, the prompt directory and the task's cue the packaged synth model was trained with
    (`ship_model` writes the cue to task.json: a model trained on one cue does not read the other)."""
    import json

    from agentrm.config import EngineConfig
    from agentrm.synth.generate import experiment_config

    cfg = experiment_config()
    cfg.engine = EngineConfig(model=str(model), device="cpu", dtype="float32")
    task = model / "task.json"
    cue: Cue = json.loads(task.read_text())["cue"] if task.is_file() else "dim"
    return cfg, model / "prompts", cue
