"""Vision warm-up: the first part of stage 0 — make what a frame shows readable from its visual tokens.

Why: a pretrained Qwen-VL's vision tower already encodes an object's colour, a doubled object or a pixel-level
glitch; a random-init one does not, and learning it through the language model is slow and fragile. Measured on
the one-frame question "which defect, which colour" (`docs/learning_proof/NOTES.md`, round 4): after 400 steps of
language-model training a random-init model names the colour 34 % of the time (4 colours); after this warm-up
(300 steps, 30 s) it names it 86 % after 50 steps and 91 % after 100.

How: the vision tower and its merger (exactly the modules that feed the language model) train alone, with a
throwaway linear probe on the *mean* of each frame's merged tokens, to classify rendered frames of the task at both
detail levels: the object's colour (or none), the defect the frame shows (or none) and whether the cue disturbs it.
The mean is what an untrained attention head reads (it spreads evenly over a frame's tokens), so a fact that is
linearly readable from it is one the language model can start using at once. Labels come from the renderer and
`check_frame` (at low detail the checkerboard defects average away, and the label says "none", as the pixels do).
The probe is dropped afterwards; both arms start from the same warmed-up model.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from agentrm.synth.pretrain import LOW, random_spec
from agentrm.synth.scenes import COLOURS, DEFECTS, DIM_DEPTH, SIZE, Cue, VideoSpec, check_frame, dimming, render_frame
from agentrm.video.resize import resize_rgb

log = logging.getLogger(__name__)

DEFECT_CLASSES = (None, *DEFECTS)
COLOUR_CLASSES = (*COLOURS, None)  # None: no object in the frame (vanish)
DETAILS = (SIZE, LOW)  # high and low detail, as the experiment's episodes show frames


def frame_targets(spec: VideoSpec, i: int, px: np.ndarray) -> tuple[int, int, int]:
    """(colour class, defect class, disturbed) of frame i as rendered at `px`'s size."""
    kind = check_frame(px)
    colour = None if kind == "vanish" else spec.colour
    disturbed = int((1.0 - dimming(spec, i)) / DIM_DEPTH >= 0.5)
    return COLOUR_CLASSES.index(colour), DEFECT_CLASSES.index(kind), disturbed


def _frames(rng: np.random.Generator, n: int, size: int, cue: Cue) -> tuple[list[np.ndarray], np.ndarray]:
    """n task frames at one detail level: 60 % of defective videos' frames are picked on the defect, and a third
    of the rest on the cue's ramp, so every class is common."""
    images, targets = [], []
    for _ in range(n):
        spec = random_spec(rng, defect_p=0.8, cue=cue)
        d = spec.defect
        u = rng.uniform()
        if d is not None and u < 0.6:
            i = int(rng.integers(d.start, d.end))
        elif u < 0.8:
            i = int(rng.integers(max(0, spec.cue_frame - spec.ramp_frames), spec.cue_frame))
        else:
            i = int(rng.integers(spec.num_frames))
        px = render_frame(spec, i)
        if size != SIZE:
            px = resize_rgb(px, (size, size))
        images.append(px)
        targets.append(frame_targets(spec, i, px))
    return images, np.array(targets)


def vision_warmup(model: Any, processor: Any, steps: int, rng: np.random.Generator, cue: Cue = "dim",
                  batch_size: int = 16, lr: float = 1e-3) -> dict[str, float]:
    """Train `model`'s vision tower + merger for `steps` (each: `batch_size` frames per detail level). Returns the
    probe's accuracies on a fresh batch per target and detail ("high_colour", "low_defect", ...)."""
    import torch
    from PIL import Image

    visual = model.model.visual
    width = int(model.config.text_config.hidden_size)
    sizes = (len(COLOUR_CLASSES), len(DEFECT_CLASSES), 2)
    probe = torch.nn.Linear(width, sum(sizes))
    opt = torch.optim.AdamW([*visual.parameters(), *probe.parameters()], lr=lr, weight_decay=0.01)

    def forward(size: int, n: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        images, targets = _frames(rng, n, size, cue)
        enc = processor.image_processor(images=[Image.fromarray(p) for p in images], return_tensors="pt",
                                        do_resize=False)
        merged = visual(enc["pixel_values"], grid_thw=enc["image_grid_thw"]).pooler_output
        logits = probe(merged.view(n, -1, merged.shape[-1]).mean(dim=1))
        return list(torch.split(logits, list(sizes), dim=1)), torch.from_numpy(targets)

    visual.train()
    t0 = time.perf_counter()
    for step in range(steps):
        loss = torch.zeros(())
        for size in DETAILS:
            parts, y = forward(size, batch_size)
            loss = loss + sum(torch.nn.functional.cross_entropy(p, y[:, j]) for j, p in enumerate(parts))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 100 == 0:
            log.info("vision warm-up step %d/%d loss %.3f (%.0f s)", step + 1, steps, loss.item(),
                     time.perf_counter() - t0)
    visual.eval()
    scores = {}
    with torch.no_grad():
        for size, name in zip(DETAILS, ("high", "low"), strict=True):
            parts, y = forward(size, 64)
            for j, target in enumerate(("colour", "defect", "cue")):
                scores[f"{name}_{target}"] = round(float((parts[j].argmax(-1) == y[:, j]).float().mean()), 3)
    log.info("vision warm-up probe accuracy: %s", scores)
    return scores
