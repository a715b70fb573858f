"""SQLite index of trace JSONL files: the viewer lists and filters from it and reads a full trace only when
opened.

Why an index: a run is tens of thousands of traces of ~10 KB; parsing every line for every page view is what
made other viewers slow. Here each line is parsed once into a row of summary columns (correctness, margin,
turns, tool errors, ...) plus its byte offset and length, so a list query is one SQL statement and opening an
episode is one seek. Per-dimension values live in a narrow `scores` table (`r1.VQ`, `m.OA`, `c.TA`) so any of
them can be sorted on; the lower-cased searchable text (prompt, reasoning, error messages) sits in its own
table to keep the main rows small.

What a *run* is: one JSONL file. Its name is the file's path relative to the trace directory, without `.jsonl`
(`sweeps/lr1e-6/traces`). Hidden files and folders (`.cache`, ...) are skipped.

Caching and growth: the database lives in the viewer cache, keyed by the trace directory. Each file is
remembered by (path, size, mtime) plus a hash of its head; an unchanged file is skipped, a file that grew (a
training run appending traces) is parsed from where indexing stopped, anything else is re-indexed from
scratch. Only complete lines are committed as indexed: a torn last line (no newline yet) is shown as an error
row and read again when the file grows. A line that is not a valid trace becomes an error row, never an
exception.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agentrm.errors import DataError
from agentrm.trace import Trace

log = logging.getLogger(__name__)

INDEX_VERSION = "1"
_HEAD_BYTES = 4096

_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE files(
    id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, run TEXT UNIQUE NOT NULL,
    size INTEGER, mtime_ns INTEGER, indexed_bytes INTEGER, next_line INTEGER, head_sha TEXT);
CREATE TABLE traces(
    id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL, line INTEGER NOT NULL, offset INTEGER NOT NULL,
    length INTEGER NOT NULL, status TEXT NOT NULL, error TEXT, sample_id TEXT, mode TEXT, policy TEXT,
    termination TEXT, num_turns INTEGER, frames_viewed INTEGER, tool_calls INTEGER, tool_errors INTEGER,
    parse_errors INTEGER, overall TEXT, label TEXT, verdict TEXT, correct INTEGER, margin REAL, reward REAL,
    created_at REAL, dims TEXT, verdicts TEXT, labels TEXT);
CREATE INDEX traces_file_line ON traces(file_id, line);
CREATE INDEX traces_file_sample ON traces(file_id, sample_id);
CREATE TABLE scores(trace_id INTEGER NOT NULL, key TEXT NOT NULL, value REAL, PRIMARY KEY(trace_id, key))
    WITHOUT ROWID;
CREATE TABLE texts(trace_id INTEGER PRIMARY KEY, text TEXT NOT NULL);
"""

TRACE_COLUMNS = [
    "file_id",
    "line",
    "offset",
    "length",
    "status",
    "error",
    "sample_id",
    "mode",
    "policy",
    "termination",
    "num_turns",
    "frames_viewed",
    "tool_calls",
    "tool_errors",
    "parse_errors",
    "overall",
    "label",
    "verdict",
    "correct",
    "margin",
    "reward",
    "created_at",
    "dims",
    "verdicts",
    "labels",
]


@dataclass
class RefreshStats:
    files: int = 0
    skipped: int = 0
    appended: int = 0
    rebuilt: int = 0
    removed: int = 0
    lines: int = 0
    seconds: float = 0.0


@dataclass
class Located:
    """Where one trace line lives, and what the index knows about it."""

    path: Path
    run: str
    line: int
    offset: int
    length: int
    status: str
    error: str | None


def default_cache_dir() -> Path:
    return Path(os.environ.get("AGENTRM_CACHE") or Path.home() / ".cache" / "agentrm") / "viewer"


def same_value(a: object, b: object) -> bool:
    """Verdict vs label: numbers compare as numbers (pointwise 4 == 4.0), anything else as trimmed lower
    text."""
    try:
        return math.isclose(float(a), float(b), abs_tol=1e-9)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(a).strip().lower() == str(b).strip().lower()


def overall_dim(trace: Trace) -> str:
    dim = trace.config.get("overall_dim")
    return dim if isinstance(dim, str) and dim else "OA"


def summarize(trace: Trace) -> tuple[dict[str, Any], dict[str, float], str]:
    """Summary columns, per-dimension scores and search text of one valid trace.

    Correct means the verdict of the overall dimension equals the label of that dimension; a labelled trace
    without a verdict (the episode never answered) counts as wrong. Margin (pairwise) is reward(video 1) -
    reward(video 2) of the overall dimension."""
    dim = overall_dim(trace)
    labels, verdicts, rewards = trace.inputs.labels, trace.verdicts or {}, trace.rewards or []
    label, verdict = labels.get(dim), verdicts.get(dim)
    correct = None if label is None else int(verdict is not None and same_value(verdict, label))
    scores: dict[str, float] = {}
    for v, per_dim in enumerate(rewards, 1):
        for d, r in per_dim.items():
            scores[f"r{v}.{d}"] = r
    if trace.inputs.mode == "pairwise" and len(rewards) >= 2:
        for d in rewards[0].keys() & rewards[1].keys():
            scores[f"m.{d}"] = rewards[0][d] - rewards[1][d]
    for d, lab in labels.items():
        scores[f"c.{d}"] = float(d in verdicts and same_value(verdicts[d], lab))
    overall_rewards = [r[dim] for r in rewards if dim in r]
    kinds = [e.kind for e in trace.events]
    texts = [trace.id, trace.inputs.prompt, trace.termination or "", trace.error or ""]
    for e in trace.events:
        if e.kind == "model":
            texts.append(e.text)
        elif e.kind in ("tool_error", "parse_error", "limit"):
            texts.append(e.message)
    row = {
        "status": "ok",
        "error": trace.error,
        "sample_id": trace.id,
        "mode": trace.inputs.mode,
        "policy": trace.policy,
        "termination": trace.termination,
        "num_turns": trace.num_turns,
        "frames_viewed": trace.frames_viewed,
        "tool_calls": kinds.count("tool_call"),
        "tool_errors": kinds.count("tool_error"),
        "parse_errors": kinds.count("parse_error"),
        "overall": dim,
        "label": None if label is None else str(label),
        "verdict": None if verdict is None else str(verdict),
        "correct": correct,
        "margin": scores.get(f"m.{dim}"),
        "reward": sum(overall_rewards) / len(overall_rewards) if overall_rewards else None,
        "created_at": trace.created_at,
        "dims": json.dumps(trace.inputs.dims),
        "verdicts": json.dumps(trace.verdicts),
        "labels": json.dumps(labels),
    }
    return row, scores, "\n".join(texts).lower()


def describe_error(exc: ValidationError) -> str:
    errs = exc.errors()
    first = errs[0]
    loc = ".".join(str(p) for p in first["loc"])
    more = f" (+{len(errs) - 1} more)" if len(errs) > 1 else ""
    return f"{loc + ': ' if loc else ''}{first['msg']}{more}"


def parse_line(raw: bytes) -> tuple[dict[str, Any], dict[str, float], str]:
    """One JSONL line -> (row, scores, text). Never raises: a bad line becomes an error row."""
    torn = not raw.endswith(b"\n")
    try:
        return summarize(Trace.model_validate_json(raw.rstrip(b"\r\n")))
    except ValidationError as exc:
        why = describe_error(exc)
    except Exception as exc:  # a line that crashes summarising is still only one bad row
        why = f"{type(exc).__name__}: {exc}"
    sample_id = None
    try:
        obj = json.loads(raw)
        if isinstance(obj, dict) and isinstance(obj.get("id"), str):
            sample_id = obj["id"]
    except ValueError:
        pass
    status = "torn" if torn else "invalid"
    error = f"torn last line (the writer may still be running): {why}" if torn else f"invalid trace: {why}"
    return {"status": status, "error": error, "sample_id": sample_id}, {}, error.lower()


def _head_sha(path: Path, upto: int) -> str:
    with path.open("rb") as fh:
        return hashlib.sha1(fh.read(min(upto, _HEAD_BYTES))).hexdigest()


def _iter_lines(path: Path, start: int) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as fh:
        fh.seek(start)
        offset = start
        for raw in fh:
            yield offset, raw
            offset += len(raw)


class TraceIndex:
    """The index of one trace directory (or one file). Thread-safe: every statement runs under one lock."""

    def __init__(self, source: str | Path, cache_dir: str | Path | None = None) -> None:
        src = Path(source).expanduser()
        if not src.exists():
            raise DataError(
                f"{src}: no such trace file or directory (pass a .jsonl file or a folder of them)"
            )
        self.source = src.resolve()
        self.root = self.source if self.source.is_dir() else self.source.parent
        base = Path(cache_dir) if cache_dir else default_cache_dir()
        self.cache_dir = base / hashlib.sha1(str(self.source).encode()).hexdigest()[:16]
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.cache_dir / "index.sqlite"
        self.parsed_lines = 0  # lines parsed by this process (tests check that cached files are not re-read)
        self._lock = threading.RLock()
        self._last_refresh = 0.0
        self.conn = self._open()

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, check_same_thread=False)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key='version'").fetchone()
            if row and row[0] == INDEX_VERSION:
                return conn
        except sqlite3.DatabaseError:
            pass
        conn.close()
        log.info("building a new trace index at %s", self.db_path)
        self.db_path.unlink(missing_ok=True)
        conn = sqlite3.connect(self.db_path, check_same_thread=False)
        conn.executescript(_SCHEMA)
        conn.execute(
            "INSERT INTO meta VALUES ('version', ?), ('source', ?)", (INDEX_VERSION, str(self.source))
        )
        conn.commit()
        return conn

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def trace_files(self) -> list[Path]:
        if self.source.is_file():
            return [self.source]
        out: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            out.extend(Path(dirpath) / f for f in sorted(filenames) if f.endswith(".jsonl") and f[0] != ".")
        return out

    def run_name(self, path: Path) -> str:
        if self.source.is_file():
            return path.stem
        return path.relative_to(self.root).with_suffix("").as_posix()

    def refresh(self, min_interval_s: float = 0.0) -> RefreshStats | None:
        """Bring the index up to date with the files; returns None when skipped because it ran <
        min_interval_s ago (the API calls this on every list request)."""
        with self._lock:
            now = time.monotonic()
            if min_interval_s and now - self._last_refresh < min_interval_s:
                return None
            t0 = time.perf_counter()
            stats = RefreshStats()
            files = self.trace_files()
            stats.files = len(files)
            known = {
                r[1]: r
                for r in self.conn.execute(
                    "SELECT id, path, size, mtime_ns, indexed_bytes, head_sha FROM files"
                )
            }
            for path in files:
                self._refresh_file(path, known.pop(str(path), None), stats)
            for fid, *_ in known.values():
                self._delete_file_rows(fid, 0)
                self.conn.execute("DELETE FROM files WHERE id=?", (fid,))
                stats.removed += 1
            self.conn.commit()
            self._last_refresh = time.monotonic()
            stats.seconds = time.perf_counter() - t0
            if stats.lines:
                log.info(
                    "indexed %d trace lines from %d files in %.2fs", stats.lines, stats.files, stats.seconds
                )
            return stats

    def _refresh_file(self, path: Path, known: tuple[Any, ...] | None, stats: RefreshStats) -> None:
        try:
            st = path.stat()
        except OSError:
            return
        if known is not None:
            fid, _, size, mtime_ns, indexed, head = known
            if size == st.st_size and mtime_ns == st.st_mtime_ns:
                stats.skipped += 1
                return
            if st.st_size >= indexed and _head_sha(path, indexed) == head:
                stats.appended += 1
                self._index_from(path, fid, indexed, st, stats)
                return
            stats.rebuilt += 1
            self._delete_file_rows(fid, 0)
            self.conn.execute("UPDATE files SET indexed_bytes=0, next_line=1 WHERE id=?", (fid,))
            self._index_from(path, fid, 0, st, stats)
            return
        cur = self.conn.execute(
            "INSERT INTO files(path, run, size, mtime_ns, indexed_bytes, next_line, head_sha) "
            "VALUES (?,?,?,?,0,1,'')",
            (str(path), self.run_name(path), st.st_size, st.st_mtime_ns),
        )
        assert cur.lastrowid is not None
        self._index_from(path, cur.lastrowid, 0, st, stats)

    def _delete_file_rows(self, fid: int, from_offset: int) -> None:
        sub = "SELECT id FROM traces WHERE file_id=? AND offset>=?"
        self.conn.execute(f"DELETE FROM scores WHERE trace_id IN ({sub})", (fid, from_offset))
        self.conn.execute(f"DELETE FROM texts WHERE trace_id IN ({sub})", (fid, from_offset))
        self.conn.execute("DELETE FROM traces WHERE file_id=? AND offset>=?", (fid, from_offset))

    def _index_from(self, path: Path, fid: int, start: int, st: os.stat_result, stats: RefreshStats) -> None:
        """Parse lines from byte `start`; rows at or after it (a torn line seen last time) are replaced."""
        self._delete_file_rows(fid, start)
        (line,) = self.conn.execute("SELECT next_line FROM files WHERE id=?", (fid,)).fetchone()
        indexed, next_line = start, line
        rows: list[tuple[Any, ...]] = []
        extras: list[tuple[dict[str, float], str]] = []
        for offset, raw in _iter_lines(path, start):
            if raw.strip():
                row, scores, text = parse_line(raw)
                row.update(file_id=fid, line=line, offset=offset, length=len(raw))
                rows.append(tuple(row.get(c) for c in TRACE_COLUMNS))
                extras.append((scores, text))
                self.parsed_lines += 1
                stats.lines += 1
            line += 1
            if raw.endswith(b"\n"):
                indexed, next_line = offset + len(raw), line
        self._insert(rows, extras)
        self.conn.execute(
            "UPDATE files SET size=?, mtime_ns=?, indexed_bytes=?, next_line=?, head_sha=? WHERE id=?",
            (st.st_size, st.st_mtime_ns, indexed, next_line, _head_sha(path, indexed), fid),
        )

    def _insert(self, rows: list[tuple[Any, ...]], extras: list[tuple[dict[str, float], str]]) -> None:
        if not rows:
            return
        (base,) = self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM traces").fetchone()
        ids = range(base + 1, base + 1 + len(rows))
        marks = ",".join("?" * (len(TRACE_COLUMNS) + 1))
        self.conn.executemany(
            f"INSERT INTO traces(id, {', '.join(TRACE_COLUMNS)}) VALUES ({marks})",
            [(i, *r) for i, r in zip(ids, rows, strict=True)],
        )
        self.conn.executemany(
            "INSERT INTO scores VALUES (?,?,?)",
            [(i, k, v) for i, (sc, _) in zip(ids, extras, strict=True) for k, v in sc.items()],
        )
        self.conn.executemany(
            "INSERT INTO texts VALUES (?,?)", [(i, t) for i, (_, t) in zip(ids, extras, strict=True)]
        )

    # -- reading ---------------------------------------------------------------------------------------------

    def execute(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            self.conn.row_factory = sqlite3.Row
            try:
                return self.conn.execute(sql, params).fetchall()
            finally:
                self.conn.row_factory = None

    def runs(self) -> list[str]:
        return [r["run"] for r in self.execute("SELECT run FROM files ORDER BY run")]

    def locate(self, run: str, line: int) -> Located | None:
        rows = self.execute(
            "SELECT f.path, f.run, t.line, t.offset, t.length, t.status, t.error FROM traces t "
            "JOIN files f ON f.id = t.file_id WHERE f.run=? AND t.line=?",
            (run, line),
        )
        if not rows:
            return None
        r = rows[0]
        return Located(
            Path(r["path"]), r["run"], r["line"], r["offset"], r["length"], r["status"], r["error"]
        )

    def read_raw(self, loc: Located) -> bytes:
        return self.read_at(loc.path, loc.offset, loc.length)

    @staticmethod
    def read_at(path: Path, offset: int, length: int) -> bytes:
        with path.open("rb") as fh:
            fh.seek(offset)
            return fh.read(length)

    def load(self, loc: Located) -> Trace:
        """The full trace at `loc` (raises ValidationError if the line is not a valid trace)."""
        return Trace.model_validate_json(self.read_raw(loc))
