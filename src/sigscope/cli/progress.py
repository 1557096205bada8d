"""A progress bar or a spinner on a terminal, silence in a pipe."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.spinner import Spinner
from rich.text import Text

from sigscope.report.cells import UNBOUNDED


class Tracker(Protocol):
    def add_total(self, n: int) -> None: ...

    def advance(self, n: int = 1) -> None: ...


class _Silent:
    def add_total(self, n: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass


class _Bar:
    def __init__(self, progress: Progress, description: str) -> None:
        self._progress = progress
        self._task = progress.add_task(description, total=0)
        self._total = 0

    def add_total(self, n: int) -> None:
        self._total += n
        self._progress.update(self._task, total=self._total)

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._task, n)


@contextmanager
def tracker(description: str, *, enabled: bool = True) -> Iterator[Tracker]:
    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield _Silent()
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        yield _Bar(progress, description)


@contextmanager
def waiting(description: str) -> Iterator[None]:
    """A spinner on stderr while a single-image command waits for the network, so a slow registry
    is seen to be slow rather than hung; transient, and nothing at all when stderr is not a terminal."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    # stdout stays where it is: with rich's default redirect, a line printed meanwhile would go to stderr.
    spinner = Spinner("dots", text=Text(description))
    with Live(spinner, console=console, transient=True, redirect_stdout=False, refresh_per_second=12.5):
        yield


def stdout_console(output: str = "pretty") -> Console:
    """Rich output for stdout.

    `pretty` fits a window: a terminal's width; in a pipe, rich's own rule: $COLUMNS if set, else the width of
    the terminal on stdin or stderr (`sigscope … | less`), else 80. `wide` is for grep and logs: in a pipe it
    is unbounded, every row one line whatever its length; on a terminal, the terminal's width decides only
    whether details move beneath the table (`report.cells.print_whole`). Machine formats never come here.
    """
    console = Console()
    if output == "wide" and not console.is_terminal:
        return Console(width=UNBOUNDED)
    return console
