"""The viewer's HTTP app: a JSON API over the trace index, frame thumbnails, and the static front end.

    app = create_app("out/traces")          # indexes on creation; see agentrm.viewer.server for launching it

Safety: the app serves only (1) its own static files, (2) files under the trace directory (`/files/...`) and
(3) frames of the videos a trace references, looked up from the trace itself, never from a path in the
request. A file path from a request is refused when it is absolute, has a `..` or hidden segment or a
backslash, or resolves (through symlinks) outside its root: 403; a path that does not exist: 404.
`allowed_hosts` rejects requests whose Host header is not the bound local name, which stops DNS-rebinding
pages from reading traces through the browser.

fastapi is imported by this module only; `agentrm.viewer` itself imports nothing heavy.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import ValidationError

from agentrm.errors import FrameIndexError, VideoError, VideoNotFoundError
from agentrm.trace import FrameRef, Trace
from agentrm.viewer import query
from agentrm.viewer.index import TraceIndex, describe_error, summarize
from agentrm.viewer.thumbs import SIZES, ThumbCache

log = logging.getLogger(__name__)

STATIC_DIR = Path(str(resources.files("agentrm.viewer").joinpath("static")))
_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
}
Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def safe_file(root: Path, rel: str) -> Path:
    """`root/rel` if it is a regular file inside root, else HTTPException 403 (escape attempt) or 404."""
    if not rel or "\x00" in rel:
        raise HTTPException(404, "not found")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or "\\" in rel or ":" in pure.parts[0]:
        raise HTTPException(403, "absolute paths and backslashes are not served")
    if any(p == ".." for p in pure.parts):
        raise HTTPException(403, "paths with '..' are not served")
    if any(p.startswith(".") for p in pure.parts):
        raise HTTPException(404, "not found")
    real_root = root.resolve()
    try:
        real = (real_root / pure).resolve(strict=True)
    except (OSError, RuntimeError):
        raise HTTPException(404, "not found") from None
    if not real.is_relative_to(real_root):
        raise HTTPException(403, "path leads outside the served folder")
    if not real.is_file():
        raise HTTPException(404, "not found")
    return real


def _file(path: Path, cache: str = "no-cache") -> FileResponse:
    media = _TYPES.get(path.suffix.lower())
    return FileResponse(path, media_type=media, headers={"Cache-Control": cache})


class HostCheck:
    """Reject requests whose Host header is not one of `allowed` (port ignored): DNS-rebinding protection."""

    def __init__(self, app: ASGIApp, allowed: list[str]) -> None:
        self.app, self.allowed = app, {h.lower() for h in allowed}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
            name = host[1 : host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
            if name not in self.allowed:
                await JSONResponse({"detail": f"host {host!r} not allowed"}, status_code=400)(
                    scope, receive, send
                )
                return
        await self.app(scope, receive, send)


def resolve_video(path: str, trace_file: Path, root: Path) -> Path | None:
    """A trace's video path: absolute as is; relative against the trace file's folder, the trace root, then
    cwd."""
    p = Path(path).expanduser()
    candidates = [p] if p.is_absolute() else [trace_file.parent / p, root / p, Path.cwd() / p]
    return next((c for c in candidates if c.is_file()), None)


def video_paths(trace: Trace) -> dict[int, str]:
    out = {i: p for i, p in enumerate(trace.inputs.videos, 1)}
    out.update({v.video: v.path for v in trace.videos})
    return out


def list_filters(
    run: str | None = None,
    wrong: bool = False,
    label: str | None = None,
    margin_min: float | None = None,
    margin_max: float | None = None,
    turns_min: int | None = None,
    turns_max: int | None = None,
    tool_errors: bool = False,
    termination: str | None = None,
    q: str | None = None,
) -> query.TraceFilter:
    """The sample-list filters, as query parameters (shared by /api/traces and /api/neighbors)."""
    return query.TraceFilter(
        run, wrong, label, margin_min, margin_max, turns_min, turns_max, tool_errors, termination, q
    )


Filters = Annotated[query.TraceFilter, Depends(list_filters)]


class Viewer:
    """What the routes share: the index, the thumbnail cache and a small cache of parsed traces."""

    def __init__(self, index: TraceIndex, thumbs: ThumbCache, refresh_interval_s: float) -> None:
        self.index, self.thumbs, self.refresh_interval_s = index, thumbs, refresh_interval_s
        self._parse = functools.lru_cache(maxsize=64)(self._parse_uncached)

    def fresh(self) -> None:
        """Pick up appended lines and new files (at most once per refresh_interval_s)."""
        self.index.refresh(min_interval_s=self.refresh_interval_s)

    def _parse_uncached(self, path: str, offset: int, length: int, mtime_ns: int) -> Trace:
        return Trace.model_validate_json(self.index.read_at(Path(path), offset, length))

    def load(self, run: str, line: int) -> tuple[Trace, Path]:
        """The valid trace at run:line and its file, or HTTP 404/409."""
        loc = self.index.locate(run, line)
        if loc is None or loc.status != "ok":
            raise HTTPException(404, f"no valid trace at {run}:{line}")
        try:
            trace = self._parse(str(loc.path), loc.offset, loc.length, loc.path.stat().st_mtime_ns)
        except (OSError, ValidationError) as exc:
            raise HTTPException(409, f"{run}:{line} changed on disk; reload the page ({exc})") from None
        return trace, loc.path


def get_viewer(request: Request) -> Viewer:
    viewer: Viewer = request.app.state.viewer
    return viewer


V = Annotated[Viewer, Depends(get_viewer)]
router = APIRouter()


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    return _file(STATIC_DIR / "index.html")


@router.get("/static/{rel:path}", include_in_schema=False)
def static(rel: str) -> FileResponse:
    return _file(safe_file(STATIC_DIR, rel))


@router.get("/files/{rel:path}")
def files(v: V, rel: str) -> FileResponse:
    """Any file under the trace directory (e.g. a run's raw JSONL)."""
    return _file(safe_file(v.index.root, rel))


@router.get("/api/info")
def info(v: V) -> dict[str, Any]:
    v.fresh()
    ix = v.index
    return {"source": str(ix.source), "root": str(ix.root), "runs": ix.runs(), "cache": str(ix.cache_dir)}


@router.get("/api/refresh")
def refresh(v: V) -> dict[str, Any]:
    stats = v.index.refresh()
    return dict(vars(stats)) if stats else {}


@router.get("/api/runs")
def runs(v: V) -> list[dict[str, Any]]:
    v.fresh()
    return query.run_summaries(v.index)


@router.get("/api/facets")
def facets(v: V, run: str | None = None) -> dict[str, Any]:
    v.fresh()
    return query.facets(v.index, run)


@router.get("/api/traces")
def traces(
    v: V,
    flt: Filters,
    sort: str = "line",
    desc: bool = False,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> dict[str, Any]:
    """One page of the filtered, sorted sample list (summary rows only; full traces via /api/trace)."""
    v.fresh()
    try:
        return query.list_traces(v.index, flt, sort, desc, limit, offset)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None


@router.get("/api/neighbors")
def neighbors(
    v: V, at_run: str, at_line: int, flt: Filters, sort: str = "line", desc: bool = False
) -> dict[str, Any]:
    """Where the trace at_run:at_line sits in the list the same filters and sort give."""
    try:
        return query.neighbors(v.index, flt, sort, desc, at_run, at_line)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None


@router.get("/api/trace")
def trace(v: V, run: str, line: int) -> dict[str, Any]:
    """The full trace at run:line with its derived summary and video availability; for a line that is not a
    valid trace, the error and the start of the raw line."""
    v.fresh()
    loc = v.index.locate(run, line)
    if loc is None:
        raise HTTPException(404, f"no trace line {run}:{line}")
    out: dict[str, Any] = {"run": run, "line": line, "status": loc.status, "error": loc.error}
    if loc.status != "ok":
        out["raw"] = v.index.read_raw(loc)[:4000].decode("utf-8", "replace")
        return out
    tr, path = v.load(run, line)
    row, scores, _ = summarize(tr)
    out["summary"] = {k: row[k] for k in ("overall", "label", "verdict", "correct", "margin", "reward")}
    out["summary"]["scores"] = scores
    infos = {i.video: i.model_dump() for i in tr.videos}
    out["videos"] = [
        {**infos.get(n, {"video": n, "path": p}), "found": resolve_video(p, path, v.index.root) is not None}
        for n, p in sorted(video_paths(tr).items())
    ]
    out["trace"] = tr.model_dump(mode="json")
    return out


@router.get("/api/frame")
def frame(
    v: V, run: str, line: int, video: int, index_: int = Query(..., alias="index", ge=0), size: str = "thumb"
) -> Response:
    """A JPEG of frame `index` of video `video` (1-based) of the trace at run:line."""
    if size not in SIZES:
        raise HTTPException(400, f"size must be one of {sorted(SIZES)}")
    tr, path = v.load(run, line)
    rel = video_paths(tr).get(video)
    if rel is None:
        raise HTTPException(404, f"{run}:{line} has no video {video}")
    vpath = resolve_video(rel, path, v.index.root)
    if vpath is None:
        where = "next to the trace file, in the trace folder or in the working directory"
        raise HTTPException(404, f"video {rel} of {run}:{line} not found {where}")
    # thumbnails of the other frames this trace shows from the same video are decoded in the same pass
    also = {f.index for f in frames_of(tr) if f.video == video} if size == "thumb" else set()
    try:
        jpg = v.thumbs.get(vpath, index_, size, also)
    except (VideoNotFoundError, FrameIndexError) as exc:
        raise HTTPException(404, str(exc)) from None
    except VideoError as exc:
        raise HTTPException(422, str(exc)) from None
    return _file(jpg, cache="max-age=3600")


@router.get("/api/compare")
def compare(v: V, a: str, b: str) -> dict[str, Any]:
    v.fresh()
    try:
        return query.compare_runs(v.index, a, b)
    except KeyError as exc:
        raise HTTPException(404, f"no run named {exc.args[0]!r}") from None


def frames_of(trace: Trace) -> list[FrameRef]:
    """Every frame a trace shows: tool results and window groups (the overview included)."""
    out: list[FrameRef] = []
    for e in trace.events:
        if e.kind == "tool_result":
            out.extend(e.frames)
        elif e.kind == "window":
            out.extend(f for g in e.state.groups for f in g.frames)
    return out


def create_app(
    source: str | Path,
    *,
    cache_dir: str | Path | None = None,
    allowed_hosts: list[str] | None = None,
    refresh_interval_s: float = 1.0,
) -> FastAPI:
    """Index `source` (a .jsonl file or a folder of them) and return the app serving it."""
    index = TraceIndex(source, cache_dir)
    index.refresh()
    app = FastAPI(title="agentrm viewer", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.viewer = Viewer(index, ThumbCache(index.cache_dir), refresh_interval_s)
    app.state.index, app.state.thumbs = index, app.state.viewer.thumbs
    app.include_router(router)
    if allowed_hosts:
        app.add_middleware(HostCheck, allowed=allowed_hosts)

    @app.exception_handler(ValidationError)
    async def bad_trace(_: Any, exc: ValidationError) -> JSONResponse:
        return JSONResponse({"detail": describe_error(exc)}, status_code=409)

    return app
