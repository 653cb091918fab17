"""The reading commands: ``info``, ``streams``, ``show``, ``tail`` and ``subscriptions``.

They read stored rows as records (``store.read_records``), so they need none of the
application's event classes, and show personal data sealed, as stored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import click

from ..stores._transfer_tables import dialect_of
from ..stores.base import EventStore, redact_dsn
from ..stores.records import EventRecord
from ._app import run
from ._output import compact, emit_json, record_row, table
from ._stores import CommandError, opened

__all__ = ["COMMANDS"]

_JSON = click.option("--json", "as_json", is_flag=True, help="Write JSON instead of a table.")


@click.command()
@click.argument("url")
@_JSON
def info(url: str, as_json: bool) -> None:
    """Store kind, schema version, events, streams, last position and size on disk."""

    async def work() -> dict[str, object]:
        async with opened(url) as store:
            dialect = dialect_of(store, "describe a store")
            events, streams = await dialect.counts()
            return {
                "store": redact_dsn(url),
                "kind": dialect.kind,
                "schema_version": await dialect.schema_version(),
                "events": events,
                "streams": streams,
                "last_position": await store.last_position(),
                "size_bytes": await dialect.size_on_disk(),
            }

    found = run(work)
    if as_json:
        emit_json(found)
    else:
        table(None, ["", ""], [[key, value] for key, value in found.items()])


@click.command()
@click.argument("url")
@click.option("--prefix", default="", help="Only streams whose id starts with this.")
@_JSON
def streams(url: str, prefix: str, as_json: bool) -> None:
    """Every stream with its version, number of events and state (live, archived, deleted)."""

    async def work() -> list[dict[str, object]]:
        async with opened(url) as store:
            found = await dialect_of(store, "list streams").streams(prefix)
        return [
            {"stream_id": s.stream_id, "version": s.version, "events": s.events, "state": s.state}
            for s in found
        ]

    found = run(work)
    if as_json:
        emit_json(found)
    else:
        rows = [[s["stream_id"], s["version"], s["events"], s["state"]] for s in found]
        table(None, ["stream", "version", "events", "state"], rows)


@click.command()
@click.argument("url")
@click.argument("stream")
@click.option("--from-version", type=click.IntRange(min=1), default=1, show_default=True)
@_JSON
def show(url: str, stream: str, from_version: int, as_json: bool) -> None:
    """The events of one stream, in version order."""

    async def work() -> list[EventRecord]:
        async with opened(url) as store:
            records = await store.read_records(stream, from_version=from_version)
            if not records and await store.stream_version(stream) == 0:
                raise CommandError(
                    f"stream {stream!r} has no events in {redact_dsn(url)}. List the streams "
                    "with: eventuality streams URL"
                )
        return records

    records = run(work)
    if as_json:
        emit_json([r.to_json() for r in records])
        return
    rows = [[*record_row(r, stream=False), compact(r.metadata, 40)] for r in records]
    table(stream, ["position", "version", "type", "occurred at", "payload", "metadata"], rows)


@click.command()
@click.argument("url")
@click.option("-n", "--lines", "count", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many of the last events to show first.")  # fmt: skip
@click.option("--from-position", type=click.IntRange(min=0), default=None,
              help="Show every event after this position instead of the last ones.")  # fmt: skip
@click.option("--type", "types", multiple=True, help="Only events of this type (repeatable).")
@click.option("-f", "--follow", is_flag=True, help="Keep going: show new events as they come.")
@_JSON
def tail(
    url: str,
    count: int,
    from_position: int | None,
    types: tuple[str, ...],
    follow: bool,
    as_json: bool,
) -> None:
    """The end of the global log; with --follow, new events live (Ctrl-C stops).

    With --json, one JSON object per line.
    """

    def emit(record: EventRecord) -> None:
        if as_json:
            emit_json(record.to_json())
        else:
            cells = record_row(record, stream=True)
            click.echo("  ".join(str(cell) for cell in cells))

    async def work() -> None:
        async with opened(url) as store:
            start = from_position
            if start is None:
                start = await _start_of_last(store, count, types)
            position = await _print_after(store, start, types, emit)
            while follow:
                await store.wait_appended(position, timeout=5.0)
                position = await _print_after(store, position, types, emit)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends a follow: not an error
        run(work)


async def _start_of_last(store: EventStore, count: int, types: tuple[str, ...]) -> int:
    """The position after which the last ``count`` events (of ``types``) lie."""
    last = await store.last_position()
    if count == 0:
        return last
    names = {f"t{i}": name for i, name in enumerate(types)}
    where = f"WHERE event_type IN ({', '.join(':' + n for n in names)})" if names else ""
    found = await store.query(
        f"SELECT position FROM eventuality_events {where} ORDER BY position DESC LIMIT :n",
        n=count,
        **names,
    )
    return int(found[-1][0]) - 1 if found else last


async def _print_after(
    store: EventStore, after: int, types: tuple[str, ...], emit: Callable[[EventRecord], None]
) -> int:
    """Print every event after ``after``; return the position to wait beyond next (past
    events of other types too, so a filtered follow does not wake for them again)."""
    position = max(after, await store.last_position())
    async for record in store.read_all_records(from_position=after, event_types=types or None):
        emit(record)
        position = max(position, record.position)
    return position


@click.command()
@click.argument("url")
@_JSON
def subscriptions(url: str, as_json: bool) -> None:
    """Every checkpoint: its position, how many events lie after it (lag), when it moved."""

    async def work() -> list[dict[str, object]]:
        async with opened(url) as store:
            dialect = dialect_of(store, "list subscriptions")
            return [
                {
                    "name": name,
                    "position": position,
                    "lag": await dialect.count_after(position),
                    "updated_at": updated.isoformat(timespec="seconds"),
                }
                for name, position, updated in await dialect.checkpoints()
            ]

    found = run(work)
    if as_json:
        emit_json(found)
    else:
        rows = [[c["name"], c["position"], c["lag"], c["updated_at"]] for c in found]
        table(None, ["subscription", "position", "lag", "updated at"], rows)


COMMANDS = [info, streams, show, tail, subscriptions]
