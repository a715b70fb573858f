"""Progress bar and end-of-run summary for scoring commands (rich), shared by `score`, `replay` and `demo`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agentrm.config import ScoreConfig
from agentrm.data.schema import Item
from agentrm.engines.base import Engine
from agentrm.scoring import ScoreSummary, score_items
from agentrm.trace import Trace

console = Console(stderr=True)


@contextmanager
def progress_bar(total: int, progress: bool = True) -> Iterator[Callable[[Trace], None]]:
    """A scoring progress bar; yields the `on_done(trace)` callback that advances it."""
    with Progress(
        TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.description}"),
        console=console, disable=not progress,
    ) as bar:
        task = bar.add_task("", total=total)

        def done(trace: Trace) -> None:
            bar.update(task, advance=1, description=f"{trace.id}: {trace.termination}")

        yield done
        bar.update(task, completed=total)


async def score_with_progress(
    items: Sequence[Item], engine: Engine, cfg: ScoreConfig, out: str | Path, progress: bool = True,
    normalization: dict[str, tuple[float, float]] | None = None,
) -> ScoreSummary:
    with progress_bar(len(items), progress) as done:
        summary = await score_items(items, engine, cfg, out, on_done=done, normalization=normalization)
    print_summary(summary, out)
    return summary


def print_summary(s: ScoreSummary, out: str | Path) -> None:
    table = Table(title=f"agentrm score -> {out}", show_header=False)
    table.add_row("samples", str(s.total))
    table.add_row("already done (resumed)", str(s.skipped))
    table.add_row("scored now", str(s.scored))
    for reason, n in sorted(s.terminations.items()):
        table.add_row(f"  ended by {reason}", str(n))
    if s.turns:
        table.add_row("mean turns", f"{sum(s.turns) / len(s.turns):.2f}")
        table.add_row("mean frames viewed", f"{sum(s.frames) / len(s.frames):.2f}")
    table.add_row("failed samples", f"{s.failed} ({s.failed_before} from earlier runs)" if s.failed_before
                  else str(s.failed))
    for label, value in s.extra_rows():
        table.add_row(label, value)
    rate = s.scored / s.elapsed_s if s.elapsed_s else 0.0
    table.add_row("time", f"{s.elapsed_s:.1f} s ({rate:.2f} episodes/s)")
    console.print(table)
