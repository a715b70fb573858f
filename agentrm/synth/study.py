"""Stage-0 circuit study: which copy skills a random-init model forms, and after how many steps.

Why: the learning proof's agentic arm fails because stage 0 never learns *pointing* (writing the label of the
darkest overview frame). End-of-run greedy probes only say "0 %"; they cannot tell "this skill forms later" from
"this set-up cannot learn to copy at all". This module trains a fresh model on a mix of stage-0 kinds and, every
`eval_every` steps, measures per kind the share of held-out answers whose timestamps are all right under teacher
forcing (no generation: fast, and one wrong word elsewhere does not hide a right timestamp). The curve is the
result. The kinds ask for ever less direct copying:
- `induction`: a list of labels, then the list again: copy by token match (the control: an induction head);
- `marking`: the darkness written as text after each label; copy the label before the word `dark`;
- `pointing`: the darkness shown only in the pixels; copy the label of the darkest image.

The study model is the learning proof's architecture (`agentrm.synth.model`) with single-token timestamps and
tied embeddings, its tokenizer trained on the study's own example texts, so the study needs no generated data.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np

from agentrm.synth.pretrain import KINDS, Cue, answer_batch, train_steps

log = logging.getLogger(__name__)


def build_study_model(out: str | Path, cue: Cue = "dim", seed: int = 0, n_texts: int = 200) -> Path:
    """A random-init learning-proof model whose tokenizer is trained on stage-0 example texts (all kinds)."""
    from agentrm.config import DEFAULT_DIMS
    from agentrm.synth.model import build_model
    from agentrm.synth.teacher import structure_tokens

    rng = np.random.default_rng([seed, 5])
    texts = []
    for kind in KINDS:
        for _ in range(n_texts // len(KINDS)):
            ctx, answer = KINDS[kind](rng, cue)
            texts += [m.text for m in ctx.messages] + [answer]
    return build_model(out, texts, seed=seed, atomic_timestamps=True, tie_embeddings=True,
                       atomic=structure_tokens(list(DEFAULT_DIMS)))  # the experiment's tokenizer


def _is_number(token: str) -> bool:
    return any(c.isdigit() for c in token)


def teacher_forced_accuracy(model: Any, engine: Any, examples: list[tuple[Any, str]],
                            part: Literal["numbers", "words"] = "numbers") -> float:
    """Share of `examples` whose answer tokens of one `part` are all the model's teacher-forced argmax: "numbers"
    (tokens holding digits: timestamps, video numbers; atomic or digit-split alike) or "words" (all others: the
    scan's plain/odd, a reading's ok/defect words, the note, the colour)."""
    import torch

    batch = answer_batch(engine, examples)
    labels = batch.pop("labels")
    with torch.no_grad():
        logits = model(**batch).logits
    pred, target = logits[:, :-1].argmax(-1), labels[:, 1:]
    tokens = engine.tokenizer.convert_ids_to_tokens(target.clamp(min=0).flatten().tolist())
    numeric = torch.tensor([_is_number(t) for t in tokens]).view_as(target)
    scored = (numeric if part == "numbers" else ~numeric) & (target != -100)
    right = ((pred == target) | ~scored).all(dim=1)
    return float(right.float().mean())


def run_study(out: str | Path, kinds: tuple[str, ...], steps: int, eval_every: int = 100,
              base: str | Path | None = None, lr: float = 1e-3, batch_size: int = 16, n_eval: int = 48, seed: int = 0,
              cue: Cue = "dim", vision_steps: int = 0) -> list[dict[str, float]]:
    """Train a fresh study model (or `base`) on `kinds` for `steps`, after `vision_steps` of vision warm-up
    (`agentrm.synth.vision`); every `eval_every` steps append {step, loss, <kind>: numbers accuracy,
    <kind>_words: words accuracy} to `out/curve.jsonl`. Returns the rows."""
    import torch

    from agentrm.checkpoint import load
    from agentrm.engines.hf import HFEngine

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if base is None:
        base = build_study_model(out / "base", cue=cue, seed=seed)
    torch.manual_seed(seed)
    rm = load(str(base), dtype="float32", device="cpu")
    engine = HFEngine(rm)
    if vision_steps:
        from agentrm.synth.vision import vision_warmup

        vision_warmup(rm.model, rm.processor, vision_steps, np.random.default_rng([seed, 98]), cue)
    held_out = np.random.default_rng([seed, 123])
    evalsets = {k: [KINDS[k](held_out, cue) for _ in range(n_eval)] for k in kinds}
    rows: list[dict[str, float]] = []
    curve = out / "curve.jsonl"
    curve.write_text("", encoding="utf-8")

    def evaluate(step: int, loss: float) -> None:
        rm.model.eval()
        row = {"step": step, "loss": round(loss, 4)}
        for k, ex in evalsets.items():
            row[k] = round(teacher_forced_accuracy(rm.model, engine, ex), 3)
            row[f"{k}_words"] = round(teacher_forced_accuracy(rm.model, engine, ex, "words"), 3)
        rows.append(row)
        with curve.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        log.info("study %s", row)

    train_steps(rm.model, engine, kinds, steps, batch_size, lr, np.random.default_rng([seed, 99]), cue,
                every=eval_every, on_log=evaluate)
    return rows
