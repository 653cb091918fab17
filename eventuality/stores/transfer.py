"""Moving a whole store: ``copy_store`` (to another backend), ``export_store`` and
``import_store`` (JSON Lines), and ``verify_copy``. What the ``eventuality`` command runs.

A copy carries every event as it is (ids, stream versions, types, schema versions, payloads,
metadata, times; personal data still sealed), in log order, with the target numbering the
positions; then, in one transaction, the stream states (deleted and archived streams, with the
archived rows moved to the target's archive), checkpoints and recorded commands (their
positions translated to the target's), snapshots, and personal-data keys with their links (so
sealed values stay readable, and forgotten subjects stay forgotten: their keys are gone). A
copy into a store that holds part of the same log (an interrupted copy) appends only the rest.
Stores without SQL tables (memory) are refused: there is nothing durable to copy.

Read models are not copied: every subscription with a checkpoint must be named, to rebuild
(its checkpoints stay behind) or to keep (see ``_transfer_checkpoints``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from ..errors import StoreError
from ._transfer_checkpoints import CheckpointPlan
from ._transfer_digest import compare, digest_store
from ._transfer_log import PositionMap, append_log, merged_log, skip_copied
from ._transfer_tables import Dialect, Extras, dialect_of
from .base import EventStore
from .records import EventRecord

__all__ = ["CheckpointPlan", "CopyResult", "copy_store", "verify_copy"]

Progress = Callable[[int, int], None]
"""Called with (events done, events in all) as a copy goes."""


@dataclass
class CopyResult:
    """What a copy did, and what verifying it found (``problems`` empty: equal)."""

    events: int
    already_there: int
    carried: dict[str, int] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)  # the checkpoints carried, by name
    rebuilt: list[str] = field(default_factory=list)  # the checkpoints left behind
    problems: list[str] = field(default_factory=list)
    verified: bool = False


async def copy_store(
    source: EventStore,
    target: EventStore,
    *,
    rebuild: Iterable[str] = (),
    keep: Iterable[str] = (),
    progress: Progress | None = None,
    verify: bool = True,
) -> CopyResult:
    """Copy every event and everything else of ``source`` into ``target`` (both open), except
    read models: each subscription with a checkpoint in ``source`` must be in ``rebuild`` (a
    projection: its checkpoints, versions and partitions included, stay behind, so it starts
    from the first event on the target) or in ``keep`` (carried at the same event).

    :raises StoreUsageError: either is not a SQLite or PostgreSQL store, a subscription with a
        checkpoint is in neither list (or a listed one has none), or ``target`` holds events
        that are not the start of ``source``'s log (nothing is written then).
    """
    plan = CheckpointPlan.of(rebuild, keep)
    reading = dialect_of(source, "copy a store")
    writing = dialect_of(target, "copy into a store")
    names = [name for name, _, _ in await reading.checkpoints()]
    plan.check(names, await versioned_projections(reading))
    total = await total_events(reading)
    log = merged_log(source, reading).__aiter__()
    return await load(
        target, writing, log, total, reading.extras, progress, plan, verify_against=reading
    )


async def versioned_projections(dialect: Dialect) -> list[str]:
    """The projections with versions recorded in the store's database (``[]``: none, or no
    record table)."""
    try:
        rows = await dialect.store.query("SELECT name FROM eventuality_projection_versions")
    except StoreError:
        return []
    return [str(row[0]) for row in rows]


async def total_events(dialect: Dialect) -> int:
    """Live and archived events."""
    live, _ = await dialect.counts()
    return live + len(await dialect.archived())


async def load(
    target: EventStore,
    writing: Dialect,
    log: AsyncIterator[EventRecord],
    total: int,
    extras: Callable[[], Awaitable[Extras]],
    progress: Progress | None,
    plan: CheckpointPlan,
    *,
    verify_against: Dialect | None = None,
) -> CopyResult:
    """Append ``log`` (records in source position order) after what ``target`` already holds
    of it, then write the extras with positions translated (without the checkpoints ``plan``
    rebuilds), then verify."""
    positions = PositionMap()
    held = await skip_copied(log, merged_log(target, writing), positions)
    done = held
    report = progress or (lambda done, total: None)
    report(done, total)

    def advance(count: int) -> None:
        nonlocal done
        done += count
        report(done, total)

    copied = await append_log(target, log, positions, advance)
    found = await extras()
    rebuilt = sorted(name for name, _ in found.checkpoints if plan.rebuilds(name))
    found.checkpoints = [c for c in found.checkpoints if not plan.rebuilds(c[0])]
    carried = translated(found, positions)
    archive = [stream for stream, state, _ in carried.states if state == "archived"]
    await writing.write_extras(carried, archive)
    result = CopyResult(
        events=copied,
        already_there=held,
        carried=_counts(carried),
        kept=sorted(name for name, _ in carried.checkpoints),
        rebuilt=rebuilt,
    )
    if verify_against is not None:
        result.problems = await verify_copy(verify_against, writing, plan)
        result.verified = True
    return result


def translated(extras: Extras, positions: PositionMap) -> Extras:
    """``extras`` with source positions replaced by the target's."""
    commands = [
        c._replace(
            first_position=positions.at_or_above(c.first_position),
            last_position=positions.at_or_below(c.last_position),
        )
        if c.last_position
        else c
        for c in extras.commands
    ]
    return Extras(
        checkpoints=[(name, positions.at_or_below(p)) for name, p in extras.checkpoints],
        snapshots=extras.snapshots,
        states=extras.states,
        commands=commands,
        keys=extras.keys,
        links=extras.links,
    )


def _counts(extras: Extras) -> dict[str, int]:
    return {
        "checkpoints": len(extras.checkpoints),
        "snapshots": len(extras.snapshots),
        "stream states": len(extras.states),
        "commands": len(extras.commands),
        "personal-data keys": len(extras.keys),
        "personal-data links": len(extras.links),
    }


async def verify_copy(
    source: Dialect, target: Dialect, plan: CheckpointPlan | None = None
) -> list[str]:
    """Every difference between two stores (``[]``: equal in every event, stream, checkpoint,
    snapshot, stream state, command record and key); the checkpoints ``plan`` rebuilds are
    not compared (the target's, if any, are its own)."""
    found = [await digest_store(d.store, d) for d in (source, target)]
    if plan is not None:
        for digest in found:
            checkpoints = digest.sections["checkpoints"]
            for name in [n for n in checkpoints if plan.rebuilds(n)]:
                del checkpoints[name]
    return compare(*found)
