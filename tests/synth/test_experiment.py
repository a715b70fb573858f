"""The learning-proof model builder and the experiment's plumbing (the full experiment is `slow`)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np
import pytest

from agentrm.synth.generate import generate, load_split, write_teacher_traces


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth-exp")
    generate(out, {"train": 3, "test": 2}, seed=1, min_s=60, max_s=70, workers=1)
    asyncio.run(write_teacher_traces(out, "train"))
    return out


def test_task_model_loads_and_tokenizes_the_task_compactly(data: Path, tmp_path: Path) -> None:
    from agentrm.models import ensure_reward_token, load_model_and_processor
    from agentrm.synth.model import build_model, task_texts
    from agentrm.synth.teacher import range_call, structure_tokens
    from agentrm.trace import FrameRef, read_traces

    texts = task_texts([data / "teacher" / "train.jsonl"], data / "prompts")
    path = build_model(tmp_path / "m", texts)
    model, processor = load_model_and_processor(str(path), "float32", "cpu", "sdpa")
    tok = processor.tokenizer
    rid = ensure_reward_token(model, tok, "<Reward>")
    assert tok.convert_ids_to_tokens(rid) == "<Reward>" and rid < model.get_input_embeddings().weight.shape[0]
    turn = next(e.text for e in read_traces(data / "teacher" / "train.jsonl")[0].events if e.kind == "model")
    assert tok.decode(tok(turn)["input_ids"]) == turn
    assert len(tok(turn)["input_ids"]) < len(turn) / 2  # the task's words are single tokens
    assert sum(p.numel() for p in model.parameters()) < 2_500_000  # ships under ~10 MB in float32
    assert model.generation_config.suppress_tokens  # never writes vision placeholders
    markup = structure_tokens(["VQ", "MQ", "TA", "OA"])
    atomic = build_model(tmp_path / "a", texts, atomic_timestamps=True, tie_embeddings=True, atomic=markup)
    model, processor = load_model_and_processor(str(atomic), "float32", "cpu", "sdpa")
    tok = processor.tokenizer
    pieces = [tok.decode([i]) for i in tok("[v2 112.5s] 0.5")["input_ids"]]
    assert pieces == ["[", "v", "2", " ", "112.5", "s", "]", " ", "0.5"]  # one token per timestamp
    # the teacher's markup is one token per piece, so only verdicts and numbers are left between them
    final = [e.text for e in read_traces(data / "teacher" / "train.jsonl")[0].events if e.kind == "model"][-1]
    ids = tok(final, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == final
    words = [tok.decode([i]) for i in ids]
    answer = words[words.index("</think>") + 1:]
    assert answer[0:9:2] == markup[2:7] and set(answer[1:9:2]) <= {"1", "2", "tie"} and answer[9:] == ["<Reward>"] * 2
    refs = [FrameRef(video=2, index=k, timestamp_s=k / 2, detail="low", width=56, height=56, tokens=4)
            for k in (29, 30)]
    call = range_call(2, refs, 0)
    assert [tok.decode([i]) for i in tok(call)["input_ids"]] == [
        markup[7], "2", markup[8], "14.5", markup[9], "15.0", markup[10]]
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def test_untrained_model_runs_through_the_loop(data: Path, tmp_path: Path) -> None:
    """The eval/RS episode runner with a random model: every episode ends (format failures, no crash)."""
    from agentrm.synth.experiment import _episodes
    from agentrm.synth.model import build_model, task_texts
    from agentrm.trace import read_traces

    path = build_model(tmp_path / "m", task_texts([data / "teacher" / "train.jsonl"], data / "prompts"))
    items = load_split(data, "test")
    out = tmp_path / "runs.jsonl"
    asyncio.run(_episodes(str(path), items, out, "uniform", str(data / "prompts"), 0.0, 2, 0))
    traces = read_traces(out)
    assert len(traces) == 2 and all(t.termination not in ("error", "video_error") for t in traces)


@pytest.mark.slow
def test_quick_experiment_end_to_end(tmp_path: Path) -> None:
    from agentrm.synth.experiment import run_experiment

    assert run_experiment(out=tmp_path / "report", work=tmp_path / "work", quick=True) == 0
    text = (tmp_path / "report" / "README.md").read_text()
    assert "| teacher | 100" in text and (tmp_path / "report" / "eval" / "report.json").exists()


def test_robust_oa_scores_ties_half_and_reads_the_head() -> None:
    """Strict accuracy scores a written tie wrong; `robust_oa` counts it (and a missing verdict) half, and its head
    accuracy reads only the OA rewards' order (a missing reward is wrong). Label ties are left out."""
    from agentrm.synth.report import robust_oa
    from agentrm.trace import Trace, TraceInputs

    def trace(label: str, said: str | None, oa: tuple[float, float] | None) -> Trace:
        inputs = TraceInputs(sample_id="s", mode="pairwise", prompt="p", videos=["a", "b"], dims=["OA"],
                             labels={"OA": label})
        return Trace(id="s", inputs=inputs, verdicts=None if said is None else {"OA": said},
                     raw_rewards=None if oa is None else [{"OA": oa[0]}, {"OA": oa[1]}])

    runs = [trace("1", "tie", (0.9, 0.1)), trace("2", "2", (0.1, 0.9)), trace("1", "2", (0.2, 0.3)),
            trace("2", None, None), trace("tie", "1", (1.0, 0.0))]
    got = robust_oa(runs)
    assert got["tie_half"] == (0.5 + 1 + 0 + 0.5) / 4 and got["head"] == (1 + 1 + 0 + 0) / 4
    assert robust_oa([trace("tie", "1", None)]) == {"tie_half": None, "head": None}


def test_the_demo_ships_the_better_agentic_run(tmp_path: Path) -> None:
    import json

    from agentrm.synth.experiment import best_agentic

    def write(cold: float | None, rs: float | None) -> Path:
        runs = [{"name": n, "long": {"OA": {"value": v}}} for n, v in (("cold_start", cold), ("rs_sft", rs))]
        (tmp_path / "summary.json").write_text(json.dumps({"runs": runs}))
        return tmp_path

    assert best_agentic(write(0.60, 0.52)) == "cold_start"
    assert best_agentic(write(0.50, 0.59)) == "rs_sft" and best_agentic(write(0.5, 0.5)) == "rs_sft"
    assert best_agentic(write(None, 0.1)) == "rs_sft"


def test_report_on_teacher_runs(data: Path, tmp_path: Path) -> None:
    """The report's table and goal line from two runs (the teachers stand in for trained models)."""
    from agentrm.synth.experiment import QUICK
    from agentrm.synth.report import run_summary, write_experiment_report

    _, _ = asyncio.run(write_teacher_traces(data, "train", policy="uniform"))
    runs = tmp_path / "runs"
    runs.mkdir()
    for src, name in (("teacher_uniform", "uniform_rs_sft"), ("teacher", "rs_sft")):
        (runs / f"{name}.jsonl").write_text((data / src / "train.jsonl").read_text())
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "data" / "specs.jsonl").write_text((data / "specs.jsonl").read_text())
    files = [runs / "uniform_rs_sft.jsonl", runs / "rs_sft.jsonl"]
    readme = write_experiment_report(tmp_path / "out", files, work, {"total": 1.0}, QUICK, True, 0, seed=3)
    text = readme.read_text()
    assert "| rs_sft | 100" in text and "QUICK SMOKE RUN" in text and "experiment --seed 3 --out" in text
    assert __import__("json").loads((tmp_path / "out" / "summary.json").read_text())["seed"] == 3
    rows = map(__import__("json").loads, (data / "specs.jsonl").read_text().splitlines())
    specs = {r["video"]: r["spec"] for r in rows}
    agentic, uniform = run_summary(files[1], specs), run_summary(files[0], specs)
    assert agentic["defect_seen"] == 1.0 and agentic["turns"] == 3.0 and agentic["answered"] == 1.0
    assert set(agentic["long_oa_robust"]) == {"tie_half", "head"}
    # the teachers name exactly what they saw: every defect (agentic), the ones among their frames (uniform)
    assert agentic["defect_named"] == 1.0 and uniform["defect_named"] == uniform["defect_seen"]
    assert agentic["defect_false_alarm"] in (0.0, None) and uniform["defect_false_alarm"] in (0.0, None)
    blind = tmp_path / "blind.jsonl"  # the same traces with every note rewritten to "clean"
    blind.write_text(re.sub(r"(v[12]): (flicker|glitch|vanish|hollow) \((VQ|MQ)\)", r"\1: clean",
                            files[1].read_text()))
    assert run_summary(blind, specs)["defect_named"] == 0.0
    assert (tmp_path / "out" / "eval" / "report.md").exists()


def test_stage0_examples_say_what_the_pixels_show() -> None:
    """Pointing: the answer's two timestamps are the labels of the darkest overview frame of the asked video
    (read from the low-detail pixels) and of the next one. Reading: the answer names the defect a high-detail frame
    shows (read by `check_frame`), else 'clean', and the object's colour."""
    import re

    import numpy as np

    from agentrm.synth.pretrain import marking_example, pointing_example, reading_example, scanning_example
    from agentrm.synth.scenes import DEFECT_WORDS, check_frame, read_frame

    rng = np.random.default_rng(4)
    for _ in range(6):
        ctx, answer = pointing_example(rng)
        m = re.fullmatch(r"v(\d) dims at ([\d.]+)s; next ([\d.]+)s\.", answer)
        assert m, answer
        mine = [p for p in ctx.images if p.ref.video == int(m[1])]
        assert len(ctx.images) == 16 and all(p.pixels.shape == (56, 56, 3) for p in mine)
        k = int(np.argmin([read_frame(p.pixels).brightness for p in mine]))
        assert (f"{mine[k].ref.timestamp_s:.1f}", f"{mine[k + 1].ref.timestamp_s:.1f}") == (m[2], m[3])
    for _ in range(4):  # marking: the same answer, the darkness written as text after each label
        ctx, answer = marking_example(rng)
        v = answer[1]
        text = ctx.messages[0].text
        marked = re.search(rf"\[v{v} ([\d.]+)s\] dark\[v{v} ([\d.]+)s\]", text)
        assert marked and answer == f"v{v} dims at {marked[1]}s; next {marked[2]}s.", (text, answer)
    for cue in ("dim", "tint"):  # scanning: labels in order up to the first plain frame after the odd ones
        for _ in range(6):
            ctx, answer = scanning_example(rng, cue)
            v = int(answer[1])
            mine = [p for p in ctx.images if p.ref.video == v]
            listed = re.findall(r"([\d.]+)s (plain|odd)", answer.split("<tool_call>")[0])
            assert [t for t, _ in listed] == [f"{p.ref.timestamp_s:.1f}" for p in mine][: len(listed)]
            assert [w for _, w in listed[-2:]] == ["odd", "plain"] and "odd" not in [w for _, w in listed[:-3]]
            k = int(np.argmax([read_frame(p.pixels).cue_level for p in mine]))
            call = re.search(r'"video": (\d), "start_s": ([\d.]+), "end_s": ([\d.]+)', answer)
            assert call and int(call[1]) == v and (call[2], call[3]) == tuple(t for t, _ in listed[-2:])
            assert call[2] == f"{mine[k].ref.timestamp_s:.1f}", answer
    kinds = set()
    for _ in range(16):  # reading: a zoom's 8 frames in order, each ok or its defect, up to the first defect
        ctx, answer = reading_example(rng, "tint")
        images = ctx.images
        assert len(images) == 8 and {p.ref.detail for p in images} == {"high"}
        assert len({p.ref.video for p in images}) == 1 and ctx.messages[0].text.startswith("<tool_response>8 frames")
        listed = re.findall(r"([\d.]+)s (\w+)", answer)
        seen = [check_frame(p.pixels) for p in images]
        want = [(f"{p.ref.timestamp_s:.1f}", DEFECT_WORDS[k] if k else "ok") for p, k in zip(images, seen, strict=True)]
        first = next((j for j, k in enumerate(seen) if k), len(seen) - 1)
        assert listed == want[: first + 1], answer
        word = want[first][1] if seen[first] else "clean"
        assert f"v{images[0].ref.video}: {word}" in answer, answer
        kinds.add(word)
    assert "clean" in kinds and len(kinds) >= 3


def test_colours_examples_flag_what_the_overview_shows() -> None:
    """Colours: the answer names each video's colour as its overview frames show it (`read_frame`), next to the
    prompt's colour (from the intro's prompt), and flags exactly the videos whose colour differs; both cases
    are common."""
    import re

    import numpy as np

    from agentrm.synth.pretrain import colours_example
    from agentrm.synth.scenes import COLOURS, read_frame

    rng = np.random.default_rng(6)
    flags = []
    for _ in range(12):
        ctx, answer = colours_example(rng, "tint")
        intro = ctx.messages[0].parts[0].text
        want = next(c for c in COLOURS if f"Prompt: a {c} " in intro)
        assert len(ctx.images) == 16 and {p.ref.detail for p in ctx.images} == {"low"}
        seen = {v: {read_frame(p.pixels).hue for p in ctx.images if p.ref.video == v} - {None} for v in (1, 2)}
        assert all(len(h) == 1 for h in seen.values()), seen
        hue = {v: next(iter(h)) for v, h in seen.items()}
        expect = f"Prompt {want}; " + ", ".join(
            f"v{v} {hue[v]} vs {want}" + (" (TA)" if hue[v] != want else "") for v in (1, 2)) + "."
        assert answer == expect
        flags += re.findall(r"v\d \w+ vs \w+( \(TA\))?", answer)
    assert 6 <= sum(f != "" for f in flags) <= 18


def test_stage0_trains_and_saves_a_loadable_model(data: Path, tmp_path: Path) -> None:
    """A few stage-0 steps change the weights, the result loads as a model dir and the probe scores it."""
    import torch
    from safetensors.torch import load_file

    from agentrm.synth.model import build_model, task_texts
    from agentrm.synth.pretrain import pretrain, probe

    base = build_model(tmp_path / "m", task_texts([data / "teacher" / "train.jsonl"], data / "prompts"))
    out = pretrain(base, tmp_path / "s0", steps=2, batch_size=4)
    before, after = load_file(base / "model.safetensors"), load_file(out / "model.safetensors")
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any("visual" in k for k in changed) and any(k.startswith("model.layers.") for k in changed)
    scores = probe(out, n=2)
    assert set(scores) == {"pointing", "reading"} and all(0.0 <= v <= 1.0 for v in scores.values())


def test_demo_uses_the_packaged_synth_model(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a learning-proof model packaged (here: an untrained one in its layout), `agentrm demo` scores the
    synth task's long pairs with the experiment's episode settings and the model's own prompts."""
    import agentrm.demo
    from agentrm.checkpoint import load, save_checkpoint
    from agentrm.cli import main
    from agentrm.synth.experiment import ship_model
    from agentrm.synth.generate import experiment_config
    from agentrm.synth.model import build_model, task_texts
    from agentrm.trace import read_traces

    base = build_model(tmp_path / "m", task_texts([data / "teacher" / "train.jsonl"], data / "prompts"))
    rm = load(str(base), dtype="float32", device="cpu", episode=experiment_config().episode)
    ckpt = save_checkpoint(tmp_path / "ckpt", rm.model, rm.processor, rm.head, rm.settings)
    monkeypatch.setattr(agentrm.demo, "SYNTH_MODEL", tmp_path / "pkg" / "default_model")
    shipped = ship_model(ckpt, data / "prompts", "tint")
    assert (shipped / "agentrm.json").is_file() and (shipped / "prompts" / "system.j2").is_file()
    assert main(["demo", "--out", str(tmp_path / "demo"), "--no-progress"]) == 0
    traces = read_traces(tmp_path / "demo" / "traces.jsonl")
    assert sorted(t.id for t in traces) == ["demo-synth0", "demo-synth1"]
    for t in traces:
        assert t.config["overview"]["frames_per_video"] == 8 and t.config["limits"]["max_turns"] == 4
        assert all(v.duration_s >= 150 for v in t.videos)
        assert all("_tint_" in v.path for v in t.videos)  # the task as the shipped model was trained on it


def test_induction_example_repeats_its_list() -> None:
    """The control kind: the answer is the context's list of frame labels, rising, all of one video."""
    import re

    import numpy as np

    from agentrm.synth.pretrain import induction_example

    rng = np.random.default_rng(2)
    for _ in range(5):
        ctx, answer = induction_example(rng)
        listed = re.fullmatch(r"List: (.*) Repeat\?", ctx.messages[0].text)
        assert listed and listed[1] == answer and not ctx.images
        times = [float(t) for t in re.findall(r"\[v\d ([\d.]+)s\]", answer)]
        assert len(times) == 8 and times == sorted(set(times))
        assert len(set(re.findall(r"\[v(\d) ", answer))) == 1


def test_teacher_forced_accuracy_scores_numbers_and_words(tmp_path: Path) -> None:
    """1.0 when the model's argmax is the next token everywhere, 0.0 when it always says one other token; the
    study writes one curve row per evaluation with every kind's accuracy."""
    import json

    import numpy as np
    import torch

    from agentrm.checkpoint import load
    from agentrm.engines.hf import HFEngine
    from agentrm.synth.pretrain import induction_example
    from agentrm.synth.study import build_study_model, run_study, teacher_forced_accuracy

    torch.set_num_threads(1)
    base = build_study_model(tmp_path / "m", n_texts=40)
    rm = load(str(base), dtype="float32", device="cpu")
    engine = HFEngine(rm)
    rng = np.random.default_rng(0)
    examples = [induction_example(rng) for _ in range(3)]
    seen: dict[str, torch.Tensor] = {}

    def keep_ids(module: object, args: object, kwargs: dict[str, torch.Tensor]) -> None:
        seen["ids"] = kwargs["input_ids"]

    def oracle(module: object, args: object, out: torch.Tensor) -> torch.Tensor:
        nxt = torch.roll(seen["ids"], -1, dims=1)
        return out + 1e4 * torch.nn.functional.one_hot(nxt, out.shape[-1]).float()

    pre = rm.model.register_forward_pre_hook(keep_ids, with_kwargs=True)
    head = rm.model.get_output_embeddings().register_forward_hook(oracle)
    assert teacher_forced_accuracy(rm.model, engine, examples) == 1.0
    assert teacher_forced_accuracy(rm.model, engine, examples, "words") == 1.0
    head.remove()
    space = engine.tokenizer.convert_tokens_to_ids("Ġ")

    def constant(module: object, args: object, out: torch.Tensor) -> torch.Tensor:
        out = out.clone()
        out[..., space] += 1e4
        return out

    head = rm.model.get_output_embeddings().register_forward_hook(constant)
    assert teacher_forced_accuracy(rm.model, engine, examples) == 0.0
    assert teacher_forced_accuracy(rm.model, engine, examples, "words") == 0.0
    head.remove()
    pre.remove()

    rows = run_study(tmp_path / "study", ("induction", "marking"), steps=2, eval_every=1, base=base, batch_size=2,
                     n_eval=2)
    assert [r["step"] for r in rows] == [1, 2]
    kinds = ("induction", "marking", "induction_words", "marking_words")
    assert all(0.0 <= r[k] <= 1.0 for r in rows for k in kinds) and np.isfinite(rows[0]["loss"])
    written = [json.loads(x) for x in (tmp_path / "study" / "curve.jsonl").read_text().splitlines()]
    assert written == rows


def test_study_cli_writes_a_curve_and_names_unknown_kinds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from agentrm.cli import main

    assert main(["synth", "study", "--out", str(tmp_path / "bad"), "--kinds", "scanning,pointng"]) == 2
    captured = capsys.readouterr()
    assert "pointng" in captured.out + captured.err
    out = tmp_path / "study"
    assert main(["synth", "study", "--out", str(out), "--kinds", "induction", "--steps", "2", "--eval-every", "1"]) == 0
    rows = [json.loads(x) for x in (out / "curve.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and set(rows[0]) == {"step", "loss", "induction", "induction_words"}


def test_verdict_examples_follow_the_labelling_rule() -> None:
    """Verdicts re-derived from the example's own text: a video loses VQ/MQ when its note names a defect of that
    dimension (tie when both or neither), TA when its colour is not the prompt's, OA when it has more problems."""
    import json
    import re

    import numpy as np

    from agentrm.synth.pretrain import verdict_example

    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(40):
        ctx, answer = verdict_example(rng)
        text = ctx.messages[0].text
        dims = {int(v): d for v, d in re.findall(r"v(\d): \w+ \((VQ|MQ)\)", text)}
        want, c1, c2 = re.search(r"Prompt (\w+); v1 (\w+) vs \w+(?: \(TA\))?, v2 (\w+)", text).groups()  # type: ignore[union-attr]
        assert [f"v{v} {c} vs {want} (TA)" in text for v, c in ((1, c1), (2, c2))] == [c != want for c in (c1, c2)]
        flags = [{"VQ": dims.get(v) == "VQ", "MQ": dims.get(v) == "MQ", "TA": c != want} for v, c in ((1, c1), (2, c2))]
        expect = {d: "tie" if flags[0][d] == flags[1][d] else ("2" if flags[0][d] else "1") for d in ("VQ", "MQ", "TA")}
        p1, p2 = (sum(f.values()) for f in flags)
        expect["OA"] = "tie" if p1 == p2 else ("1" if p1 < p2 else "2")
        assert json.loads(answer) == expect, text
        seen |= {expect["OA"], expect["TA"]}
    assert seen == {"1", "2", "tie"}


def test_vision_targets_follow_the_pixels_at_each_detail() -> None:
    """The warm-up's labels: a checkerboard defect is a defect at high detail and gone at low (as the pixels say),
    a vanished object has no colour, the last ramp frame before the snap is disturbed and the snap frame is not."""
    from agentrm.synth.scenes import render_frame, sample_video_spec
    from agentrm.synth.vision import COLOUR_CLASSES, DEFECT_CLASSES, frame_targets
    from agentrm.video.resize import resize_rgb

    rng = np.random.default_rng(0)
    for kind in ("flicker", "texture", "vanish", "hollow"):
        spec = sample_video_spec(rng, 400, "circle", "blue", "orbit", kind, "tint")
        assert spec.defect is not None
        i = spec.defect.start
        high = render_frame(spec, i)
        colour, defect, disturbed = frame_targets(spec, i, high)
        assert DEFECT_CLASSES[defect] == kind and disturbed == 0
        assert COLOUR_CLASSES[colour] == (None if kind == "vanish" else "blue")
        low_defect = DEFECT_CLASSES[frame_targets(spec, i, resize_rgb(high, (56, 56)))[1]]
        assert low_defect == (kind if kind in ("vanish", "hollow") else None)
        assert frame_targets(spec, i - 1, render_frame(spec, i - 1)) == (COLOUR_CLASSES.index("blue"), 0, 1)


def test_vision_warmup_trains_only_the_vision_tower_and_learns_colour(tmp_path: Path) -> None:
    """250 warm-up steps move the vision tower (and nothing of the language model) and make the object's colour
    readable from a frame's mean visual token: well above the 1-in-5 chance on fresh frames."""
    import torch

    from agentrm.checkpoint import load
    from agentrm.synth.study import build_study_model
    from agentrm.synth.vision import vision_warmup

    torch.manual_seed(0)
    rm = load(str(build_study_model(tmp_path / "m", cue="tint", n_texts=24)), dtype="float32", device="cpu")
    before = {k: v.clone() for k, v in rm.model.state_dict().items()}
    scores = vision_warmup(rm.model, rm.processor, 250, np.random.default_rng(1), "tint", batch_size=8)
    changed = {k for k, v in rm.model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(".visual." in k or k.startswith("visual.") for k in changed), sorted(changed)[:5]
    assert set(scores) == {f"{d}_{t}" for d in ("high", "low") for t in ("colour", "defect", "cue")}
    assert scores["high_colour"] >= 0.6 and scores["low_colour"] >= 0.6, scores
