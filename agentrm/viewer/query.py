"""Queries over the trace index: the sample table (filters, sort, paging), neighbours for keyboard navigation,
per-run summaries with small histograms, and the per-sample comparison of two runs.

Every user value reaches SQL as a bound parameter; sort keys are looked up in a fixed table (per-dimension
keys like `m.OA` are checked against a pattern and bound too), so no request text is ever spliced into a
statement.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from agentrm.viewer.index import TraceIndex

SORTS: dict[str, list[str]] = {
    "line": ["f.run", "t.line"],
    "run": ["f.run", "t.line"],
    "sample_id": ["t.sample_id"],
    "label": ["t.label"],
    "verdict": ["t.verdict"],
    "correct": ["t.correct"],
    "margin": ["t.margin"],
    "abs_margin": ["ABS(t.margin)"],
    "reward": ["t.reward"],
    "turns": ["t.num_turns"],
    "frames": ["t.frames_viewed"],
    "tool_errors": ["t.tool_errors"],
    "termination": ["t.termination"],
    "created_at": ["t.created_at"],
}
SCORE_KEY = re.compile(r"^(r[0-9]{1,2}|m|c)\.[A-Za-z0-9_\-]{1,64}$")
CORRUPT = "corrupt"  # termination filter value for lines that are not valid traces
_ROW_COLS = (
    "f.run, t.line, t.status, t.error, t.sample_id, t.mode, t.termination, t.num_turns, t.frames_viewed, "
    "t.tool_calls, t.tool_errors, t.parse_errors, t.overall, t.label, t.verdict, t.correct, t.margin, "
    "t.reward, "
    "t.verdicts, t.labels, t.id"
)


@dataclass
class TraceFilter:
    run: str | None = None  # None or "" = every run
    wrong: bool = False
    label: str | None = None
    margin_min: float | None = None
    margin_max: float | None = None
    turns_min: int | None = None
    turns_max: int | None = None
    tool_errors: bool = False
    termination: str | None = None  # a trace termination, or "corrupt"
    q: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses, params = ["1=1"], []
        checks: list[tuple[object, str]] = [
            (self.run, "f.run = ?"),
            (self.label, "t.label = ?"),
            (self.margin_min, "t.margin >= ?"),
            (self.margin_max, "t.margin <= ?"),
            (self.turns_min, "t.num_turns >= ?"),
            (self.turns_max, "t.num_turns <= ?"),
        ]
        for value, clause in checks:
            if value is not None and value != "":
                clauses.append(clause)
                params.append(value)
        if self.wrong:
            clauses.append("t.correct = 0")
        if self.tool_errors:
            clauses.append("t.tool_errors > 0")
        if self.termination == CORRUPT:
            clauses.append("t.status != 'ok'")
        elif self.termination:
            clauses.append("t.termination = ?")
            params.append(self.termination)
        if self.q:
            escaped = self.q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            clauses.append("t.id IN (SELECT trace_id FROM texts WHERE text LIKE ? ESCAPE '\\')")
            params.append(f"%{escaped}%")
        return " AND ".join(clauses), params


def order_by(sort: str, desc: bool) -> tuple[str, list[Any]]:
    """ORDER BY clause for a sort key; NULLs (error rows, unlabelled samples) always sort last."""
    direction = "DESC" if desc else "ASC"
    params: list[Any] = []
    if sort in SORTS:
        exprs = SORTS[sort]
    elif SCORE_KEY.match(sort):
        exprs = ["(SELECT value FROM scores s WHERE s.trace_id = t.id AND s.key = ?)"]
        params = [sort, sort]  # the expression appears twice below
    else:
        raise ValueError(
            f"unknown sort key {sort!r}; use one of {sorted(SORTS)} or r1.<dim>, r2.<dim>, m.<dim>"
        )
    parts = [f"({e}) IS NULL, {e} {direction}" for e in exprs]
    return ", ".join(parts) + ", t.id", params


def _row(r: Any) -> dict[str, Any]:
    out = dict(r)
    for k in ("verdicts", "labels"):
        out[k] = json.loads(out[k]) if out[k] else None
    return out


def list_traces(
    index: TraceIndex,
    flt: TraceFilter,
    sort: str = "line",
    desc: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    where, params = flt.where()
    order, oparams = order_by(sort, desc)
    base = f"FROM traces t JOIN files f ON f.id = t.file_id WHERE {where}"
    (total,) = index.execute(f"SELECT COUNT(*) {base}", params)[0]
    rows = [
        _row(r)
        for r in index.execute(
            f"SELECT {_ROW_COLS} {base} ORDER BY {order} LIMIT ? OFFSET ?", [*params, *oparams, limit, offset]
        )
    ]
    ids = [r.pop("id") for r in rows]
    scores: dict[int, dict[str, float]] = {i: {} for i in ids}
    if ids:
        marks = ",".join("?" * len(ids))
        for s in index.execute(f"SELECT trace_id, key, value FROM scores WHERE trace_id IN ({marks})", ids):
            scores[s["trace_id"]][s["key"]] = s["value"]
    for r, i in zip(rows, ids, strict=True):
        r["scores"] = scores[i]
    return {"total": total, "offset": offset, "rows": rows}


def dims_order(index: TraceIndex, run: str | None) -> list[str]:
    """Dimensions in the order the traces list them (VQ, MQ, TA, OA), first appearance first."""
    where, params = TraceFilter(run=run or None).where()
    out: list[str] = []
    for (dims,) in index.execute(
        f"SELECT DISTINCT t.dims FROM traces t JOIN files f ON f.id = t.file_id "
        f"WHERE {where} AND t.dims IS NOT NULL",
        params,
    ):
        out.extend(d for d in json.loads(dims) if d not in out)
    return out


def facets(index: TraceIndex, run: str | None) -> dict[str, Any]:
    """Values the filter controls offer for a run (or all runs): labels, terminations, dimensions, ranges."""
    where, params = TraceFilter(run=run or None).where()
    base = f"FROM traces t JOIN files f ON f.id = t.file_id WHERE {where}"
    labels = [
        r[0]
        for r in index.execute(f"SELECT DISTINCT t.label {base} AND t.label IS NOT NULL ORDER BY 1", params)
    ]
    terms = [
        r[0]
        for r in index.execute(f"SELECT DISTINCT t.termination {base} AND t.termination IS NOT NULL", params)
    ]
    keys = index.execute(
        f"SELECT DISTINCT s.key FROM scores s WHERE s.trace_id IN (SELECT t.id {base}) ORDER BY 1", params
    )
    scored = {k[0].split(".", 1)[1] for k in keys}
    dims = [d for d in dims_order(index, run) if d in scored] + sorted(scored - set(dims_order(index, run)))
    rng = index.execute(
        f"SELECT MIN(t.margin), MAX(t.margin), MIN(t.num_turns), MAX(t.num_turns), "
        f"SUM(t.status != 'ok'), COUNT(*) {base}",
        params,
    )[0]
    videos = max((int(k[0][1:].split(".")[0]) for k in keys if k[0].startswith("r")), default=0)
    return {
        "labels": labels,
        "terminations": sorted(terms),
        "dims": dims,
        "videos": videos,
        "margin": [rng[0], rng[1]],
        "turns": [rng[2], rng[3]],
        "corrupt": rng[4] or 0,
        "count": rng[5],
    }


def neighbors(
    index: TraceIndex, flt: TraceFilter, sort: str, desc: bool, run: str, line: int
) -> dict[str, Any]:
    """Position of (run, line) in the filtered, sorted list and the keys before/after it (and the next wrong
    one), so the episode view's j/k/n keys walk the same list the table showed."""
    where, params = flt.where()
    order, oparams = order_by(sort, desc)
    keys = index.execute(
        f"SELECT f.run, t.line, t.correct FROM traces t JOIN files f ON f.id = t.file_id WHERE {where} "
        f"ORDER BY {order}",
        [*params, *oparams],
    )
    pos = next((i for i, k in enumerate(keys) if k[0] == run and k[1] == line), None)

    def key(i: int | None) -> dict[str, Any] | None:
        return (
            None if i is None or not 0 <= i < len(keys) else {"run": keys[i][0], "line": keys[i][1], "pos": i}
        )

    if pos is None:
        return {
            "pos": None,
            "total": len(keys),
            "prev": None,
            "next": key(0),
            "next_wrong": None,
            "prev_wrong": None,
        }
    nw = next((i for i in range(pos + 1, len(keys)) if keys[i][2] == 0), None)
    pw = next((i for i in range(pos - 1, -1, -1) if keys[i][2] == 0), None)
    return {
        "pos": pos,
        "total": len(keys),
        "prev": key(pos - 1),
        "next": key(pos + 1),
        "next_wrong": key(nw),
        "prev_wrong": key(pw),
    }


def histogram(values: list[float], bins: int = 12, integer: bool = False) -> dict[str, list[float]]:
    """Counts over equal bins; integer data with a small range gets one bin per value."""
    if not values:
        return {"edges": [], "counts": []}
    lo, hi = min(values), max(values)
    if integer and hi - lo < 24:
        edges = [lo + i - 0.5 for i in range(int(hi - lo) + 2)]
    else:
        if hi == lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges = [lo + (hi - lo) * i / bins for i in range(bins + 1)]
    counts = [0.0] * (len(edges) - 1)
    for v in values:
        i = min(len(counts) - 1, max(0, int((v - edges[0]) / (edges[-1] - edges[0]) * len(counts))))
        counts[i] += 1
    return {"edges": edges, "counts": counts}


def run_summaries(index: TraceIndex) -> list[dict[str, Any]]:
    """One row per run: counts, accuracy vs labels (overall and per dimension), mean reward and |margin|,
    turns and frames per episode, terminations, and histograms of turns, frames and margin."""
    out = []
    for run in index.runs():
        agg = index.execute(
            "SELECT COUNT(*) n, SUM(t.status != 'ok') corrupt, COUNT(t.correct) labelled, "
            "AVG(t.correct) acc, "
            "AVG(t.reward) reward, AVG(ABS(t.margin)) abs_margin, AVG(t.num_turns) turns, "
            "AVG(t.frames_viewed) frames, SUM(t.tool_errors > 0) with_tool_errors, "
            "GROUP_CONCAT(DISTINCT t.mode) modes "
            "FROM traces t JOIN files f ON f.id = t.file_id WHERE f.run = ?",
            (run,),
        )[0]
        ok = "FROM traces t JOIN files f ON f.id = t.file_id WHERE f.run = ? AND t.status = 'ok'"
        cols = index.execute(f"SELECT t.num_turns, t.frames_viewed, t.margin {ok}", (run,))
        terms = index.execute(f"SELECT t.termination, COUNT(*) {ok} GROUP BY 1 ORDER BY 2 DESC", (run,))
        per_dim = index.execute(
            "SELECT SUBSTR(s.key, 3) dim, AVG(s.value) acc, COUNT(*) n FROM scores s "
            "JOIN traces t ON t.id = s.trace_id JOIN files f ON f.id = t.file_id "
            "WHERE f.run = ? AND s.key LIKE 'c.%' GROUP BY 1 ORDER BY 1",
            (run,),
        )
        summary = dict(agg)
        summary.update(
            run=run,
            terminations={r[0] or "none": r[1] for r in terms},
            dim_accuracy=_ordered({r["dim"]: r["acc"] for r in per_dim}, dims_order(index, run)),
            hist_turns=histogram([r[0] for r in cols if r[0] is not None], integer=True),
            hist_frames=histogram([r[1] for r in cols if r[1] is not None], integer=True),
            hist_margin=histogram([r[2] for r in cols if r[2] is not None]),
        )
        summary["corrupt"] = summary["corrupt"] or 0
        out.append(summary)
    return out


def _ordered(values: dict[str, Any], order: list[str]) -> dict[str, Any]:
    return {k: values[k] for k in [*[d for d in order if d in values], *sorted(set(values) - set(order))]}


def compare_runs(index: TraceIndex, a: str, b: str) -> dict[str, Any]:
    """Per-sample changes between two runs, matched by sample id (the last line wins when a run repeats
    one)."""

    def load(run: str) -> dict[str, dict[str, Any]]:
        rows = index.execute(
            "SELECT t.sample_id, t.line, t.correct, t.margin, t.verdict, t.label, t.num_turns, "
            "t.frames_viewed, "
            "t.termination FROM traces t JOIN files f ON f.id = t.file_id "
            "WHERE f.run = ? AND t.status = 'ok' ORDER BY t.line",
            (run,),
        )
        return {r["sample_id"]: dict(r) for r in rows}

    known = set(index.runs())
    for run in (a, b):
        if run not in known:
            raise KeyError(run)
    ra, rb = load(a), load(b)
    counts = {"fixed": 0, "broken": 0, "both_right": 0, "both_wrong": 0, "unlabelled": 0}
    rows = []
    for sid in sorted(ra.keys() & rb.keys()):
        x, y = ra[sid], rb[sid]
        if x["correct"] is None or y["correct"] is None:
            change = "unlabelled"
        elif x["correct"] == y["correct"]:
            change = "both_right" if x["correct"] else "both_wrong"
        else:
            change = "fixed" if y["correct"] else "broken"
        counts[change] += 1
        delta = None if x["margin"] is None or y["margin"] is None else y["margin"] - x["margin"]
        rows.append(
            {
                "sample_id": sid,
                "label": x["label"] or y["label"],
                "change": change,
                "a": x,
                "b": y,
                "delta_margin": delta,
            }
        )

    def accuracy(run: dict[str, dict[str, Any]]) -> float | None:
        labelled = [r["correct"] for r in run.values() if r["correct"] is not None]
        return sum(labelled) / len(labelled) if labelled else None

    return {
        "a": a,
        "b": b,
        "counts": counts,
        "only_a": len(ra.keys() - rb.keys()),
        "only_b": len(rb.keys() - ra.keys()),
        "accuracy": {"a": accuracy(ra), "b": accuracy(rb)},
        "rows": rows,
    }
