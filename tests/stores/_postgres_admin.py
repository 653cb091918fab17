"""Helpers for PostgreSQL tests that look at or kill the server's sessions: stores whose
sessions carry a name of their own, so a test touches its own backends and nothing else."""

import uuid
from pathlib import Path
from typing import Any

import asyncpg

from eventuality.stores.postgres import PostgresEventStore
from tests.conftest import POSTGRES_DSN, postgres_schema


def with_params(**params: object) -> str:
    """The test DSN with these URL parameters added."""
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"{POSTGRES_DSN}{'&' if '?' in POSTGRES_DSN else '?'}{query}"


def named_store(tmp_path: Path, **options: Any) -> tuple[PostgresEventStore, str]:
    """A new store in the test's schema whose sessions carry an application name of their own."""
    name = f"evtest_{uuid.uuid4().hex[:10]}"
    store = PostgresEventStore(
        with_params(application_name=name), schema=postgres_schema(tmp_path), **options
    )
    return store, name


async def admin(sql: str, *args: Any) -> list[asyncpg.Record]:
    """Run ``sql`` on a connection of its own, outside any store."""
    connection = await asyncpg.connect(POSTGRES_DSN)
    try:
        return list(await connection.fetch(sql, *args))
    finally:
        await connection.close()
