"""Opening a store made by 0.1.0 (schema 1) upgrades it in place, once, in one transaction, and
keeps every event, checkpoint and snapshot; a store from a newer release is refused untouched.

The schema-1 stores are fixtures made by 0.1.0's own code (``tests/fixtures/schema1/make.py``).
"""

import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Annotated, Any

import anyio
import asyncpg
import pytest

from eventuality import (
    Event,
    EventStore,
    PersonalData,
    Repository,
    SchemaVersionError,
    SQLiteEventStore,
)
from eventuality.stores import _sqlite_schema
from tests.conftest import POSTGRES_DSN, postgres_schema, requires_postgres
from tests.domain import Todo


class PatientAdmitted(Event):
    """Personal data written to an upgraded store (schema 2's key tables)."""

    __event_type__ = "tests.upgrade.PatientAdmitted"
    __personal_subject__ = "patient_id"
    patient_id: str
    name: Annotated[str, PersonalData]


FIXTURES = Path(__file__).parent.parent / "fixtures" / "schema1"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "expected.json").read_text())


def sqlite_copy(tmp_path: Path) -> Path:
    path = tmp_path / "old.db"
    shutil.copyfile(FIXTURES / "store.db", path)
    return path


def dump(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as raw:
        return list(raw.iterdump())


def sqlite_version(path: Path) -> int:
    with closing(sqlite3.connect(path)) as raw:
        (version,) = raw.execute("SELECT version FROM eventuality_schema").fetchone()
    return int(version)


async def postgres_copy(tmp_path: Path) -> str:
    """The schema-1 dump restored into the test's own schema; returns the schema name."""
    schema = postgres_schema(tmp_path)
    dump = (FIXTURES / "postgres.sql").read_text().replace("schema1_fixture", schema)
    connection = await asyncpg.connect(POSTGRES_DSN)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await connection.execute(dump)
    finally:
        await connection.close()
    return schema


async def postgres_version(schema: str) -> int:
    connection = await asyncpg.connect(POSTGRES_DSN)
    try:
        return int(await connection.fetchval(f'SELECT version FROM "{schema}".eventuality_schema'))
    finally:
        await connection.close()


async def assert_everything_kept(store: EventStore, expected: dict[str, Any]) -> None:
    rows = expected["events"]
    events = [event async for event in store.read_all()][: len(rows)]
    assert [(e.position, e.aggregate_version, e.event_type, str(e.event_id)) for e in events] == [
        (row[0], row[2], row[3], row[7]) for row in rows
    ]
    assert [e.payload for e in events] == [json.loads(row[5]) for row in rows]
    assert [e.metadata for e in events] == [json.loads(row[6]) for row in rows]
    for stream_id in {row[1] for row in rows}:
        stored = await store.read_stream(stream_id)
        assert [str(e.event_id) for e in stored] == [row[7] for row in rows if row[1] == stream_id]
    for name, position in expected["checkpoints"].items():
        assert await store.get_checkpoint(name) == position
    for stream_id, version, aggregate_type, schema_version, state in expected["snapshots"]:
        snapshot = await store.load_snapshot(stream_id, max_version=version)
        assert snapshot is not None
        assert (snapshot.version, snapshot.aggregate_type, snapshot.schema_version) == (
            version,
            aggregate_type,
            schema_version,
        )
        assert json.loads(snapshot.state) == json.loads(state)
    todo = await Repository(Todo, store).load("todo-0")
    assert (todo.description, todo.completed, todo.version) == ("task 0 v3", True, 6)


async def test_a_schema_1_sqlite_file_is_upgraded_in_place_keeping_everything(
    tmp_path: Path,
) -> None:
    path = sqlite_copy(tmp_path)
    assert sqlite_version(path) == 1
    async with SQLiteEventStore(path) as store:
        await assert_everything_kept(store, EXPECTED["sqlite"])
        appended = await store.append("after-upgrade", [Todo.create("x", "new").pending_events[0]])
        assert appended[0].position == EXPECTED["sqlite"]["events"][-1][0] + 1
    assert sqlite_version(path) == _sqlite_schema.SCHEMA_VERSION
    async with SQLiteEventStore(path) as store:
        await assert_everything_kept(store, EXPECTED["sqlite"])
        assert await store.stream_version("after-upgrade") == 1


async def test_stores_opening_a_schema_1_file_together_upgrade_it_once(tmp_path: Path) -> None:
    path = sqlite_copy(tmp_path)
    stores = [SQLiteEventStore(path) for _ in range(4)]
    async with anyio.create_task_group() as group:
        for store in stores:
            group.start_soon(store.open)
    try:
        for store in stores:
            await assert_everything_kept(store, EXPECTED["sqlite"])
    finally:
        for store in stores:
            await store.close()
    assert sqlite_version(path) == _sqlite_schema.SCHEMA_VERSION


async def test_an_upgrade_that_fails_half_way_leaves_the_schema_1_file_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = sqlite_copy(tmp_path)
    steps = {**_sqlite_schema.UPGRADES}
    last = _sqlite_schema.SCHEMA_VERSION
    steps[last] = [
        *steps[last],
        "CREATE TABLE eventuality_upgrade_probe (x INTEGER)",
        "SELECT no_such_function()",
    ]
    monkeypatch.setattr(_sqlite_schema, "UPGRADES", steps)
    with pytest.raises(Exception, match="no_such_function"):
        async with SQLiteEventStore(path):
            pass
    assert sqlite_version(path) == 1
    with closing(sqlite3.connect(path)) as raw:
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "eventuality_upgrade_probe" not in tables
    monkeypatch.undo()
    async with SQLiteEventStore(path) as store:
        await assert_everything_kept(store, EXPECTED["sqlite"])


async def test_a_sqlite_file_from_a_newer_release_is_refused_untouched(tmp_path: Path) -> None:
    path = sqlite_copy(tmp_path)
    with closing(sqlite3.connect(path)) as raw:
        raw.execute(
            "UPDATE eventuality_schema SET version = ?", (_sqlite_schema.SCHEMA_VERSION + 1,)
        )
        raw.commit()
    before = dump(path)
    with pytest.raises(SchemaVersionError, match="newer eventuality") as raised:
        async with SQLiteEventStore(path):
            pass
    assert "Upgrade eventuality" in str(raised.value)
    assert dump(path) == before


@requires_postgres
async def test_a_schema_1_postgres_schema_is_upgraded_in_place_keeping_everything(
    tmp_path: Path,
) -> None:
    from eventuality.stores import _postgres_sql
    from eventuality.stores.postgres import PostgresEventStore

    schema = await postgres_copy(tmp_path)
    assert await postgres_version(schema) == 1
    stores = [PostgresEventStore(POSTGRES_DSN, schema=schema) for _ in range(3)]
    async with anyio.create_task_group() as group:
        for store in stores:
            group.start_soon(store.open)
    try:
        for store in stores:
            await assert_everything_kept(store, EXPECTED["postgres"])
        appended = await stores[0].append(
            "after-upgrade", [Todo.create("x", "new").pending_events[0]]
        )
        assert appended[0].position > EXPECTED["postgres"]["events"][-1][0]
    finally:
        for store in stores:
            await store.close()
    assert await postgres_version(schema) == _postgres_sql.SCHEMA_VERSION
    async with PostgresEventStore(POSTGRES_DSN, schema=schema) as store:
        await assert_everything_kept(store, EXPECTED["postgres"])


@requires_postgres
async def test_a_postgres_schema_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    from eventuality.stores import _postgres_sql
    from eventuality.stores.postgres import PostgresEventStore

    schema = await postgres_copy(tmp_path)
    connection = await asyncpg.connect(POSTGRES_DSN)
    try:
        await connection.execute(
            f'UPDATE "{schema}".eventuality_schema SET version = $1',
            _postgres_sql.SCHEMA_VERSION + 1,
        )
    finally:
        await connection.close()
    with pytest.raises(SchemaVersionError, match="newer eventuality"):
        async with PostgresEventStore(POSTGRES_DSN, schema=schema):
            pass
    assert await postgres_version(schema) == _postgres_sql.SCHEMA_VERSION + 1


@requires_postgres
async def test_a_postgres_upgrade_that_fails_half_way_leaves_schema_1_as_it_was(
    tmp_path: Path,
) -> None:
    from eventuality.stores import _postgres_sql
    from eventuality.stores.postgres import PostgresEventStore

    schema = await postgres_copy(tmp_path)
    failing = PostgresEventStore(POSTGRES_DSN, schema=schema)
    steps = failing._backend.sql.upgrades  # type: ignore[attr-defined]
    steps[_postgres_sql.SCHEMA_VERSION] = [
        *steps[_postgres_sql.SCHEMA_VERSION],
        f'CREATE TABLE "{schema}".eventuality_upgrade_probe (x INTEGER)',
        "SELECT no_such_function()",
    ]
    with pytest.raises(Exception, match="no_such_function"):
        async with failing:
            pass
    assert await postgres_version(schema) == 1
    connection = await asyncpg.connect(POSTGRES_DSN)
    try:
        probe = await connection.fetchval(
            "SELECT to_regclass($1)", f'"{schema}".eventuality_upgrade_probe'
        )
    finally:
        await connection.close()
    assert probe is None
    async with PostgresEventStore(POSTGRES_DSN, schema=schema) as store:
        await assert_everything_kept(store, EXPECTED["postgres"])


async def _lifecycle_on_upgraded(store: EventStore, expected: dict[str, Any]) -> None:
    """Schema 2's lifecycle tables exist after the upgrade: archive, restore and delete work."""
    streams = sorted({row[1] for row in expected["events"]})
    kept = await store.read_stream(streams[0])

    await store.archive_stream(streams[0])
    assert await store.read_archived(streams[0]) == kept
    await store.restore_stream(streams[0])
    tombstone = await store.delete_stream(streams[-1])

    assert await store.read_stream(streams[0]) == kept
    assert tombstone.stream_id == streams[-1]


async def test_an_upgraded_sqlite_file_can_delete_and_archive_streams(tmp_path: Path) -> None:
    path = sqlite_copy(tmp_path)

    async with SQLiteEventStore(path) as store:
        await _lifecycle_on_upgraded(store, EXPECTED["sqlite"])

    with closing(sqlite3.connect(path)) as raw:
        tables = {name for (name,) in raw.execute("SELECT name FROM sqlite_master")}
    assert {"eventuality_streams", "eventuality_archive"} <= tables


@requires_postgres
async def test_an_upgraded_postgres_schema_can_delete_and_archive_streams(tmp_path: Path) -> None:
    from eventuality.stores.postgres import PostgresEventStore

    schema = await postgres_copy(tmp_path)

    async with PostgresEventStore(POSTGRES_DSN, schema=schema) as store:
        await _lifecycle_on_upgraded(store, EXPECTED["postgres"])


async def _forget_on_upgraded(store: EventStore) -> None:
    await store.append("patient-1", [PatientAdmitted(patient_id="p1", name="Ada Lovelace")])
    assert [e.name for e in await store.read_stream("patient-1")] == ["Ada Lovelace"]  # type: ignore[attr-defined]
    assert await store.forget("p1")
    assert [e.name for e in await store.read_stream("patient-1")] == ["[erased]"]  # type: ignore[attr-defined]


async def test_an_upgraded_sqlite_file_keeps_personal_data_keys(tmp_path: Path) -> None:
    path = sqlite_copy(tmp_path)
    async with SQLiteEventStore(path) as store:
        await _forget_on_upgraded(store)
        await assert_everything_kept(store, EXPECTED["sqlite"])


@requires_postgres
async def test_an_upgraded_postgres_schema_keeps_personal_data_keys(tmp_path: Path) -> None:
    from eventuality.stores.postgres import PostgresEventStore

    schema = await postgres_copy(tmp_path)
    async with PostgresEventStore(POSTGRES_DSN, schema=schema) as store:
        await _forget_on_upgraded(store)
        await assert_everything_kept(store, EXPECTED["postgres"])
