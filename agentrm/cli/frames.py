"""`agentrm frames VIDEO`: print what agentrm sees in a video and write chosen frames as PNG.

For debugging inputs: is the frame count what you expect, which frame is at 12.5 s, does frame 300 look right?

    agentrm frames clip.mp4                               # metadata only
    agentrm frames clip.mp4 --at 0,100,200:300:25 --out /tmp/f   # frames 0, 100, 200, 225, 250, 275
    agentrm frames clip.mp4 --times 0,12.5 --max-pixels 200704   # frames shown at those times, resized

Positions are 0-based frame numbers in presentation order (what every agentrm tool and trace uses).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from agentrm.errors import ConfigError


def _positions(text: str) -> list[int]:
    """'0,5,10:20:5' -> [0, 5, 10, 15]; 'a:b' ranges exclude b, like Python."""
    out: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            if ":" in part:
                bounds = [int(x) for x in part.split(":")]
                if len(bounds) not in (2, 3) or (len(bounds) == 3 and bounds[2] <= 0):
                    raise ValueError
                out.extend(range(*bounds))
            else:
                out.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{part!r} is not a frame number or a start:stop[:step] range"
            ) from None
    if not out:
        raise argparse.ArgumentTypeError("no positions given")
    return out


def _seconds(text: str) -> list[float]:
    try:
        out = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of seconds") from None
    if not out:
        raise argparse.ArgumentTypeError("no times given")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="video file or directory of frame images")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--at", type=_positions, metavar="POSITIONS", help="frame numbers, e.g. 0,10,100:200:20"
    )
    which.add_argument("--times", type=_seconds, metavar="SECONDS", help="times in seconds, e.g. 0,1.5,60")
    parser.add_argument("--out", type=Path, help="directory for the PNGs (default: ./<video name>_frames)")
    parser.add_argument("--backend", choices=["pyav", "decord", "opencv"], default="pyav", help="decoder")
    parser.add_argument("--max-pixels", type=int, help="resize to this pixel budget (default: native size)")
    parser.add_argument(
        "--factor", type=int, default=28, help="side multiple when resizing: 28 Qwen2.5-VL, 32 Qwen3-VL"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="decode timeout in seconds")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from agentrm.config import VideoConfig
    from agentrm.video import open_video

    console = Console()
    try:
        config = VideoConfig(backend=args.backend, decode_timeout_s=args.timeout)
    except ValueError as exc:
        raise ConfigError(f"invalid option: {exc}") from None
    with open_video(args.video, config) as source:
        m = source.meta
        info = Table(title=m.path, show_header=False)
        for name, value in [
            ("frames", f"{m.num_frames} (0..{m.num_frames - 1})"),
            ("fps", f"{m.fps:.4g}" + (" (variable frame rate)" if m.vfr else "")),
            ("duration", f"{m.duration_s:.3f} s"),
            ("size", f"{m.width}x{m.height}"),
            ("codec", m.codec),
            ("backend", m.backend),
        ]:
            info.add_row(name, value)
        console.print(info)
        if args.at is None and args.times is None:
            return 0
        positions = args.at if args.at is not None else [source.index_at(t) for t in args.times]
        frames = source.get(positions, max_pixels=args.max_pixels, factor=args.factor)
        out = args.out or Path(f"{Path(m.path).stem}_frames")
        out.mkdir(parents=True, exist_ok=True)
        table = Table("frame", "time (s)", "size", "file")
        from PIL import Image

        for frame in frames:
            file = out / f"{Path(m.path).stem}_{frame.index:06d}.png"
            Image.fromarray(frame.pixels).save(file)
            table.add_row(
                str(frame.index), f"{frame.timestamp_s:.3f}", f"{frame.width}x{frame.height}", os.fspath(file)
            )
        console.print(table)
    return 0
