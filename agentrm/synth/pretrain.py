"""Stage 0 of the learning proof: perception pretraining — a stand-in for the pretrained VLM backbone.

Why: the method assumes a pretrained Qwen-VL that can already point at "the darkest frame", read its label and
say what a frame shows. A random-init model has none of that, and the first experiments showed it does not pick
it up from a few thousand multi-turn trajectories (one ~1,000-token sequence per step, a handful of deciding
tokens each): after 1,500 cold-start steps it got 0 of 40 darkest-frame timestamps right. Here it learns these
perception skills from many short, cheap examples instead — thousands per minute, rendered straight from
`agentrm.synth.scenes` (no video files) — before the cold start. **Both arms start from the same stage-0 model**,
so it helps the uniform baseline as much as the agentic one; it teaches no search policy and no verdicts.
It starts with a vision warm-up (`agentrm.synth.vision`, `vision_steps`): without it the language model could
not read an object's colour off a frame reliably, let alone a defect.

Kinds of examples, in the episode's own layout (frame labels, detail levels, sentence forms); the experiment
trains on the first four (`agentrm.synth.experiment.STAGE0_KINDS`):
- scanning: the 8 low-detail overview frames of two videos -> the asked video's scan and zoom call, exactly as
  the agentic teacher writes them ("v2: 12.5s plain, 38.5s odd, 64.0s plain. <tool_call>...");
- reading: a zoom's 8 labelled high-detail frames of one video -> read frame by frame as the teacher does
  ("v1 frames: 30.5s ok, 31.5s flicker. v1: flicker (VQ). v1 red.");
- induction: a list of labels, then the list again — plain copying by token match, the circuit the scan's
  "next label" relies on (it forms in a few hundred steps; `agentrm.synth.study`);
- colours: the prompt and two overviews as an episode opens -> the teacher's colour line, each video's colour
  next to the prompt's and a mismatch flagged ("Prompt red; v1 red vs red, v2 blue vs red (TA).");
- verdict, pointing, marking (tried or diagnostic, not trained by the experiment): notes and colours as text ->
  the verdicts JSON; naming the darkest overview frame and the next ("v2 dims at 40.0s; next 52.5s.") from
  pixels, or from a written `dark`/`lit` mark.

Encoding and batching go through `HFEngine.encode` / `collate` (the same code that serves the model), the loss
is on the answer tokens only.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from agentrm.engines.base import Context, ImagePart, Message, TextPart
from agentrm.synth.generate import COMPACT_PROMPTS
from agentrm.synth.scenes import (
    COLOURS,
    DEFECTS,
    FPS,
    MOTIONS,
    SHAPES,
    SIZE,
    Cue,
    VideoSpec,
    overview_indices,
    prompt_text,
    render_frame,
    sample_video_spec,
)
from agentrm.synth.teacher import RANGE_COUNT, colours_line, fmt, note, range_call, read_frames, scan
from agentrm.tools.select_range import evenly_spaced
from agentrm.trace import FrameRef
from agentrm.video.resize import resize_rgb, visual_tokens

log = logging.getLogger(__name__)

LOW = 56  # the overview's detail (experiment_config: 56x56 low, 112x112 high)


_LABEL = jinja2.Template(COMPACT_PROMPTS["frame_label.j2"])  # the episode's own frame label


def random_spec(rng: np.random.Generator, defect_p: float = 0.5, cue: Cue = "dim") -> VideoSpec:
    """A fresh stage-0 video: random length (1-5 min), shape, colour, motion; a defect with probability `defect_p`."""
    n = int(rng.uniform(60, 300) * FPS)
    defect = DEFECTS[int(rng.integers(len(DEFECTS)))] if rng.uniform() < defect_p else None
    return sample_video_spec(rng, n, SHAPES[int(rng.integers(2))], list(COLOURS)[int(rng.integers(4))],
                             list(MOTIONS)[int(rng.integers(2))], defect, cue)


def _ref(fps: float, video: int, i: int, size: int) -> FrameRef:
    return FrameRef(video=video, index=i, timestamp_s=i / fps, detail="low" if size == LOW else "high",
                    width=size, height=size, tokens=visual_tokens(size, size))


def _frame(spec: VideoSpec, video: int, i: int, size: int) -> list[Any]:
    """Label + image parts of frame i, exactly as the compact prompts show a frame."""
    px = render_frame(spec, i)
    if size != SIZE:
        px = resize_rgb(px, (size, size))
    ref = _ref(spec.fps, video, i, size)
    return [TextPart(_LABEL.render(ref=ref)), ImagePart(ref=ref, pixels=px)]


def _cue_slot(spec: VideoSpec) -> int:
    """The overview position k with idx[k] < cue frame <= idx[k+1]: the darkest overview frame."""
    idx = overview_indices(spec.num_frames)
    return next(j for j in range(len(idx) - 1) if idx[j] < spec.cue_frame <= idx[j + 1])


def _pointing_answer(spec: VideoSpec, video: int) -> str:
    """What the teacher writes before its zoom: the darkest overview frame's time and the next one's."""
    idx, k = overview_indices(spec.num_frames), _cue_slot(spec)
    return f"v{video} dims at {fmt(idx[k] / spec.fps)}s; next {fmt(idx[k + 1] / spec.fps)}s."


def _overview(rng: np.random.Generator, cue: Cue) -> tuple[list[VideoSpec], list[Any], int]:
    """Two fresh videos' low-detail overview frames (labelled, as the episode shows them) and the video to ask
    about."""
    specs = [random_spec(rng, cue=cue), random_spec(rng, cue=cue)]
    parts: list[Any] = [TextPart("Overview:")]
    for v, spec in enumerate(specs, 1):
        for i in overview_indices(spec.num_frames):
            parts += _frame(spec, v, i, LOW)
    return specs, parts, int(rng.integers(1, 3))


def pointing_example(rng: np.random.Generator, cue: Cue = "dim") -> tuple[Context, str]:
    specs, parts, v = _overview(rng, cue)
    parts.append(TextPart(f"Darkest of v{v}?"))
    return Context([Message("user", parts)]), _pointing_answer(specs[v - 1], v)


def scanning_example(rng: np.random.Generator, cue: Cue = "dim") -> tuple[Context, str]:
    """The agentic teacher's first move on the overview of two videos: the asked video's scan (its labels in
    order, each frame plain or odd) and the zoom call on the last odd frame's range."""
    _, parts, v = _overview(rng, cue)
    parts.append(TextPart(f"Scan v{v}?"))
    mine = [p for p in parts if isinstance(p, ImagePart) and p.ref.video == v]
    text, k = scan(v, mine)
    return Context([Message("user", parts)]), f"{text} {range_call(v, [p.ref for p in mine], k)}"


def marking_example(rng: np.random.Generator, cue: Cue = "dim") -> tuple[Context, str]:
    """The pointing task with the darkness written as text (`dark`/`lit` after each label) instead of shown: the
    copy half of pointing alone (find the marked label, copy its digits and the next label's), which a random-init
    model must learn as an induction-style skill before it can combine it with seeing."""
    parts: list[Any] = [TextPart("Overview:")]
    specs = [random_spec(rng, cue=cue), random_spec(rng, cue=cue)]
    for v, spec in enumerate(specs, 1):
        k = _cue_slot(spec)
        for j, i in enumerate(overview_indices(spec.num_frames)):
            parts.append(TextPart(f"{_LABEL.render(ref=_ref(spec.fps, v, i, LOW))} {'dark' if j == k else 'lit'}"))
    v = int(rng.integers(1, 3))
    parts.append(TextPart(f"Darkest of v{v}?"))
    return Context([Message("user", parts)]), _pointing_answer(specs[v - 1], v)


_RESULT = jinja2.Template(COMPACT_PROMPTS["tool_result.j2"])  # the episode's own tool-result header


def reading_example(rng: np.random.Generator, cue: Cue = "dim") -> tuple[Context, str]:
    """A zoom's result as the episode shows it — 8 labelled high-detail frames of one video between two
    neighbouring overview frames — read frame by frame exactly as the teacher reads it, plus the object's colour:
    "v1 frames: 30.5s ok, 31.5s hollow. v1: hollow (MQ). v1 red." The range is the one the scan zooms on (so a
    defect, if any, shows on one of its frames) for clean videos and 80 % of defective ones, and another
    overview gap otherwise (a zoom that missed: every frame is ok); 60 % of the examples show a defect."""
    spec = random_spec(rng, defect_p=0.75, cue=cue)
    v = int(rng.integers(1, 3))
    idx = overview_indices(spec.num_frames)
    k = _cue_slot(spec)
    if spec.defect is not None and rng.uniform() >= 0.8:
        k = int(rng.choice([j for j in range(len(idx) - 1) if j != k]))
    frames = evenly_spaced(idx[k], idx[k + 1], RANGE_COUNT)
    parts: list[Any] = []
    for i in frames:
        parts += _frame(spec, v, i, SIZE)
    images = [p for p in parts if isinstance(p, ImagePart)]
    head = _RESULT.render(frames=[p.ref for p in images])
    text, _ = read_frames(v, images)
    return Context([Message("user", [TextPart(head), *parts, TextPart(f"Read v{v}?")])]), f"{text} v{v} {spec.colour}."


_INTRO = jinja2.Template(COMPACT_PROMPTS["intro.j2"])  # the episode's own first lines (prompt, durations)
COLOUR_ERROR_P = 0.5  # a video's colour contradicts the prompt: balanced here, so the comparison is what is learnt


def colours_example(rng: np.random.Generator, cue: Cue = "dim") -> tuple[Context, str]:
    """The prompt and two videos' overviews as an episode opens -> the teacher's colour line, a mismatch flagged
    where it is read: "Prompt red; v1 red vs red, v2 blue vs red (TA)." Why: the round-5/6 models read both
    colours and the prompt's right but never wrote the flag (0 of 24 mismatches): the comparison is one token on a
    fifth of the cold-start videos. Here it is one of every example's few answer tokens, half the time a flag,
    over thousands of examples: the compare skill a pretrained LM brings (no verdicts are taught)."""
    shape, motion = SHAPES[int(rng.integers(2))], list(MOTIONS)[int(rng.integers(2))]
    colours = list(COLOURS)
    want = colours[int(rng.integers(len(colours)))]
    n = int(rng.uniform(60, 300) * FPS)
    specs = []
    for _ in (1, 2):
        others = [c for c in colours if c != want]
        colour = others[int(rng.integers(len(others)))] if rng.uniform() < COLOUR_ERROR_P else want
        defect = DEFECTS[int(rng.integers(len(DEFECTS)))] if rng.uniform() < 0.5 else None
        specs.append(sample_video_spec(rng, n, shape, colour, motion, defect, cue))
    intro = _INTRO.render(prompt=prompt_text(shape, want, motion), uniform=False,
                          videos=[{"video": v, "duration_s": n / FPS} for v in (1, 2)])
    parts: list[Any] = [TextPart(intro)]
    for v, spec in enumerate(specs, 1):
        for i in overview_indices(spec.num_frames):
            parts += _frame(spec, v, i, LOW)
    parts.append(TextPart("Colours?"))
    return Context([Message("user", parts)]), colours_line(want, {v: s.colour for v, s in enumerate(specs, 1)})


def induction_example(rng: np.random.Generator, cue: Cue = "dim") -> tuple[Context, str]:
    """Eight frame labels of one video in rising order, then the same list again: plain token-match copying (an
    induction head), the easiest copy skill. A control for the study: if even this does not form, the model or the
    training set-up is at fault, not the visual task. (`cue` is unused: every kind takes it.)"""
    n = int(rng.uniform(60, 300) * FPS)
    v = int(rng.integers(1, 3))
    labels = " ".join(_LABEL.render(ref=_ref(FPS, v, int(i), LOW))
                      for i in sorted(rng.choice(n, size=8, replace=False)))
    return Context([Message("user", [TextPart(f"List: {labels} Repeat?")])]), labels


def verdict_example(rng: np.random.Generator, cue: Cue = "dim") -> tuple[Context, str]:
    """The last step of every episode, as text: the notes (what each video's frames showed, colours vs the
    prompt's) -> the verdicts JSON, by the task's own labelling rule (`pair_labels`). Why: after the search, a
    model must turn its notes into per-dimension verdicts — a small rule a pretrained LM follows from the
    instructions, but which the random-init model only meets once per trace and collapsed to a constant on
    (all "tie"). Many short examples teach the rule itself. (`cue` is unused: every kind takes it.)"""
    from agentrm.synth.generate import TA_ERROR_P, pair_defects, pair_labels

    colours = list(COLOURS)
    want = colours[int(rng.integers(len(colours)))]
    specs = []
    for defect in pair_defects(rng):
        others = [c for c in colours if c != want]
        colour = others[int(rng.integers(len(others)))] if rng.uniform() < TA_ERROR_P else want
        specs.append(sample_video_spec(rng, 240, SHAPES[0], colour, "orbit", defect))
    labels, _ = pair_labels(specs, want)
    notes = " ".join(note(v, s.defect.kind if s.defect else None) for v, s in enumerate(specs, 1))
    text = f"Notes: {notes} {colours_line(want, {1: specs[0].colour, 2: specs[1].colour})} Verdicts?"
    return Context([Message("user", [TextPart(text)])]), json.dumps({d: labels[d] for d in ("VQ", "MQ", "TA", "OA")})


def answer_batch(engine: Any, examples: list[tuple[Context, str]]) -> dict[str, Any]:
    """Left-padded batch with labels on the answer tokens only (-100 elsewhere)."""
    import torch

    rows = [engine.encode(ctx, answer) for ctx, answer in examples]
    width = max(int(r["input_ids"].shape[1]) for r in rows)
    labels = []
    for r in rows:
        lab = r["input_ids"].clone()
        lab[:, : r["completion_start"]] = -100
        labels.append(torch.cat([torch.full((1, width - lab.shape[1]), -100, dtype=lab.dtype), lab], dim=1))
    batch = engine.collate(rows)
    batch["labels"] = torch.cat(labels, dim=0)
    return batch


KINDS: dict[str, Callable[[np.random.Generator, Cue], tuple[Context, str]]] = {
    "pointing": pointing_example, "reading": reading_example, "marking": marking_example,
    "induction": induction_example, "scanning": scanning_example, "verdict": verdict_example,
    "colours": colours_example,
}


def train_steps(model: Any, engine: Any, kinds: tuple[str, ...], steps: int, batch_size: int, lr: float,
                rng: np.random.Generator, cue: Cue = "dim",
                every: int = 50, on_log: Callable[[int, float], None] | None = None) -> None:
    """The stage-0 loop (AdamW, linear warm-up, cosine decay, clip 1.0; `kinds` share each batch equally).
    `on_log(step, mean loss)` runs every `every` steps: the study evaluates there."""
    import torch

    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 30)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    t0, recent = time.perf_counter(), []
    for step in range(steps):
        examples = [KINDS[kinds[j % len(kinds)]](rng, cue) for j in range(batch_size)]
        loss = model(**answer_batch(engine, examples)).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        recent.append(loss.item())
        if (step + 1) % every == 0 or step + 1 == steps:
            log.info("stage 0 step %d/%d loss %.3f (%.0f s)", step + 1, steps, float(np.mean(recent)),
                     time.perf_counter() - t0)
            if on_log is not None:
                on_log(step + 1, float(np.mean(recent)))
                model.train()
            recent = []
    model.eval()


def pretrain(base: str | Path, out: str | Path, steps: int = 1500, batch_size: int = 16, lr: float = 1e-3,
             seed: int = 0, kinds: tuple[str, ...] = ("pointing", "reading"),
             cue: Cue = "dim", vision_steps: int = 0) -> Path:
    """Train `base` (a model dir): `vision_steps` of vision warm-up (`agentrm.synth.vision`; its probe scores go to
    `out`/vision.json), then `steps` on stage-0 examples (`kinds` share each batch equally); write the result to
    `out` (same layout). Returns `out`. Skipped when `out` already holds a model (the experiment resumes)."""
    import torch

    from agentrm.checkpoint import load
    from agentrm.engines.hf import HFEngine
    from agentrm.synth.vision import vision_warmup

    out = Path(out)
    if (out / "config.json").is_file():
        return out
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 99])
    rm = load(str(base), dtype="float32", device="cpu")
    model = rm.model
    vision = vision_warmup(model, rm.processor, vision_steps, np.random.default_rng([seed, 98]), cue) \
        if vision_steps else {}
    train_steps(model, HFEngine(rm), kinds, steps, batch_size, lr, rng, cue)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    rm.processor.save_pretrained(out)
    (out / "vision.json").write_text(json.dumps(vision), encoding="utf-8")
    return out


def probe(model_dir: str | Path, n: int = 40, seed: int = 1,
          kinds: tuple[str, ...] = ("pointing", "reading"), cue: Cue = "dim") -> dict[str, float]:
    """Greedy answers of a model on fresh stage-0 examples: share exactly right per kind (what the report shows
    for the stage-0 model, and what a test checks can move)."""
    import asyncio

    from agentrm.checkpoint import load
    from agentrm.config import SamplingConfig
    from agentrm.engines.hf import HFEngine

    rng = np.random.default_rng([seed, 7])
    engine = HFEngine(load(str(model_dir), dtype="float32", device="cpu"))
    scores = {}
    for kind in kinds:
        examples = [KINDS[kind](rng, cue) for _ in range(n)]
        budget = [len(engine.tokenizer(a, add_special_tokens=False)["input_ids"]) + 2 for _, a in examples]
        outs = engine.generate_batch([(ctx, SamplingConfig(), b) for (ctx, _), b in zip(examples, budget, strict=True)])
        # the examples teach no end-of-turn token, so a right answer may run on: compare its prefix
        scores[kind] = float(np.mean([o.text.startswith(a) for o, (_, a) in zip(outs, examples, strict=True)]))
    asyncio.run(engine.aclose())
    return scores
