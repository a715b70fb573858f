"""The default backend: PyAV with a packet index. Exact on every codec we tested, and the least memory.

How a request is served: each wanted frame has a start keyframe (from the index). Frames are grouped by start
keyframe; each group is served by one seek to its keyframe and one decode pass forward that stops as soon as
the group's frames are out. Decoded frames are matched to requests by their pts, never by counting, so a
decoder that drops or adds a frame cannot shift the answer: a wanted frame that never comes out is an error. A
pass that is still live at the next group's keyframe goes on without seeking (also across calls, so reading
forward through a video never seeks).

GOPs are independent units of work, so a request spanning many of them (e.g. 32 frames spread over an hour) is
split into contiguous runs of groups decoded in parallel by up to PARALLEL_LANES decoders (extra decoders are
closed after the request, so an idle source holds one). Only wanted frames are converted to RGB, straight at
their target size (one swscale call), so full-resolution RGB frames are never held.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from agentrm.errors import VideoDecodeError
from agentrm.video.base import FrameSource, VideoMeta, call_with_timeout, check_deadline
from agentrm.video.cache import FrameCache
from agentrm.video.index import PacketIndex, file_fingerprint, load_or_build_index

log = logging.getLogger(__name__)

REORDER_SLACK = 64  # packets to feed past the last wanted one before declaring a frame missing
# One thread per decoder. Measured here (2 cores): FFmpeg's frame threads made H.264 decoding 1.2-2.8x slower
# (640x360 to 1080p), and short passes after a seek gain least from them. Parallelism comes from decoding
# several GOPs (lanes) or videos at once instead.
DECODER_THREADS = 1
PARALLEL_LANES = min(4, os.cpu_count() or 1)
MIN_LANE_WORK = 400  # frames to decode per extra lane before parallel decoding pays for opening a decoder
NO_PTS = -(2**63)


def meta_from_index(path: str, index: PacketIndex, backend: str) -> VideoMeta:
    if index.num_frames == 0:
        raise VideoDecodeError(path, "has zero decodable frames")
    return VideoMeta(
        path=path,
        num_frames=index.num_frames,
        fps=index.fps,
        duration_s=index.duration_s,
        width=index.width,
        height=index.height,
        backend=backend,
        codec=index.codec,
        vfr=index.vfr,
    )


def open_index(path: str, cache_dir: Path | None, timeout_s: float) -> tuple[PacketIndex, bool, Hashable]:
    """Load or build the packet index of `path` under the decode timeout; also returns its fingerprint."""
    fingerprint = file_fingerprint(path)
    deadline = time.monotonic() + timeout_s
    index, cached = call_with_timeout(
        lambda: load_or_build_index(path, cache_dir, deadline, timeout_s), timeout_s, path, "indexing"
    )
    return index, cached, fingerprint


def _open_container(path: str) -> Any:
    import av

    try:
        return av.open(path)
    except FileNotFoundError:
        raise VideoDecodeError(path, "disappeared after it was indexed") from None
    except av.FFmpegError as exc:
        raise VideoDecodeError(path, f"cannot be reopened ({exc})") from None


class _SeekMismatch(Exception):
    """After a seek, the packets read do not line up with the index (the keyframe was not where expected)."""


class _Lane:
    """One open decoder and the state of its live decode pass."""

    def __init__(self, path: str, index: PacketIndex) -> None:
        self.path, self.index = path, index
        self.container = _open_container(path)
        self.stream: Any = self.container.streams[index.stream_index]
        self.stream.codec_context.thread_count = DECODER_THREADS
        self.packets: Iterator[Any] | None = None
        self.live_start = -1  # decode position of the keyframe the live pass started at (-1: no live pass)
        self.live_pos = -1  # decode position of the last packet fed in the live pass
        self.skip_until = 0  # after a seek: drop packets before this decode position
        self.last_out = NO_PTS  # largest pts the live pass has output
        self.at_keyframe = False
        self.prev_pos = -1  # decode position of the last packet read
        self.seek_reliable = True
        self.decoded = self.seeks = 0

    def close(self) -> None:
        self.container.close()

    def serve(
        self,
        groups: list[tuple[int, list[int]]],
        need: dict[int, int],
        size: tuple[int, int],
        deadline: float,
        timeout_s: float,
    ) -> dict[int, np.ndarray]:
        """Decode the frames of `groups` ([(start keyframe, frame indices)], in decode order); `need` maps the
        pts of frames not yet out to their index and is consumed."""
        idx = self.index
        out: dict[int, np.ndarray] = {}
        for start, frames in groups:
            group = {int(idx.frame_pts[i]) for i in frames} & need.keys()
            if not group:
                continue  # already served by an earlier pass
            last = max(int(idx.frame_dec[i]) for i in frames)
            # Go on with the live pass if it started at or before this keyframe, has not fed past it by a gap,
            # and has not shown these frames yet (decoders show frames in pts order).
            live = 0 <= self.live_start <= start <= self.live_pos + 1 and min(group) > self.last_out
            try:
                if not live:
                    self.seek(start)
                missing = self.run_pass(group, need, out, last, size, deadline, timeout_s)
                if missing and live:  # the live pass broke an assumption: retry once from the keyframe
                    self.seek(start)
                    missing = self.run_pass(group, need, out, last, size, deadline, timeout_s)
            except _SeekMismatch:
                missing = self.serve_from_file_start(group, need, out, start, last, size, deadline, timeout_s)
            if missing:
                self.live_start = -1
                raise VideoDecodeError(
                    self.path, f"frame(s) {missing[:10]} were not produced by the decoder (damaged stream?)"
                )
        return out

    def serve_from_file_start(
        self,
        group: set[int],
        need: dict[int, int],
        out: dict[int, np.ndarray],
        start: int,
        last: int,
        size: tuple[int, int],
        deadline: float,
        timeout_s: float,
    ) -> list[int]:
        """After a seek, this demuxer's packets did not line up with the index (MPEG-PS re-times packets after
        a seek): from now on read from the start of the file, exactly as when indexing."""
        if self.seek_reliable:
            log.warning("%s: seeking is unreliable in this file; reading from its start instead", self.path)
        self.seek_reliable = False
        self.seek(start)
        try:
            return self.run_pass(group, need, out, last, size, deadline, timeout_s)
        except _SeekMismatch:
            raise VideoDecodeError(self.path, f"its packets no longer match the index at {start}") from None

    def seek(self, start: int) -> None:
        """Position the demuxer so the next packet fed is the keyframe at decode position `start`.

        Demuxers differ in what a seek timestamp means (MP4 and MKV land exactly on the keyframe's pts, MPEG-TS
        needs its dts, MPEG-PS lands early), so each landing is checked against the index: too early is fine
        (packets before the keyframe are skipped without decoding), too late tries the next target, and if all
        fail the file is read from its start.
        """
        for target in self.index.seek_targets(start) if self.seek_reliable else []:
            self.container.seek(target, stream=self.stream, backward=True, any_frame=False)
            self.seeks += 1
            packets = self.container.demux(self.stream)
            first = next((p for p in packets if p.size), None)
            landed = self.index.dec_of(first.pts) if first is not None else -1
            if 0 <= landed <= start:
                self.start_pass(itertools.chain([first], packets), start, landed - 1)
                return
        log.debug("%s: reading from the start to reach keyframe %d", self.path, start)
        self.container.close()
        self.container = _open_container(self.path)
        self.stream = self.container.streams[self.index.stream_index]
        self.stream.codec_context.thread_count = DECODER_THREADS
        self.start_pass(self.container.demux(self.stream), start, -1)

    def start_pass(self, packets: Iterator[Any], start: int, before: int) -> None:
        """Begin a pass at keyframe `start`; `before` is the decode position of the packet before `packets`."""
        self.packets, self.skip_until, self.prev_pos = packets, start, before
        self.live_start, self.live_pos, self.last_out = start, start - 1, NO_PTS
        self.at_keyframe = False  # becomes True once the keyframe itself has been fed

    def run_pass(
        self,
        group: set[int],
        need: dict[int, int],
        out: dict[int, np.ndarray],
        last: int,
        size: tuple[int, int],
        deadline: float,
        timeout_s: float,
    ) -> list[int]:
        """Feed packets of the live pass until every frame of `group` (by pts) is out, collecting any wanted
        frame on the way. Returns the indices of group frames that never came out."""
        assert self.packets is not None
        codec, dec_of = self.stream.codec_context, self.index.dec_of
        for packet in self.packets:
            if not packet.size:  # end of stream: drain the decoder
                break
            pos = dec_of(packet.pts)
            if pos < 0 <= self.prev_pos:  # pts lost by the demuxer: demux order is decode order
                pos = self.prev_pos + 1
            self.prev_pos = pos
            if not self.at_keyframe:
                if pos < self.skip_until:
                    continue  # between where the seek landed and our keyframe
                if pos != self.skip_until or not packet.is_keyframe:
                    self.live_start = -1  # never start decoding anywhere but at the keyframe
                    raise _SeekMismatch
                self.at_keyframe = True
            self.collect(codec.decode(packet), need, out, size)
            self.live_pos = max(self.live_pos, pos)
            if not group & need.keys():
                return []
            if pos > last + REORDER_SLACK:
                return sorted(need[p] for p in group & need.keys())
            check_deadline(deadline, self.path, "decoding", timeout_s)
        self.collect(codec.decode(None), need, out, size)
        self.live_start = -1  # drained: the next pass must seek
        return sorted(need[p] for p in group & need.keys())

    def collect(
        self, frames: list[Any], need: dict[int, int], out: dict[int, np.ndarray], size: tuple[int, int]
    ) -> None:
        """Convert the wanted ones among freshly decoded `frames` straight to RGB at `size`; drop the rest."""
        h, w = size
        for frame in frames:
            self.decoded += 1
            if frame.pts is None:
                continue
            self.last_out = max(self.last_out, frame.pts)
            i = need.pop(frame.pts, None)
            if i is None:
                continue
            if frame.is_corrupt:
                raise VideoDecodeError(self.path, f"frame {i} is damaged (the decoder reported errors in it)")
            if (frame.height, frame.width) == (h, w):
                out[i] = frame.to_ndarray(format="rgb24")
            else:
                out[i] = frame.to_ndarray(format="rgb24", width=w, height=h, interpolation="AREA")


def split_work(
    groups: list[tuple[int, list[int]]], index: PacketIndex, lanes: int
) -> list[list[tuple[int, list[int]]]]:
    """Cut the groups (in decode order) into at most `lanes` contiguous runs of similar decode work."""
    work = [max(int(index.frame_dec[i]) for i in frames) - start + 1 for start, frames in groups]
    total = sum(work)
    n = max(1, min(lanes, len(groups), total // MIN_LANE_WORK))
    runs: list[list[tuple[int, list[int]]]] = [[]]
    done = 0
    for g, w in zip(groups, work, strict=True):
        if runs[-1] and done >= total * len(runs) / n:
            runs.append([])
        runs[-1].append(g)
        done += w
    return runs


class PyAVSource(FrameSource):
    backend = "pyav"

    def __init__(
        self,
        path: str,
        *,
        cache_dir: Path | None = None,
        frame_cache: FrameCache | None = None,
        timeout_s: float = 60.0,
        lanes: int = PARALLEL_LANES,
    ) -> None:
        index, self.index_from_cache, fingerprint = open_index(path, cache_dir, timeout_s)
        self.index = index
        super().__init__(meta_from_index(path, index, self.backend), index.times, fingerprint, frame_cache, timeout_s)
        self.lanes = max(1, lanes)
        self._lane: _Lane | None = None  # the decoder kept open between calls

    @property
    def is_open(self) -> bool:
        return self._lane is not None

    def _release(self) -> None:
        lane, self._lane = self._lane, None
        if lane is not None:
            lane.close()

    def _abandon(self) -> None:
        self._lane = None  # its worker may still be using it: never close it under its feet

    def _decode(self, indices: list[int], size: tuple[int, int], deadline: float) -> dict[int, np.ndarray]:
        import av

        idx = self.index
        by_start: dict[int, list[int]] = {}
        for i in indices:
            by_start.setdefault(int(idx.frame_start[i]), []).append(i)
        runs = split_work(sorted(by_start.items()), idx, self.lanes)
        if self._lane is None:
            self._lane = _Lane(self.path, idx)
            self._opened()
        lanes = [self._lane]
        out: dict[int, np.ndarray] = {}
        try:
            for _ in runs[1:]:
                lanes.append(_Lane(self.path, idx))
                self.stats.decoder_opens += 1
            results = self._run_lanes(lanes, runs, size, deadline)
        except av.FFmpegError as exc:
            self._release()
            raise VideoDecodeError(self.path, f"decoding frames {indices[:10]} failed ({exc}); damaged file?") from None
        finally:
            for lane in lanes:
                self.stats.frames_decoded += lane.decoded
                self.stats.seeks += lane.seeks
                lane.decoded = lane.seeks = 0
            for lane in lanes[1:]:
                lane.close()
        for part in results:
            out.update(part)
        return out

    def _run_lanes(
        self,
        lanes: list[_Lane],
        runs: list[list[tuple[int, list[int]]]],
        size: tuple[int, int],
        deadline: float,
    ) -> list[dict[int, np.ndarray]]:
        """Serve run k with lane k; lane 0 in this thread, the others in helper threads (PyAV decodes without
        holding the GIL)."""
        idx = self.index
        needs = [{int(idx.frame_pts[i]): i for _, frames in run for i in frames} for run in runs]
        results: list[dict[int, np.ndarray]] = [{} for _ in runs]
        errors: list[BaseException] = []

        def serve(k: int) -> None:
            try:
                results[k] = lanes[k].serve(runs[k], needs[k], size, deadline, self.timeout_s)
            except BaseException as exc:
                errors.append(exc)

        helpers = [threading.Thread(target=serve, args=(k,), daemon=True) for k in range(1, len(runs))]
        for t in helpers:
            t.start()
        serve(0)
        for t in helpers:
            t.join()
        if errors:
            raise errors[0]
        return results
