"""`agentrm score --ray` (agentrm.distributed): same traces as the single-process path, nothing lost or duplicated
when a worker or the driver is killed. One local Ray (2 CPUs) is shared by the module's tests; the driver-kill test
runs the real CLI in a subprocess against it (`--address`), so the cluster path is exercised too."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentrm.config import ScoreConfig
from agentrm.data.schema import Item
from agentrm.engines.base import Context
from agentrm.engines.scripted import ScriptedEngine, ScriptTurn
from agentrm.errors import ConfigError
from agentrm.trace import read_traces
from agentrm.video.synthetic import write_index_video

VERDICTS = {"VQ": "1", "MQ": "2", "TA": "tie", "OA": "1"}
TOOL = '<think>look</think>\n<tool_call>{"name": "select_frames", "arguments": {"video": 1, "frames": [3, 9]}}' \
       "</tool_call>"
ANSWER = f"<think>done</think>\n<answer>{json.dumps(VERDICTS)}</answer><Reward><Reward>"
REWARDS = [[1.0, 2.0, 3.0, 4.0], [0.5, 0.5, 0.5, 0.5]]


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    d = tmp_path_factory.mktemp("ray-videos")
    out = []
    for k, n in enumerate((40, 60, 80)):
        write_index_video(d / f"v{k}.mp4", num_frames=n, fps=10, size=(112, 84), gop=10)
        out.append(str(d / f"v{k}.mp4"))
    return out


def pairs(videos: list[str], n: int) -> list[Item]:
    return [Item(id=f"s{i:03d}", mode="pairwise", prompt=f"prompt {i}", videos=[videos[i % 3], videos[(i + 1) % 3]])
            for i in range(n)]


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A local Ray for this module; yields its address for subprocess drivers."""
    ray = pytest.importorskip("ray")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import tests/
    ctx = ray.init(num_cpus=2, include_dashboard=False)
    yield str(ctx.address_info["gcs_address"])
    ray.shutdown()


@dataclass
class Crasher:
    """A picklable engine factory (runs inside each Ray worker): a scripted tool call then an answer, and the
    worker process SIGKILLs itself (like an OOM kill) when it reaches `kill_once` the first time (a marker file
    remembers it across workers) or `kill_always` every time."""

    marker_dir: str
    kill_once: str = ""
    kill_always: str = ""

    def __call__(self) -> ScriptedEngine:
        def respond(ctx: Context) -> ScriptTurn:
            marker = Path(self.marker_dir) / f"killed-{ctx.sample_id}"
            if ctx.sample_id == self.kill_always or (ctx.sample_id == self.kill_once and not marker.exists()):
                marker.write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
            return ScriptTurn(TOOL) if ctx.turn == 1 else ScriptTurn(ANSWER, REWARDS)

        return ScriptedEngine(responder=respond)


def scripted_cfg(concurrency: int = 3) -> ScoreConfig:
    return ScoreConfig.model_validate({"engine": {"kind": "scripted"}, "concurrency": concurrency})


def ids(path: Path) -> Counter[str]:
    return Counter(t.id for t in read_traces(path))


# ------------------------------------------------------------------------------------------------- tests
def test_ray_flags_need_ray_and_are_validated() -> None:
    import argparse

    from agentrm.cli import score

    parser = argparse.ArgumentParser()
    score.add_arguments(parser)
    args = parser.parse_args(["--input", "x.jsonl", "--out", "o.jsonl", "--num-workers", "2"])
    with pytest.raises(ConfigError, match="--num-workers: Ray options, used only with --ray"):
        score.build_ray_config(args)
    args = parser.parse_args(["--input", "x.jsonl", "--out", "o.jsonl", "--ray", "--num-workers", "0"])
    with pytest.raises(ConfigError, match="num_workers"):
        score.build_ray_config(args)
    args = parser.parse_args(["--input", "x", "--out", "o", "--ray", "--address", "auto", "--cpus-per-worker", "4"])
    rcfg = score.build_ray_config(args)
    assert rcfg is not None and rcfg.address == "auto" and rcfg.threads == 4 and rcfg.max_attempts == 3


@pytest.mark.ray
def test_two_hf_workers_write_the_same_traces_as_one_process(
    ray_cluster: str, videos: list[str], tiny_qwen2_5_vl_dir: Path, tmp_path: Path
) -> None:
    from agentrm.distributed import RayConfig, score_items_ray
    from agentrm.engines.hf import HFEngine
    from agentrm.scoring import score_items

    cfg = ScoreConfig.model_validate({
        "engine": {"kind": "hf", "model": str(tiny_qwen2_5_vl_dir), "device": "cpu", "batch_wait_ms": 20},
        "episode": {"limits": {"max_turns": 2, "max_new_tokens": 8}, "overview": {"frames_per_video": 2}},
        "concurrency": 4,
    })
    items = pairs(videos, 6)
    single, dist = tmp_path / "single.jsonl", tmp_path / "ray.jsonl"
    asyncio.run(score_items(items, HFEngine.from_config(cfg.engine, cfg.episode), cfg, single))
    summary = score_items_ray(items, cfg, dist, RayConfig(num_workers=2))
    assert summary.workers == 2 and summary.scored == 6 and summary.worker_deaths == 0

    def comparable(path: Path) -> dict[str, dict[str, Any]]:
        out = {}
        for t in read_traces(path):
            d = t.model_dump(mode="json", exclude={"timings", "created_at"})
            for e in d["events"]:
                e.pop("latency_s", None)
            out[t.id] = d
        return out

    a, b = comparable(single), comparable(dist)
    assert sorted(a) == sorted(b) == [i.id for i in items]
    assert all(t["events"] for t in a.values())  # real episodes, not failures
    for key in a:
        assert a[key] == b[key], key


@pytest.mark.ray
def test_a_killed_worker_loses_and_duplicates_nothing(ray_cluster: str, videos: list[str], tmp_path: Path) -> None:
    from agentrm.distributed import RayConfig, score_items_ray

    items = pairs(videos, 16)
    out = tmp_path / "t.jsonl"
    summary = score_items_ray(items, scripted_cfg(), out, RayConfig(num_workers=2),
                              engine_factory=Crasher(str(tmp_path), kill_once="s007"))
    assert (tmp_path / "killed-s007").exists()
    assert summary.worker_deaths == 1 and summary.retried >= 1 and summary.scored == 16
    traces = read_traces(out)
    assert Counter(t.id for t in traces) == Counter(i.id for i in items)  # each sample exactly once
    assert {t.termination for t in traces} == {"answer"}
    assert all(t.rewards == [dict(zip(["VQ", "MQ", "TA", "OA"], r, strict=True)) for r in REWARDS] for t in traces)


@pytest.mark.ray
def test_a_sample_that_keeps_killing_workers_is_recorded_failed(
    ray_cluster: str, videos: list[str], tmp_path: Path
) -> None:
    from agentrm.distributed import RayConfig, score_items_ray

    items = pairs(videos, 12)
    out = tmp_path / "t.jsonl"
    summary = score_items_ray(items, scripted_cfg(), out, RayConfig(num_workers=2, max_attempts=3),
                              engine_factory=Crasher(str(tmp_path), kill_always="s004"))
    traces = {t.id: t for t in read_traces(out)}
    assert ids(out) == Counter(i.id for i in items)
    bad = traces.pop("s004")
    assert bad.termination == "error" and bad.error is not None
    assert "died 3 times" in bad.error and "alone" in bad.error and bad.engine["name"] == "scripted"
    # the others may have shared a dying worker with it, but were retried and finished
    assert {t.termination for t in traces.values()} == {"answer"}
    assert summary.worker_deaths == 3 and summary.failed == 1


def broken_engine() -> ScriptedEngine:
    raise ConfigError("engine.model=nowhere/: no such directory")


@pytest.mark.ray
def test_an_engine_that_cannot_be_built_stops_the_run_at_once(
    ray_cluster: str, videos: list[str], tmp_path: Path
) -> None:
    from agentrm.distributed import RayConfig, score_items_ray
    from agentrm.errors import EngineError

    t0 = time.monotonic()
    with pytest.raises(EngineError, match="could not build its engine.*nowhere/: no such directory"):
        score_items_ray(pairs(videos, 4), scripted_cfg(), tmp_path / "t.jsonl", RayConfig(num_workers=2),
                        engine_factory=broken_engine)
    assert time.monotonic() - t0 < 30  # not retried as if the worker had crashed
    assert read_traces(tmp_path / "t.jsonl") == []


@pytest.mark.ray
def test_killed_driver_resumes_with_the_same_command(ray_cluster: str, videos: list[str], tmp_path: Path) -> None:
    n = 400
    inputs, script, out = tmp_path / "items.jsonl", tmp_path / "script.jsonl", tmp_path / "t.jsonl"
    inputs.write_text("".join(json.dumps(i.model_dump(mode="json")) + "\n" for i in pairs(videos, n)))
    script.write_text(json.dumps({"text": TOOL}) + "\n" + json.dumps({"text": ANSWER, "rewards": REWARDS}) + "\n")
    runner = ("import argparse, logging, sys; from agentrm.cli import score; logging.basicConfig(level='INFO'); "
              "p = argparse.ArgumentParser(); "
              "score.add_arguments(p); sys.exit(score.run(p.parse_args(sys.argv[1:])))")
    cmd = [sys.executable, "-c", runner, "--input", str(inputs), "--script", str(script), "--out", str(out),
           "--no-progress", "--ray", "--address", ray_cluster, "--num-workers", "2", "concurrency=4"]

    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and first.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 10:
            first.send_signal(signal.SIGKILL)  # mid-run, mid-write perhaps: the next run repairs a torn line
            break
        time.sleep(0.01)
    _, err = first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL, err[-2000:]
    done_before = len(read_traces(out))
    assert 10 <= done_before < n

    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr[-2000:]
    assert ids(out) == Counter(f"s{i:03d}" for i in range(n))  # everything, each exactly once
    assert f"resuming: {done_before} of {n} samples" in second.stderr
