"""The PostgreSQL append in one round trip (schema 3's ``eventuality_append``): a failed check
writes nothing, it queues on the same stream locks as the appends that still run in a
transaction of their own, a cancelled one leaves nothing behind, opening a schema-2 store creates
the function, and appends notify listeners whether they run alone or beside others."""

from datetime import UTC, datetime
from pathlib import Path

import anyio
import asyncpg
import pytest

from eventuality import ConcurrencyError, StreamAppend
from eventuality.stores.commands import CommandRecord, KeyTaken
from eventuality.stores.postgres import PostgresBackend, PostgresEventStore
from eventuality.stores.rows import CheckpointMove
from tests.conftest import POSTGRES_DSN, make_store, postgres_schema, requires_postgres
from tests.domain import TodoCreated, TodoRenamed
from tests.stores._postgres_admin import admin

pytestmark = requires_postgres


def _store(tmp_path: Path) -> PostgresEventStore:
    store = make_store("postgres", tmp_path)
    assert isinstance(store, PostgresEventStore)
    return store


def _record(key: str) -> CommandRecord:
    return CommandRecord(key, "tests.Command", f"id-{key}", "digest", datetime.now(UTC))


async def _rows(tmp_path: Path, table: str) -> int:
    found = await admin(f'SELECT count(*) FROM "{postgres_schema(tmp_path)}".{table}')
    return int(found[0][0])


async def test_a_stale_version_writes_nothing_to_any_stream_nor_the_command(
    tmp_path: Path,
) -> None:
    async with _store(tmp_path) as pg:
        await pg.append("b", [TodoCreated(description="b1")])

        with pytest.raises(ConcurrencyError) as raised:
            await pg.append_streams(
                [
                    StreamAppend("a", [TodoCreated(description="a1")]),
                    StreamAppend("b", [TodoRenamed(description="b2")], expected_version=0),
                ],
                command=_record("k1"),
            )

        assert (raised.value.expected_version, raised.value.actual_version) == (0, 1)
        assert await pg.read_stream("a") == []
        assert await pg.recorded_command("k1") is None
    assert await _rows(tmp_path, "eventuality_events") == 1
    assert await _rows(tmp_path, "eventuality_commands") == 0


async def test_a_taken_key_writes_no_event(tmp_path: Path) -> None:
    async with _store(tmp_path) as pg:
        await pg.append_streams(
            [StreamAppend("a", [TodoCreated(description="a1")])], command=_record("k1")
        )

        with pytest.raises(KeyTaken):
            await pg.append_streams(
                [StreamAppend("c", [TodoCreated(description="c1")])], command=_record("k1")
            )

        assert await pg.read_stream("c") == []
        assert await pg.stream_version("a") == 1
    assert await _rows(tmp_path, "eventuality_events") == 1


async def test_one_statement_and_transaction_appends_queue_on_the_same_stream_locks(
    tmp_path: Path,
) -> None:
    async with _store(tmp_path) as pg:

        async def plain(i: int) -> None:
            await pg.append("s", [TodoRenamed(description=f"plain {i}")])

        async def with_checkpoint(i: int) -> None:  # runs BEGIN ... COMMIT
            await pg.append_streams(
                [StreamAppend("s", [TodoRenamed(description=f"moved {i}")])],
                checkpoint=CheckpointMove(f"cp{i}", None, 1),
            )

        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(plain, i)
                tg.start_soon(with_checkpoint, i)

        stored = await pg.read_stream("s")
    assert [event.aggregate_version for event in stored] == list(range(1, 21))
    assert len({event.position for event in stored}) == 20


async def test_a_cancelled_append_waiting_for_its_stream_lock_leaves_nothing(
    tmp_path: Path,
) -> None:
    async with _store(tmp_path) as pg:
        backend = pg.backend
        assert isinstance(backend, PostgresBackend)
        ((a, b),) = backend.sql.lock_keys([b"s"])
        holder = await asyncpg.connect(POSTGRES_DSN)
        try:
            await holder.execute(f"BEGIN; SELECT pg_advisory_xact_lock({a}, {b})")
            with anyio.move_on_after(10) as scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(pg.append, "s", [TodoCreated(description="never")])
                    waiting = (
                        "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                        "AND classid = $1::bigint::oid AND objid = $2::bigint::oid"
                    )
                    keys = a & 0xFFFFFFFF, b & 0xFFFFFFFF
                    while not await admin(waiting, *keys):
                        await anyio.sleep(0.01)
                    tg.cancel_scope.cancel()
                # The server cancels the statement (asyncpg asks it to): its wait ends.
                while await admin(waiting, *keys):
                    await anyio.sleep(0.01)
            assert not scope.cancelled_caught
            await holder.execute("COMMIT")
        finally:
            await holder.close()

        assert await pg.read_stream("s") == []
        after = await pg.append("s", [TodoCreated(description="next")])
        idle = await admin(
            "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' "
            "AND query LIKE '%eventuality_append%'"
        )
    assert after[0].aggregate_version == 1
    assert idle[0][0] == 0


async def test_opening_a_schema_2_store_creates_the_append_function(tmp_path: Path) -> None:
    schema = postgres_schema(tmp_path)
    async with _store(tmp_path) as pg:
        await pg.append("before", [TodoCreated(description="v2")])
    await admin(f'DROP FUNCTION "{schema}".eventuality_append')
    await admin(f'UPDATE "{schema}".eventuality_schema SET version = 2')

    async with _store(tmp_path) as pg:
        appended = await pg.append("after", [TodoCreated(description="v3")])
        before = await pg.read_stream("before")

    version = await admin(f'SELECT version FROM "{schema}".eventuality_schema')
    function = await admin("SELECT to_regproc($1)", f'"{schema}".eventuality_append')
    assert version[0][0] == 3
    assert function[0][0] is not None
    assert appended[0].aggregate_version == 1
    assert [event.payload for event in before] == [{"description": "v2"}]


@pytest.mark.parametrize("beside_others", [False, True])
async def test_appends_alone_or_beside_others_notify_other_processes(
    tmp_path: Path, beside_others: bool
) -> None:
    heard = anyio.Event()
    listener = await asyncpg.connect(POSTGRES_DSN)
    try:
        await listener.add_listener(
            f"eventuality_{postgres_schema(tmp_path)}", lambda *_: heard.set()
        )
        async with _store(tmp_path) as pg:
            backend = pg.backend
            assert isinstance(backend, PostgresBackend)
            if beside_others:  # as if another append were on its way: NOTIFY after the commit
                backend._appending += 1
            await pg.append("s", [TodoCreated(description="x")])

            with anyio.fail_after(5):
                await heard.wait()
            if beside_others:
                backend._appending -= 1
    finally:
        await listener.close()
