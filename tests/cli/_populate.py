"""A store holding one of everything a copy must carry, and what to check it by.

Run as ``python -m tests.cli._populate URL [EVENTS]`` to fill the store at URL in a process of
its own (EVENTS: add that many plain events besides, for a long copy).
"""

import sys
from typing import Annotated

import anyio

from eventuality import (
    Aggregate,
    Event,
    EventRecord,
    EventStore,
    Flow,
    PersonalData,
    Repository,
    Subscription,
    open_store,
)
from tests.domain import CreateTodo, MarkAsCompleted, RenameTodo, Todo


class MemberJoined(Event):
    __personal_subject__ = "member_id"
    member_id: str
    name: Annotated[str, PersonalData]
    plan: str


class Member(Aggregate):
    name: str | None = None

    def apply(self, event: Event) -> None:
        if isinstance(event, MemberJoined):
            self.name = event.name


class Bulk(Event):
    n: int
    text: str


async def populate(store: EventStore, bulk: int = 0) -> None:
    """Commands with snapshots, a checkpoint, personal data (one subject forgotten), and a
    deleted, an archived and a truncated stream, interleaved in the log."""
    todos = Repository(Todo, store, snapshot_every=2)
    flow = Flow(store=store)

    @flow.handles(CreateTodo)
    async def create(cmd: CreateTodo) -> Todo:
        return await todos.add(id=cmd.id, description=cmd.description)

    @flow.handles(RenameTodo)
    async def rename(cmd: RenameTodo) -> list[Event]:
        return (await todos.load(cmd.id)).rename(cmd.description)

    @flow.handles(MarkAsCompleted)
    async def complete(cmd: MarkAsCompleted) -> list[Event]:
        return (await todos.load(cmd.id)).complete()

    for i in range(1, 6):
        await flow.dispatch(CreateTodo(id=f"t{i}", description=f"todo {i} ✓"))
    for i in range(1, 6):
        await flow.dispatch(RenameTodo(id=f"t{i}", description=f"renamed {i}"))
        await flow.dispatch(MarkAsCompleted(id=f"t{i}"), idempotency_key=f"done-{i}")
    for who in ("ada", "bob"):
        await store.append(
            f"Member-{who}",
            [MemberJoined(member_id=who, name=who.title(), plan="gold", metadata={"by": "x"})],
        )
    seen: list[int] = []

    async def handle(event: Event) -> None:
        seen.append(event.position or 0)

    await Subscription(store, "todo-list", handle).catch_up()
    await store.forget("bob")
    await store.delete_stream("Todo-t4")
    await store.archive_stream("Todo-t5")
    await store.truncate_stream("Todo-t1", 2, require_snapshot=False)
    await flow.dispatch(CreateTodo(id="t6", description="after the checkpoint"))
    for start in range(0, bulk, 1000):
        await store.append(
            "Bulk-1", [Bulk(n=n, text="x" * 40) for n in range(start, min(start + 1000, bulk))]
        )


async def _main(url: str, bulk: int) -> None:
    async with open_store(url) as store:
        await populate(store, bulk)


if __name__ == "__main__":
    anyio.run(_main, sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)


def _content(record: EventRecord) -> tuple[object, ...]:
    return (
        record.event_id,
        record.stream_id,
        record.version,
        record.event_type,
        record.schema_version,
        record.payload,
        record.metadata,
        record.aggregate_id,
        record.occurred_at,
    )


async def assert_same(source: EventStore, target: EventStore) -> None:
    """``target`` reads back as ``source`` (positions aside): events in log order, archived
    and deleted streams, the checkpoint at the same event, snapshots, command records, and
    personal data (readable, and masked for the forgotten subject)."""
    mine = [r async for r in source.read_all_records()]
    theirs = [r async for r in target.read_all_records()]
    assert [_content(r) for r in theirs] == [_content(r) for r in mine]
    for stream in ("Todo-t4", "Todo-t5"):  # deleted, archived
        state = await source.backend.stream_state(stream)  # type: ignore[attr-defined]
        assert await target.backend.stream_state(stream) == state  # type: ignore[attr-defined]
    archived = [(e.event_id, e.aggregate_version, e.payload, e.occurred_at) for e in
                await source.read_archived("Todo-t5")]  # fmt: skip
    assert (
        [
            (e.event_id, e.aggregate_version, e.payload, e.occurred_at)
            for e in await target.read_archived("Todo-t5")
        ]
        == archived
        != []
    )
    checkpoint = await source.get_checkpoint("todo-list") or 0
    moved = await target.get_checkpoint("todo-list") or 0
    before = [r.event_id for r in mine if r.position <= checkpoint]
    assert [r.event_id for r in theirs if r.position <= moved] == before
    for stream in ("Todo-t1", "Todo-t2", "Todo-t3"):
        assert await target.load_snapshot(stream) == await source.load_snapshot(stream)
        assert await target.stream_version(stream) == await source.stream_version(stream)
    for key in ("done-2", "done-3"):
        first = await source.recorded_command(key)
        again = await target.recorded_command(key)
        assert first is not None
        assert again is not None
        assert again[0]._replace(first_position=0, last_position=0) == first[0]._replace(
            first_position=0, last_position=0
        )
        assert [e.event_id for e in again[1]] == [e.event_id for e in first[1]] != []
    (ada,) = await target.read_stream("Member-ada")
    (bob,) = await target.read_stream("Member-bob")
    assert isinstance(ada, MemberJoined)
    assert isinstance(bob, MemberJoined)
    assert (ada.name, bob.name) == ("Ada", "[erased]")


class TodoCreatedElsewhere(Event):
    description: str
