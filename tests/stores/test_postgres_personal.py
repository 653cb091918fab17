"""PostgreSQL: ``forget`` and a snapshot save of the subject's stream, in either order, never
leave a snapshot behind (the save locks the stream's links; forget marks them)."""

from pathlib import Path
from typing import Annotated, Any

import anyio
import asyncpg
import pytest

from eventuality import Event, EventStore, PersonalData
from eventuality.stores.base import Snapshot
from tests.conftest import POSTGRES_DSN, make_store, postgres_schema, requires_postgres

pytestmark = requires_postgres


class PatientAdmitted(Event):
    __personal_subject__ = "patient_id"

    patient_id: str
    diagnosis: Annotated[str, PersonalData]


SNAPSHOT = Snapshot("patient-p1", 1, "Patient", 1, '{"diagnosis": "flu"}')


async def _wait_until_blocked(raw: asyncpg.Connection, statement: str) -> None:
    """Wait until a session runs ``statement`` and waits for a lock."""
    with anyio.fail_after(30):
        while not await raw.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE $1",
            f"%{statement}%",
        ):
            await anyio.sleep(0.01)


@pytest.fixture
async def opened(tmp_path: Path) -> Any:
    async with make_store("postgres", tmp_path) as store:
        await store.append("patient-p1", [PatientAdmitted(patient_id="p1", diagnosis="flu")])
        raw = await asyncpg.connect(POSTGRES_DSN)
        try:
            yield store, raw, postgres_schema(tmp_path)
        finally:
            await raw.close()


async def test_a_snapshot_saved_while_forget_waits_is_deleted_by_it(opened: Any) -> None:
    store: EventStore
    store, raw, schema = opened
    backend: Any = store.backend
    saver = await asyncpg.connect(POSTGRES_DSN)
    try:
        await saver.execute("BEGIN")
        await saver.execute(
            backend.sql.save_snapshot, b"patient-p1", 1, "Patient", 1, SNAPSHOT.state
        )
        async with anyio.create_task_group() as group:
            group.start_soon(store.forget, "p1")
            await _wait_until_blocked(raw, f'UPDATE "{schema}".eventuality_subject_streams')
            await saver.execute("COMMIT")
    finally:
        await saver.close()

    assert await store.load_snapshot("patient-p1") is None


async def test_a_snapshot_save_waiting_for_forget_stores_nothing(opened: Any) -> None:
    store: EventStore
    store, raw, schema = opened
    backend: Any = store.backend
    forgetter = await asyncpg.connect(POSTGRES_DSN)
    try:
        await forgetter.execute("BEGIN")
        await forgetter.execute(backend.keys_sql.delete_key, b"p1")
        await forgetter.execute(backend.keys_sql.mark_forgotten, b"p1")
        async with anyio.create_task_group() as group:
            group.start_soon(store.save_snapshot, SNAPSHOT)
            await _wait_until_blocked(raw, f'INSERT INTO "{schema}".eventuality_snapshots')
            await forgetter.execute(backend.keys_sql.delete_snapshots, b"p1")
            await forgetter.execute("COMMIT")
    finally:
        await forgetter.close()

    assert await store.load_snapshot("patient-p1") is None


async def test_an_append_waiting_for_forget_seals_again_under_a_new_key(opened: Any) -> None:
    store: EventStore
    store, raw, _ = opened
    backend: Any = store.backend
    forgetter = await asyncpg.connect(POSTGRES_DSN)
    try:
        await forgetter.execute("BEGIN")
        await forgetter.execute(backend.keys_sql.delete_key, b"p1")
        async with anyio.create_task_group() as group:
            later = PatientAdmitted(patient_id="p1", diagnosis="cold")
            group.start_soon(store.append, "patient-p1", [later])
            await _wait_until_blocked(raw, "WITH inserted AS")  # its claim on p1's old key
            await forgetter.execute(backend.keys_sql.mark_forgotten, b"p1")
            await forgetter.execute("COMMIT")
    finally:
        await forgetter.close()

    events = await store.read_stream("patient-p1")
    assert [e.diagnosis for e in events] == ["[erased]", "cold"]  # type: ignore[attr-defined]
