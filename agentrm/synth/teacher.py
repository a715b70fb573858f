"""The scripted teacher: searches the synthetic videos like a careful judge and writes the cold-start traces.

It is a `ScriptedEngine` responder, so its traces come out of the real loop (real tools, real memory window, real
prompts) and are byte-identical in layout to a model's. Its *decisions* use only what a model could see at that
turn — the frames in the context (pixels and labels) — and its earlier notes; the item's labels are used only for
the final verdicts (so the cold-start data is always right) and to flag traces whose pixel findings disagree with
the labels (`TeacherStats.mismatches`; 0 expected — it is the check that the search really finds the evidence).

Agentic search (see `agentrm.synth.scenes` for why it works), three turns:
    turn 1: overview -> scan video 1's overview frames in order, up to the first plain one after the odd
            (dimmed) ones -> select_range(1, t[k], t[k+1], 8, detail="high") with k the last odd frame
    turn 2: read video 1's range frame by frame ("v1 frames: 30.5s ok, 31.5s hollow. v1: hollow (MQ)."), same
            search for video 2
    turn 3: read video 2's range, restate both notes, the object's colour vs the prompt's ("v2 blue vs red (TA)"),
            then the verdicts
Every number the teacher writes is copied from a frame label (in order, by the scan), and its sentences are
short and fixed in form, so most of what a model must learn is the few deciding tokens (two timestamps per
video, a word per frame, a colour, the verdicts).

Why frame by frame: round 3's models zoomed onto the defect on 55 % of defective videos and still wrote
"v1: clean." for every video (docs/learning_proof/NOTES.md): "does any of these 8 frames show a defect" in one
word is a lookup over 128 image tokens, while "what does the frame after this label show" is the one-frame,
local judgement that made the overview scan learnable. The note then restates the word just written.

Uniform policy (the same-budget baseline): one turn; it reads its 12 high-detail frames per video the same way
and answers — the same recipe, without the search.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from agentrm.config import EpisodeConfig
from agentrm.data.schema import Item
from agentrm.engines.base import Context, ImagePart
from agentrm.engines.scripted import ScriptTurn
from agentrm.synth.scenes import COLOURS, DEFECT_DIM, DEFECT_WORDS, check_frame, read_frame
from agentrm.trace import FrameRef

RANGE_COUNT = 8
# the zoom call's fixed text around its three numbers (video, start, end): one source for the call and its tokens
CALL_PIECES = ('<tool_call>{"name": "select_range", "arguments": {"video": ', ', "start_s": ', ', "end_s": ',
               f', "count": {RANGE_COUNT}, "detail": "high"}}}}</tool_call>')


def fmt(t: float) -> str:
    """A timestamp exactly as the (compact) frame labels print it; frames are 0.5 s apart at 2 fps."""
    return f"{t:.1f}"


def _darkest(images: list[ImagePart]) -> int:
    """Position of the darkest frame (median grey level) in `images`."""
    levels = [read_frame(p.pixels).cue_level for p in images]
    return int(np.argmax(levels))


SCAN_CUE = 15.0  # a frame is "odd" when its cue level exceeds the video's median overview frame's by this much
SCAN_WORDS = ("plain", "odd")


def scan(video: int, images: list[ImagePart]) -> tuple[str, int]:
    """The overview read frame by frame, up to the first plain frame after an odd one, and the position k of the
    last odd frame: "v1: 18.5s plain, 55.5s odd, 92.5s odd, 129.5s plain." -> the zoom is t[k]..t[k+1].

    Why a scan instead of naming the darkest frame: naming it means finding it by content and copying its
    label in one step, which a small random-init model did not learn (docs/learning_proof/NOTES.md). Writing
    the labels in order is copying by token match (the next label after the one just written), each word is a
    local judgement of one frame, and the zoom copies the last two labels the model just wrote."""
    levels = [read_frame(p.pixels).cue_level for p in images]
    base = float(np.median(levels))
    odd = [lv - base > SCAN_CUE for lv in levels]
    words = []
    k = -1
    for j, p in enumerate(images):
        words.append(f"{fmt(p.ref.timestamp_s)}s {SCAN_WORDS[odd[j]]}")
        if odd[j]:
            k = j
        elif k >= 0:
            break
    if k < 0:  # nothing odd (not in this task: every video has a disturbance): the darkest frame
        k = _darkest(images)
    return f"v{video}: " + ", ".join(words) + ".", k


def range_call(video: int, refs: list[FrameRef], k: int) -> str:
    a, b = refs[k].timestamp_s, refs[min(len(refs) - 1, k + 1)].timestamp_s
    head, start, end, tail = CALL_PIECES
    return f"{head}{video}{start}{fmt(a)}{end}{fmt(b)}{tail}"


def answer_pieces(dims: list[str]) -> list[str]:
    """The final answer's fixed text around its verdicts: ['<answer>{"VQ": "', '", "MQ": "', ..., '"}</answer>']."""
    pieces = json.dumps({d: "@" for d in dims}).split("@")
    return ["<answer>" + pieces[0], *pieces[1:-1], pieces[-1] + "</answer>"]


def structure_tokens(dims: list[str]) -> list[str]:
    """The teacher's fixed markup, each piece to become one token (`agentrm.synth.model.build_tokenizer`'s
    `atomic`). Why: split by the BPE, `"VQ": "` and the note's `(VQ)` share the `VQ` token, and round 4's models
    wrote `(VQ": "tie"` mid-note or swapped keys (`"MQ": "1, "OA"`): 24 of 58 agentic episodes on >= 2 min
    ended without a parseable answer. As whole tokens the markup is a fixed sequence that carries no choice;
    what is left to learn is the verdicts and numbers between the pieces."""
    return ["<think>", "</think>", *answer_pieces(dims), *CALL_PIECES]


def colours_line(want: str, hues: dict[int, str]) -> str:
    """The object's colour in each video next to the prompt's, a mismatch flagged where it is read:
    "Prompt red; v1 red vs red, v2 blue vs red (TA)." Why the flag: round 4's models read every colour right and
    still wrote TA "tie" on 80/80 pairs: comparing two colour words inside the verdict was never learnt. Why the
    prompt's colour is copied next to each video's: with the flag alone ("v1 red, v2 blue (TA)", rounds 5-6) the
    colour to compare with sits a varying number of tokens back, and a fresh model trained only on this line
    flagged at chance (23 % of lines right after 200 steps); with the two words side by side (fixed offsets) it
    was right on 64/64 lines after 200 steps (docs/learning_proof/NOTES.md, round 7)."""
    parts = [f"v{v} {h} vs {want}" + (" (TA)" if h != want and "?" not in (h, want) else "")
             for v, h in sorted(hues.items())]
    return f"Prompt {want}; " + ", ".join(parts) + "."


def note(video: int, kind: str | None) -> str:
    """The teacher's note on one video: "v1: clean." or "v2: glitch (VQ)."."""
    return f"v{video}: clean." if kind is None else f"v{video}: {DEFECT_WORDS[kind]} ({DEFECT_DIM[kind]})."


def read_frames(video: int, images: list[ImagePart]) -> tuple[str, str | None]:
    """High-detail frames read in order, `ok` or the defect's word each, up to the first defective one, then the
    note: ("v1 frames: 30.5s ok, 31.5s hollow. v1: hollow (MQ).", "hollow"). Every defect shows on one frame
    (`check_frame`), so each word judges the image right after the label it follows."""
    words, kind = [], None
    for p in images:
        kind = check_frame(p.pixels)
        words.append(f"{fmt(p.ref.timestamp_s)}s {DEFECT_WORDS[kind] if kind else 'ok'}")
        if kind is not None:
            break
    return f"v{video} frames: " + ", ".join(words) + ". " + note(video, kind), kind


def _groups(context: Context) -> list[list[ImagePart]]:
    """Images per message, in order (message 1 = the overview; later user messages = tool results)."""
    return [[p for p in m.parts if isinstance(p, ImagePart)] for m in context.messages if m.role == "user"]


@dataclass
class TeacherStats:
    traces: int = 0
    mismatches: list[str] = field(default_factory=list)  # sample ids whose pixel findings contradict the labels
    found: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class Teacher:
    """`ScriptedEngine(responder=Teacher(items, cfg))`; one instance serves many concurrent episodes."""

    def __init__(self, items: list[Item], cfg: EpisodeConfig, policy: str = "agentic") -> None:
        self.items = {i.id: i for i in items}
        self.cfg = cfg
        self.policy = policy
        self.found: dict[str, dict[int, str | None]] = defaultdict(dict)  # sample -> video -> defect read
        self.stats = TeacherStats()

    def __call__(self, context: Context) -> ScriptTurn:
        if self.policy == "uniform":
            return self._uniform(context)
        t = context.turn
        read = self._read_latest(context)
        if t <= 2:
            video = t
            ov = [p for p in _groups(context)[0] if p.ref.video == video]
            text, k = scan(video, ov)
            think = f"<think>{read + ' ' if read else ''}{text}</think>"
            return ScriptTurn(think + range_call(video, [p.ref for p in ov], k))
        return self._answer(context, f"{read} {self._notes(context.sample_id)}")

    def _read_latest(self, context: Context) -> str:
        """The frame-by-frame reading of the latest tool result when it is a high-detail range ("" otherwise)."""
        groups = _groups(context)
        latest = groups[-1] if len(groups) > 1 else []
        if not latest or latest[0].ref.detail != "high":
            return ""
        text, kind = read_frames(latest[0].ref.video, latest)
        self.found[context.sample_id][latest[0].ref.video] = kind
        return text

    def _notes(self, sample_id: str) -> str:
        """Both videos' notes side by side, the form the verdicts are read from."""
        found = self.found[sample_id]
        return " ".join(note(v, found[v]) if v in found else f"v{v}: not checked." for v in (1, 2))

    def _colours(self, context: Context, item: Item) -> str:
        hues: dict[int, str] = {}
        for p in _groups(context)[0]:
            hue = read_frame(p.pixels).hue
            if hue is not None:
                hues.setdefault(p.ref.video, hue)
        want = next((c for c in COLOURS if c in item.prompt.split()), "?")
        return colours_line(want, hues)

    def _answer(self, context: Context, reading: str) -> ScriptTurn:
        item = self.items[context.sample_id]
        self.stats.traces += 1
        if self.policy == "agentic":  # the uniform view misses most defects by design: nothing to check
            self._check(item)
        verdicts = {d: item.labels[d] for d in self.cfg.dims if d in item.labels}
        reward_tok = self.cfg.reward_token * self.cfg.num_videos
        text = (f"<think>{reading.strip()} {self._colours(context, item)}</think>"
                f"<answer>{json.dumps(verdicts)}</answer>{reward_tok}")
        return ScriptTurn(text, rewards=_label_rewards(verdicts, self.cfg.dims))

    def _check(self, item: Item) -> None:
        """Do the pixel findings predict the VQ/MQ labels? (TA is global: its hue check is in the text.)"""
        found = self.found.get(item.id, {})
        dims = {v: {DEFECT_DIM[k]} if (k := found.get(v)) else set() for v in (1, 2)}
        for kind in found.values():
            if kind is not None:
                self.stats.found[kind] += 1
        for d in ("VQ", "MQ"):
            pred = "tie" if (d in dims[1]) == (d in dims[2]) else ("2" if d in dims[1] else "1")
            if d in item.labels and item.labels[d] != pred:
                self.stats.mismatches.append(item.id)
                return

    def _uniform(self, context: Context) -> ScriptTurn:
        images = _groups(context)[0]
        reads = []
        for v in (1, 2):
            text, self.found[context.sample_id][v] = read_frames(v, [p for p in images if p.ref.video == v])
            reads.append(text)
        return self._answer(context, f"{' '.join(reads)} {self._notes(context.sample_id)}")


def _label_rewards(verdicts: dict[str, str | float], dims: list[str]) -> list[list[float]]:
    """Head outputs a perfect judge would give: 1 for the better video, 0 for the worse, 0.5 each on a tie."""
    win = {"1": (1.0, 0.0), "2": (0.0, 1.0), "tie": (0.5, 0.5)}
    pairs = [win.get(str(verdicts.get(d, "tie")), (0.5, 0.5)) for d in dims]
    return [[p[0] for p in pairs], [p[1] for p in pairs]]
