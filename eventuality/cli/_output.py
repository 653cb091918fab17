"""Writing what a command found: rich tables on a terminal, JSON when asked, and progress bars
only when someone watches (stderr is a terminal); piped output stays plain and quiet."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..stores.records import EventRecord

__all__ = ["compact", "console", "emit_json", "progress_bar", "record_row", "table"]


def console() -> Console:
    """The console on stdout (click's, so test runners capture it)."""
    return Console(file=sys.stdout, soft_wrap=False, width=None if sys.stdout.isatty() else 200)


def emit_json(value: Any) -> None:
    """One JSON document (or one JSON line) on stdout."""
    click.echo(json.dumps(value, ensure_ascii=False, default=str))


def compact(value: Any, width: int = 60) -> str:
    """JSON text cut to ``width`` characters for a table cell."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A table on stdout."""
    found = Table(title=title, show_lines=False)
    for column in columns:
        found.add_column(column, overflow="fold")
    for row in rows:
        found.add_row(*(str(cell) for cell in row))
    console().print(found)


def record_row(record: EventRecord, *, stream: bool) -> list[Any]:
    """A record as a table row (with its stream, for the global log)."""
    when = record.occurred_at.isoformat(timespec="seconds")
    head: list[Any] = [record.position]
    if stream:
        head.append(record.stream_id)
    return [*head, record.version, record.event_type, when, compact(record.payload)]


@contextmanager
def progress_bar(what: str) -> Iterator[Any]:
    """A callback ``(done, total)`` drawing a bar on stderr when it is a terminal; a no-op
    when it is not (piped, redirected, a test runner)."""
    stream = sys.stderr
    if not stream.isatty():
        yield lambda done, total: None
        return
    bar = Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(file=stream),
        transient=False,
    )
    task = bar.add_task(what, total=None)
    with bar:

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def note(text: str) -> None:
    """A line for the person at the terminal, on stderr (never mixed into piped data)."""
    click.echo(text, err=True)
