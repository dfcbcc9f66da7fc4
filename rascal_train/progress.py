"""One progress-bar style for every long loop (training, embedding, kNN, sweeps).

Library functions take ``progress=True``; bars go to stderr so stdout stays machine-readable,
and rich stops animating by itself when stderr is not a terminal (CI, pipes).
"""

from __future__ import annotations

from typing import Iterable, Iterator, TypeVar

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

T = TypeVar("T")

console = Console(stderr=True)


class _Progress(Progress):
    """A ``Progress`` that prints no final render when its block fails (a log or CI then shows the
    command's one error line, not a half-done bar before it); a terminal keeps the bar as last
    drawn."""

    def __exit__(self, exc_type, exc_val, exc_tb):
        if exc_type is None or self.console.is_terminal:  # a terminal must get its cursor back
            return super().__exit__(exc_type, exc_val, exc_tb)
        quiet, self.console.quiet = self.console.quiet, True
        try:
            return super().__exit__(exc_type, exc_val, exc_tb)
        finally:
            self.console.quiet = quiet


def make_progress(*extra_columns, disable: bool = False, transient: bool = False) -> Progress:
    """A rich ``Progress`` with n/N, percentage, ETA, elapsed, and any extra columns."""
    return _Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        *extra_columns,
        TimeRemainingColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=disable,
        transient=transient,
    )


def track(items: Iterable[T], description: str, total: int | None = None,
          disable: bool = False) -> Iterator[T]:
    """Iterate ``items`` behind a progress bar."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with make_progress(disable=disable, transient=False) as prog:
        task = prog.add_task(description, total=total)
        for item in items:
            yield item
            prog.advance(task)
