"""Progress display for long jobs (rich), silent when not attached to a terminal or in tests."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator


def _enabled() -> bool:
    if os.environ.get("FEASNET_PROGRESS") == "0":
        return False
    if os.environ.get("FEASNET_PROGRESS") == "1":
        return True
    return sys.stderr.isatty()


@contextlib.contextmanager
def progress_bar(label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(k=1)``; shows a rich progress bar on stderr when interactive."""
    if not _enabled():

        def ignore(k: int = 1) -> None:
            pass

        yield ignore
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as progress:
        task = progress.add_task(label, total=total)

        def advance(k: int = 1) -> None:
            progress.advance(task, k)

        yield advance
