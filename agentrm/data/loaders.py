"""Benchmark loaders: published preference formats -> agentrm `Item`s, with bad rows named by line.

    result = load_items("videogen-rewardbench.csv", video_root="datasets/eval")
    result.items, result.skipped   # skipped: [RowProblem(file, line, problem), ...]

One function per format, and `load_items(path, format="auto")` that picks the format from the columns/keys
of the first record. Containers: `.csv`, `.jsonl` (one object a line) and `.json` (an array of objects); any
format can sit in any container except `agentrm`, whose `videos`/`labels` fields need JSON. Parquet is not
read (no pyarrow in the base install): export to JSONL first.

Formats and the assumptions made (the public sources were read, not downloaded; each row keeps its other
fields in `Item.meta`, plus `meta["source"]` and `meta["line"]`):

- `videogen_rewardbench` — VideoAlign's CSV `path_A, path_B, A_model, B_model, prompt, fps_A, num_frames_A,
  fps_B, num_frames_B, VQ, MQ, TA, Overall`; labels A / B / same -> "1" / "2" / "tie". Dimension mapping
  `VIDEOGEN_DIMS`: VQ, MQ, TA keep their names and **Overall becomes OA** (agentrm's overall dimension).
  Label columns that are absent from the header are simply not loaded; at least one must exist.
- `genai_bench` — TIGER-Lab/GenAI-Bench `video_generation` rows: `prompt, left_video, right_video,
  vote_type` (+ model names etc.). vote_type leftvote / rightvote -> "1" / "2"; tievote **and bothbad_vote
  -> "tie"** (both are human ties; the original vote stays in meta). One dimension, OA. Video fields must be
  local paths (the hub rows hold URLs: download them and point `video_root` at the folder).
- `mj_bench_video` — MJ-Bench-Video as in aiming-lab/MJ-Video `datas/test.json`: `caption, video_0_path,
  video_1_path, overall_preference, category_preference{Alignment, Safety, Fineness, Coherence &
  Consistency, Bias}, discard`, plus per-video fine-grained labels (kept in meta). Preferences "Video 1
  better" / "Video 2 better" / "Same" -> "1" / "2" / "tie"; **"Video 1" is the first video (video_0_path)**
  — checked against the per-video defect labels of the public rows. "Hard to judge" gives no label for that
  dimension; rows with `discard: true` or with no label at all are filtered (counted in
  `LoadResult.filtered`, not errors). Aspect mapping `MJ_DIMS` is an approximation: Alignment -> TA,
  Fineness -> VQ, Coherence & Consistency -> MQ; Safety and Bias keep their names. A simpler variant with
  `caption` (or `prompt`), `chosen`, `rejected` is accepted too: to avoid a position bias in evaluation the
  chosen video is put first or second by a hash of the row id (deterministic), and the label says which.
- `agentrm` — one `Item` per record (`id, mode, prompt, videos, labels, meta`), pairwise or pointwise, any
  dimensions. Pairwise labels may also be written A / B / same / 0.

Ids: an `id` field (or GenAI-Bench's `idx`) when present — a duplicate is a row problem; otherwise a content
hash of the videos and prompt (`vgrb-…`, `genai-…`, `mjv-…`), stable when the file is filtered or
re-ordered, so traces from one file join labels from another. Identical rows get `-2`, `-3`… suffixes.

Videos: relative paths resolve against `video_root`, default the benchmark file's folder.
`check_videos=False` skips the existence check (`agentrm eval` only needs labels, not pixels).

Problems (missing video, unknown label, missing column, bad JSON) are reported as `file:line: problem`; with
`strict=True` the first one raises `DataError`, otherwise the row is skipped and listed in
`LoadResult.skipped`. A header that lacks a required column is always fatal: no row could load.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from agentrm.config import StrictModel
from agentrm.data.rows import Row, read_rows
from agentrm.data.schema import Item
from agentrm.errors import DataError

log = logging.getLogger(__name__)

FORMATS = ("videogen_rewardbench", "genai_bench", "mj_bench_video", "agentrm")
# source column -> agentrm dimension
VIDEOGEN_DIMS = {"VQ": "VQ", "MQ": "MQ", "TA": "TA", "Overall": "OA"}
MJ_DIMS = {
    "Alignment": "TA",
    "Fineness": "VQ",
    "Coherence & Consistency": "MQ",
    "Safety": "Safety",
    "Bias": "Bias",
}
GENAI_VOTES = {"leftvote": "1", "rightvote": "2", "tievote": "tie", "bothbad_vote": "tie"}
MJ_PREFERENCES: dict[str, str | None] = {
    "video 1 better": "1",
    "video 2 better": "2",
    "same": "tie",
    "hard to judge": None,
}
PAIR_LABEL_ALIASES = {"1": "1", "a": "1", "2": "2", "b": "2", "tie": "tie", "same": "tie", "0": "tie"}
_REQUIRED_CSV = {
    "videogen_rewardbench": ("path_A", "path_B", "prompt"),
    "genai_bench": ("left_video", "right_video", "prompt", "vote_type"),
    "mj_bench_video": ("chosen", "rejected"),
}


class RowProblem(StrictModel):
    file: str
    line: int = Field(
        description="1-based line where the row ends (CSV/JSONL) or the record starts (JSON array)."
    )
    problem: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.problem}"


class LoadResult(StrictModel):
    format: str
    items: list[Item]
    skipped: list[RowProblem] = Field(default_factory=list, description="Rows dropped for a problem.")
    filtered: dict[str, int] = Field(
        default_factory=dict, description="Rows dropped on purpose, by reason (e.g. discard, no_label)."
    )


class _RowError(Exception):
    """A problem with one row; becomes a RowProblem (or a DataError under strict)."""


@dataclass
class _Ctx:
    path: Path
    root: Path
    root_given: bool
    check_videos: bool
    filtered: dict[str, int] = field(default_factory=dict)

    def filter(self, reason: str) -> None:
        self.filtered[reason] = self.filtered.get(reason, 0) + 1


Converter = Callable[[Row, int, _Ctx], "tuple[Item, bool] | None"]


def _sniff(keys: set[str]) -> str | None:
    if {"path_A", "path_B"} <= keys:
        return "videogen_rewardbench"
    if {"left_video", "right_video"} <= keys:
        return "genai_bench"
    if {"video_0_path", "video_1_path"} <= keys or {"chosen", "rejected"} <= keys:
        return "mj_bench_video"
    if {"videos", "mode"} <= keys:
        return "agentrm"
    return None


# ---- field helpers ----


def _pair_label(value: Any, where: str, expected: str = "A, B or same") -> str:
    """A / B / same (also 1 / 2 / tie / 0, any case) -> '1' / '2' / 'tie'; anything else is a _RowError."""
    key = str(value).strip().lower() if value is not None else ""
    if key not in PAIR_LABEL_ALIASES:
        raise _RowError(f"unknown label {value!r} in {where} (expected {expected})")
    return PAIR_LABEL_ALIASES[key]


def _need(row: Row, *keys: str) -> None:
    missing = [k for k in keys if k not in row]
    if missing:
        raise _RowError(f"missing column(s) {', '.join(repr(k) for k in missing)}")


def _text(row: Row, key: str) -> str:
    value = row[key]
    if not isinstance(value, str):
        raise _RowError(f"column {key!r} must be text, got {type(value).__name__}")
    return value


def _video(ctx: _Ctx, value: Any, column: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _RowError(f"column {column!r} is empty; it must name a video file or frame folder")
    if "://" in value:
        if ctx.check_videos:
            raise _RowError(
                f"column {column!r} is a URL ({value}): download the videos and pass --video-root"
            )
        return value
    p = Path(value.strip()).expanduser()
    if not p.is_absolute():
        p = ctx.root / p
    if ctx.check_videos and not p.exists():
        base = (
            f"--video-root {ctx.root}"
            if ctx.root_given
            else f"the file's folder {ctx.root} (set --video-root)"
        )
        raise _RowError(f"video not found: {p} (column {column!r}; relative paths resolve against {base})")
    return str(p)


def _number(value: Any) -> Any:
    """CSV cells that are numbers become numbers in meta (fps, num_frames); the rest stay as they are."""
    if not isinstance(value, str):
        return value
    for cast in (int, float):
        try:
            number = cast(value)
        except ValueError:
            continue
        return number if math.isfinite(number) else value  # "nan" / "inf" stay text
    return value


def content_id(prefix: str, *parts: str) -> str:
    """A short stable id from the row's content (videos + prompt)."""
    digest = hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:12]
    return f"{prefix}-{digest}"


def _explicit_id(row: Row, *keys: str) -> str | None:
    for k in keys:
        v = row.get(k)
        if v is not None and str(v).strip() != "":
            return str(v).strip()
    return None


def _item(**kwargs: Any) -> Item:
    try:
        return Item(**kwargs)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise _RowError(f"invalid item{' field ' + where if where else ''}: {err['msg']}") from None


# ---- formats ----


def _videogen_row(row: Row, line: int, ctx: _Ctx) -> tuple[Item, bool]:
    _need(row, "path_A", "path_B", "prompt")
    videos = [_video(ctx, row["path_A"], "path_A"), _video(ctx, row["path_B"], "path_B")]
    labels = {
        dim: _pair_label(row[col], f"column {col!r}") for col, dim in VIDEOGEN_DIMS.items() if col in row
    }
    if not labels:
        raise _RowError(f"no label column; expected some of {', '.join(VIDEOGEN_DIMS)}")
    used = {"id", "path_A", "path_B", "prompt", *VIDEOGEN_DIMS}
    meta = {k: _number(v) for k, v in row.items() if k not in used}
    given = _explicit_id(row, "id")
    sid = given or content_id("vgrb", str(row["path_A"]), str(row["path_B"]), str(row["prompt"]))
    meta.update(source="videogen_rewardbench", line=line)
    item = _item(
        id=sid, mode="pairwise", prompt=_text(row, "prompt"), videos=videos, labels=labels, meta=meta
    )
    return item, given is not None


def _genai_row(row: Row, line: int, ctx: _Ctx) -> tuple[Item, bool]:
    _need(row, "left_video", "right_video", "prompt", "vote_type")
    vote = str(row["vote_type"]).strip().lower()
    if vote not in GENAI_VOTES:
        raise _RowError(f"unknown vote_type {row['vote_type']!r} (expected {', '.join(GENAI_VOTES)})")
    videos = [_video(ctx, row["left_video"], "left_video"), _video(ctx, row["right_video"], "right_video")]
    meta = {k: _number(v) for k, v in row.items() if k not in {"id", "left_video", "right_video", "prompt"}}
    given = _explicit_id(row, "id")
    if given is None and _explicit_id(row, "idx") is not None:
        given = f"genai-{_explicit_id(row, 'idx')}"
    sid = given or content_id("genai", str(row["left_video"]), str(row["right_video"]), str(row["prompt"]))
    meta.update(source="genai_bench", line=line)
    item = _item(
        id=sid,
        mode="pairwise",
        prompt=_text(row, "prompt"),
        videos=videos,
        labels={"OA": GENAI_VOTES[vote]},
        meta=meta,
    )
    return item, given is not None


def _mj_pref(value: Any, where: str) -> str | None:
    key = str(value).strip().lower()
    if key not in MJ_PREFERENCES:
        raise _RowError(
            f"unknown preference {value!r} in {where} (expected Video 1 better, Video 2 better, Same "
            "or Hard to judge)"
        )
    return MJ_PREFERENCES[key]


def _mj_row(row: Row, line: int, ctx: _Ctx) -> tuple[Item, bool] | None:
    if "video_0_path" not in row and "video_1_path" not in row:
        return _mj_chosen_rejected_row(row, line, ctx)
    _need(row, "caption", "video_0_path", "video_1_path", "overall_preference")
    if row.get("discard") is True:
        ctx.filter("discard")
        return None
    videos = [
        _video(ctx, row["video_0_path"], "video_0_path"),
        _video(ctx, row["video_1_path"], "video_1_path"),
    ]
    raw: dict[str, Any] = {"OA": row["overall_preference"]}
    cats = row.get("category_preference") or {}
    if not isinstance(cats, dict):
        raise _RowError("category_preference must be an object of aspect -> preference")
    for aspect, value in cats.items():
        if aspect not in MJ_DIMS:
            raise _RowError(f"unknown aspect {aspect!r} in category_preference (known: {', '.join(MJ_DIMS)})")
        raw[MJ_DIMS[aspect]] = value
    labels = {}
    for dim, value in raw.items():
        label = _mj_pref(value, "overall_preference" if dim == "OA" else f"category_preference ({dim})")
        if label is not None:
            labels[dim] = label
    if not labels:
        ctx.filter("no_label")
        return None
    meta = {k: v for k, v in row.items() if k not in {"id", "caption", "video_0_path", "video_1_path"}}
    given = _explicit_id(row, "id")
    sid = given or content_id("mjv", str(row["video_0_path"]), str(row["video_1_path"]), str(row["caption"]))
    meta.update(source="mj_bench_video", line=line)
    item = _item(
        id=sid, mode="pairwise", prompt=_text(row, "caption"), videos=videos, labels=labels, meta=meta
    )
    return item, given is not None


def _mj_chosen_rejected_row(row: Row, line: int, ctx: _Ctx) -> tuple[Item, bool]:
    _need(row, "chosen", "rejected")
    prompt_key = "caption" if "caption" in row else "prompt"
    _need(row, prompt_key)
    chosen, rejected = _video(ctx, row["chosen"], "chosen"), _video(ctx, row["rejected"], "rejected")
    given = _explicit_id(row, "id")
    sid = given or content_id("mjv", str(row["chosen"]), str(row["rejected"]), str(row[prompt_key]))
    # The hash decides which side the chosen video is on, so "always answer 1" scores 50%, not 100%.
    first = int(hashlib.sha1(sid.encode()).hexdigest(), 16) % 2 == 0
    videos, label = ([chosen, rejected], "1") if first else ([rejected, chosen], "2")
    meta = {k: _number(v) for k, v in row.items() if k not in {"id", prompt_key, "chosen", "rejected"}}
    meta.update(source="mj_bench_video", line=line, chosen_video=1 if first else 2)
    item = _item(
        id=sid, mode="pairwise", prompt=_text(row, prompt_key), videos=videos, labels={"OA": label}, meta=meta
    )
    return item, given is not None


def _agentrm_row(row: Row, line: int, ctx: _Ctx) -> tuple[Item, bool]:
    _need(row, "id", "mode", "prompt", "videos")
    data = dict(row)
    if not isinstance(data["videos"], list):
        raise _RowError("column 'videos' must be a list of paths")
    data["videos"] = [_video(ctx, v, f"videos[{i}]") for i, v in enumerate(data["videos"])]
    labels = data.get("labels") or {}
    if not isinstance(labels, dict):
        raise _RowError("column 'labels' must be an object of dimension -> label")
    if data["mode"] == "pairwise":
        labels = {
            d: _pair_label(v, f"labels.{d}", "1, 2, tie (or A, B, same)") for d, v in labels.items()
        }
    data["labels"] = labels
    data["meta"] = {**(data.get("meta") or {}), "source": "agentrm", "line": line}
    data["id"] = str(data["id"])
    return _item(**data), True


_CONVERTERS: dict[str, Converter] = {
    "videogen_rewardbench": _videogen_row,
    "genai_bench": _genai_row,
    "mj_bench_video": _mj_row,
    "agentrm": _agentrm_row,
}


# ---- entry points ----


def detect_format(path: str | Path) -> str:
    """The format of a benchmark file, from its first record's columns."""
    p = Path(path)
    header, rows = read_rows(p)
    return _detect(p, header, rows)


def _detect(path: Path, header: list[str] | None, rows: list[tuple[int, Row | str]]) -> str:
    keys = (
        set(header) if header is not None else next((set(r) for _, r in rows if isinstance(r, dict)), set())
    )
    fmt = _sniff(keys)
    if fmt is None:
        shown = ", ".join(sorted(keys)[:12]) or "none"
        raise DataError(
            f"{path}: cannot tell the benchmark format from the columns ({shown}); pass format= one of "
            f"{', '.join(FORMATS)} (videogen_rewardbench needs path_A/path_B, genai_bench "
            "left_video/right_video, mj_bench_video video_0_path/video_1_path or chosen/rejected, "
            "agentrm mode/videos)"
        )
    return fmt


def load_items(
    path: str | Path,
    format: str = "auto",
    video_root: str | Path | None = None,
    strict: bool = False,
    check_videos: bool = True,
) -> LoadResult:
    """Load a benchmark file as Items (see the module docstring for the formats and for bad rows)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: benchmark file not found")
    if format != "auto" and format not in FORMATS:
        raise DataError(f"unknown benchmark format {format!r}; use auto or one of {', '.join(FORMATS)}")
    header, rows = read_rows(p)
    fmt = _detect(p, header, rows) if format == "auto" else format
    if header is not None:
        _check_header(p, fmt, header)
    root = Path(video_root).expanduser() if video_root is not None else p.parent
    ctx = _Ctx(path=p, root=root, root_given=video_root is not None, check_videos=check_videos)
    items, skipped = _convert(p, fmt, rows, ctx, strict)
    if skipped:
        log.warning("%s: skipped %d bad row(s), first: %s", p, len(skipped), skipped[0])
    if ctx.filtered:
        log.info("%s: filtered rows %s", p, ctx.filtered)
    return LoadResult(format=fmt, items=items, skipped=skipped, filtered=ctx.filtered)


def _check_header(path: Path, fmt: str, header: list[str]) -> None:
    if fmt == "agentrm":
        raise DataError(
            f"{path}: the agentrm format needs JSON (videos and labels are lists/objects); use .jsonl"
        )
    if fmt == "mj_bench_video" and "chosen" not in header:
        raise DataError(
            f"{path}: MJ-Bench-Video with video_0_path/video_1_path needs JSON (nested preferences)"
        )
    missing = [c for c in _REQUIRED_CSV[fmt] if c not in header]
    if fmt == "videogen_rewardbench" and not any(c in header for c in VIDEOGEN_DIMS):
        missing.append(" or ".join(VIDEOGEN_DIMS))
    if fmt == "mj_bench_video" and not {"caption", "prompt"} & set(header):
        missing.append("caption or prompt")
    if missing:
        raise DataError(f"{path}:1: the header lacks column(s) {', '.join(missing)} needed by format {fmt}")


def _convert(
    path: Path, fmt: str, rows: list[tuple[int, Row | str]], ctx: _Ctx, strict: bool
) -> tuple[list[Item], list[RowProblem]]:
    convert = _CONVERTERS[fmt]
    items: list[Item] = []
    skipped: list[RowProblem] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        try:
            if isinstance(row, str):
                raise _RowError(row)
            out = convert(row, line, ctx)
            if out is None:
                continue
            item, explicit = out
            if item.id in seen:
                if explicit:
                    raise _RowError(f"duplicate id {item.id!r} (first at line {seen[item.id]})")
                n = 2
                while f"{item.id}-{n}" in seen:
                    n += 1
                item = item.model_copy(update={"id": f"{item.id}-{n}"})
            seen[item.id] = line
            items.append(item)
        except _RowError as exc:
            problem = RowProblem(file=str(path), line=line, problem=str(exc))
            if strict:
                raise DataError(
                    f"{problem} (strict mode: fix the row, or drop --strict to skip bad rows)"
                ) from None
            skipped.append(problem)
    return items, skipped


def load_videogen_rewardbench(
    path: str | Path, video_root: str | Path | None = None, strict: bool = False, check_videos: bool = True
) -> LoadResult:
    """VideoAlign's VideoGen-RewardBench CSV (Overall -> OA)."""
    return load_items(path, "videogen_rewardbench", video_root, strict, check_videos)


def load_genai_bench(
    path: str | Path, video_root: str | Path | None = None, strict: bool = False, check_videos: bool = True
) -> LoadResult:
    """GenAI-Bench video_generation rows (vote_type -> OA)."""
    return load_items(path, "genai_bench", video_root, strict, check_videos)


def load_mj_bench_video(
    path: str | Path, video_root: str | Path | None = None, strict: bool = False, check_videos: bool = True
) -> LoadResult:
    """MJ-Bench-Video JSON (video_0_path/video_1_path with preferences, or caption/chosen/rejected)."""
    return load_items(path, "mj_bench_video", video_root, strict, check_videos)


def load_agentrm_jsonl(
    path: str | Path, video_root: str | Path | None = None, strict: bool = False, check_videos: bool = True
) -> LoadResult:
    """agentrm's own JSONL: one Item per line, pairwise or pointwise."""
    return load_items(path, "agentrm", video_root, strict, check_videos)
