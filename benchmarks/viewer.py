"""Viewer index benchmark: index time and list-query latency for N generated traces (default 10k).

    .venv/bin/python benchmarks/viewer.py                 # 10k traces in 4 runs
    .venv/bin/python benchmarks/viewer.py --traces 2000   # quicker

Measures (all in one process, on a fresh temp folder and cache):
- cold index build, a no-op refresh, an append of 100 traces, and a re-open of the cached index;
- list-query latency (median and p95 of repeated calls) for the sample table's typical queries, directly and
  through the HTTP app (FastAPI TestClient, so JSON encoding is included);
- baseline: what a viewer without an index does per request, i.e. parse every JSONL line
  (agentrm.trace.read_traces) and filter in Python. Ratios are baseline / indexed, measured in the same run.

Traces come from agentrm.viewer.synth (1-4 tool turns, ~9 KB each); no videos are needed (no thumbnails).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentrm.trace import read_traces
from agentrm.viewer import query
from agentrm.viewer.index import TraceIndex, overall_dim, same_value
from agentrm.viewer.synth import synthetic_trace, video_info

VIDEOS = [
    video_info(1, "videos/a.mp4", 900, 30.0, 640, 360),
    video_info(2, "videos/b.mp4", 600, 24.0, 640, 360),
]


def write_runs(root: Path, n: int, runs: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    lines: list[list[str]] = [[] for _ in range(runs)]
    for i in range(n):
        label = rng.choice(["1", "2"])
        wrong = rng.random() < 0.3
        answered = rng.random() > 0.05
        trace = synthetic_trace(
            f"sample-{i // runs:06d}",
            VIDEOS,
            rng=rng,
            label=label,
            verdict=(("2" if label == "1" else "1") if wrong else label) if answered else None,
            termination="answer" if answered else "max_turns",
            tool_turns=rng.randint(1, 4),
            tool_error_turn=2 if rng.random() < 0.1 else None,
            keep_groups=2,
            text_chars=600,
        )
        lines[i % runs].append(trace.model_dump_json())
    names = []
    for r, rows in enumerate(lines):
        name = f"run_{r}"
        (root / f"{name}.jsonl").write_text("\n".join(rows) + "\n")
        names.append(name)
    return names


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(median ms, p95 ms, last result) over `repeat` calls after one warm-up call."""
    out = fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))], out


def naive_wrong_only(root: Path, run: str) -> list[str]:
    """The no-index baseline: parse the whole run for one page of wrong answers."""
    out = []
    for t in read_traces(root / f"{run}.jsonl"):
        dim = overall_dim(t)
        label, verdict = t.inputs.labels.get(dim), (t.verdicts or {}).get(dim)
        if label is not None and (verdict is None or not same_value(verdict, label)):
            out.append(t.id)
    return out[:100]


def bench_index(root: Path, cache: Path, runs: list[str], n: int, size_mb: float) -> TraceIndex:
    """Cold build, no-op refresh, an append, and a re-open; returns the re-opened index."""
    print("\n== index")
    index = TraceIndex(root, cache)
    t0 = time.perf_counter()
    index.refresh()
    cold = time.perf_counter() - t0
    print(f"cold build          {cold:8.2f} s   ({n / cold:,.0f} traces/s, {size_mb / cold:.1f} MB/s)")
    noop_ms, _, _ = timed(lambda: index.refresh(), 5)
    print(f"no-op refresh       {noop_ms:8.2f} ms")
    extra = [synthetic_trace(f"late-{i}", VIDEOS, rng=random.Random(i)).model_dump_json() for i in range(100)]
    with (root / f"{runs[0]}.jsonl").open("a") as fh:
        fh.write("\n".join(extra) + "\n")
    t0 = time.perf_counter()
    stats = index.refresh()
    assert stats is not None and stats.lines == 100 and stats.appended == 1
    print(f"append 100 traces   {(time.perf_counter() - t0) * 1000:8.1f} ms   (only new lines are parsed)")
    index.close()
    t0 = time.perf_counter()
    reopened = TraceIndex(root, cache)
    reopened.refresh()
    assert reopened.parsed_lines == 0
    print(f"re-open cached      {(time.perf_counter() - t0) * 1000:8.1f} ms   (a second `agentrm view`)")
    print(f"index size          {reopened.db_path.stat().st_size / 2**20:8.1f} MB")
    return reopened


def bench_queries(index: TraceIndex, runs: list[str], n: int, repeat: int) -> dict[str, float]:
    run, flt = runs[0], query.TraceFilter
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("page 1, by line", lambda: query.list_traces(index, flt(run=run))),
        ("wrong only", lambda: query.list_traces(index, flt(run=run, wrong=True))),
        ("sort by m.OA desc", lambda: query.list_traces(index, flt(run=run), "m.OA", True)),
        ("text search", lambda: query.list_traces(index, flt(run=run, q="distorted"))),
        (
            "5 filters + sort",
            lambda: query.list_traces(
                index, flt(run=run, wrong=True, label="1", margin_min=-1, turns_min=2, q="camera"), "r2.VQ"
            ),
        ),
        ("all runs, last page", lambda: query.list_traces(index, flt(), offset=n)),
        ("facets", lambda: query.facets(index, run)),
        ("run summaries (all)", lambda: query.run_summaries(index)),
        ("neighbors (episode j/k)", lambda: query.neighbors(index, flt(run=run), "m.OA", True, run, 500)),
        ("compare 2 runs", lambda: query.compare_runs(index, runs[0], runs[1])),
    ]
    print(f"\n== list queries ({n // len(runs)} traces per run; median / p95 of {repeat})")
    results = {}
    for name, fn in cases:
        med, p95, _ = timed(fn, repeat)
        results[name] = med
        print(f"{name:26s} {med:8.2f} ms {p95:8.2f} ms")
    return results


def bench_http(root: Path, cache: Path, run: str, repeat: int) -> None:
    print("\n== through HTTP (FastAPI TestClient, JSON included)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

        from agentrm.viewer.app import create_app

        client = TestClient(create_app(root, cache_dir=cache, refresh_interval_s=1.0))
    for name, params in [
        ("GET /api/traces", {"run": run}),
        ("GET /api/traces wrong=1", {"run": run, "wrong": 1}),
        ("GET /api/traces sort=m.OA", {"run": run, "sort": "m.OA", "desc": 1}),
    ]:
        med, p95, res = timed(lambda p=params: client.get("/api/traces", params=p), repeat)
        assert res.status_code == 200
        print(f"{name:26s} {med:8.2f} ms {p95:8.2f} ms")
    med, p95, _ = timed(lambda: client.get("/api/trace", params={"run": run, "line": 1234}), repeat)
    print(f"{'GET /api/trace (full)':26s} {med:8.2f} ms {p95:8.2f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--traces", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp) / "traces", Path(tmp) / "cache"
        root.mkdir()
        t0 = time.perf_counter()
        runs = write_runs(root, args.traces, args.runs)
        size_mb = sum(p.stat().st_size for p in root.glob("*.jsonl")) / 2**20
        took = time.perf_counter() - t0
        print(f"generated {args.traces} traces in {len(runs)} runs, {size_mb:.1f} MB, {took:.1f}s")
        index = bench_index(root, cache, runs, args.traces, size_mb)
        results = bench_queries(index, runs, args.traces, args.repeat)
        bench_http(root, cache, runs[0], args.repeat)

        print("\n== baseline: parse the run's JSONL per request (no index)")
        base_ms, _, naive = timed(lambda: naive_wrong_only(root, runs[0]), 3)
        indexed = query.list_traces(index, query.TraceFilter(run=runs[0], wrong=True))
        assert [r["sample_id"] for r in indexed["rows"]] == naive  # same answer
        print(f"{'wrong only, no index':26s} {base_ms:8.1f} ms")
        print(f"ratio baseline / indexed   {base_ms / results['wrong only']:8.0f}x  (wrong only)")
        print(f"ratio baseline / indexed   {base_ms / results['page 1, by line']:8.0f}x  (first page)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
