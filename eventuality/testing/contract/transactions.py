"""Transactions and queries on the store's own database (skipped on a store without them).

``query()`` only reads, on every store; a mistake in SQL is a StoreError and the store goes on.
"""

import pytest

from ...errors import StoreError, StoreUsageError
from ...stores.base import EventStore

__all__ = [
    "test_query_refuses_a_write_and_changes_nothing",
    "test_a_refused_query_leaves_later_transactions_working",
    "test_query_cannot_commit_an_open_transaction_half_way",
    "test_query_still_reads_with_ctes_and_functions",
    "test_a_mistake_in_query_sql_is_a_store_error_and_the_store_goes_on",
    "test_a_mistake_in_transaction_sql_is_a_store_error_and_nothing_commits",
]


async def _read_model(store: EventStore) -> None:
    async with store.transaction() as tx:
        await tx.execute("CREATE TABLE alike_rows (id INTEGER PRIMARY KEY)")
        await tx.execute("INSERT INTO alike_rows (id) VALUES (1)")


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM alike_rows",
        "INSERT INTO alike_rows (id) VALUES (2)",
        "UPDATE alike_rows SET id = 3",
        "DROP TABLE alike_rows",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT s",
        "-- a comment first\nBEGIN",
        "ATTACH DATABASE 'other.db' AS other",
    ],
)
async def test_query_refuses_a_write_and_changes_nothing(
    sql_store: EventStore, statement: str
) -> None:
    await _read_model(sql_store)

    with pytest.raises(StoreUsageError, match="read-only"):
        await sql_store.query(statement)

    assert await sql_store.query("SELECT id FROM alike_rows") == [(1,)]


@pytest.mark.parametrize("refused", ["DELETE FROM alike_rows", "BEGIN"])
async def test_a_refused_query_leaves_later_transactions_working(
    sql_store: EventStore, refused: str
) -> None:
    await _read_model(sql_store)
    with pytest.raises(StoreError):
        await sql_store.query(refused)

    async with sql_store.transaction() as tx:
        await tx.execute("INSERT INTO alike_rows (id) VALUES (2)")

    assert await sql_store.query("SELECT id FROM alike_rows ORDER BY id") == [(1,), (2,)]


async def test_query_cannot_commit_an_open_transaction_half_way(sql_store: EventStore) -> None:
    await _read_model(sql_store)

    refused: list[StoreError] = []

    async def write_then_fail() -> None:
        async with sql_store.transaction() as tx:
            await tx.execute("INSERT INTO alike_rows (id) VALUES (2)")
            try:
                await sql_store.query("COMMIT")
            except StoreError as exc:
                refused.append(exc)
            raise RuntimeError("handler fails")

    with pytest.raises(RuntimeError, match="handler fails"):
        await write_then_fail()

    assert "read-only" in str(refused[0])
    assert await sql_store.query("SELECT id FROM alike_rows") == [(1,)]


async def test_query_still_reads_with_ctes_and_functions(sql_store: EventStore) -> None:
    await _read_model(sql_store)

    rows = await sql_store.query(
        "WITH doubled AS (SELECT id * 2 AS twice FROM alike_rows) SELECT max(twice) FROM doubled"
    )

    assert rows == [(2,)]


async def test_a_mistake_in_query_sql_is_a_store_error_and_the_store_goes_on(
    sql_store: EventStore,
) -> None:
    await _read_model(sql_store)
    placeholder = "?" if sql_store.paramstyle == "qmark" else "$1"

    with pytest.raises(StoreError):
        await sql_store.query(f"SELECT id FROM alike_rows WHERE id = {placeholder}")

    assert await sql_store.query("SELECT id FROM alike_rows") == [(1,)]


async def test_a_mistake_in_transaction_sql_is_a_store_error_and_nothing_commits(
    sql_store: EventStore,
) -> None:
    await _read_model(sql_store)
    placeholder = "?" if sql_store.paramstyle == "qmark" else "$1"

    async def insert_with_a_missing_argument() -> None:
        async with sql_store.transaction() as tx:
            await tx.execute("INSERT INTO alike_rows (id) VALUES (2)")
            await tx.execute(f"INSERT INTO alike_rows (id) VALUES ({placeholder})")

    with pytest.raises(StoreError):
        await insert_with_a_missing_argument()

    assert await sql_store.query("SELECT id FROM alike_rows") == [(1,)]
