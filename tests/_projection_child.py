"""Child process for the projection crash test: run an exactly-once projection to the end.

``python -m tests._projection_child PATH BATCH``. The read model counts events per todo and
records every position under a primary key, so handling an event twice would be caught.
"""

import sys

import anyio

from eventuality import Event, Projection, SQLiteEventStore, Transaction
from tests import domain  # noqa: F401  (registers the event types the store holds)


async def project(event: Event, tx: Transaction) -> None:
    await tx.execute(
        "INSERT INTO todo_counts (id, n) VALUES (?, 1) ON CONFLICT (id) DO UPDATE SET n = n + 1",
        event.aggregate_id,
    )
    await tx.execute("INSERT INTO todo_seen (position) VALUES (?)", event.position)


async def setup(tx: Transaction) -> None:
    await tx.execute(
        "CREATE TABLE IF NOT EXISTS todo_counts (id TEXT PRIMARY KEY, n INTEGER NOT NULL)"
    )
    await tx.execute("CREATE TABLE IF NOT EXISTS todo_seen (position INTEGER PRIMARY KEY)")


async def main(path: str, batch: int) -> None:
    async with SQLiteEventStore(path) as store:
        projection = Projection(store, "todo-counts", project, batch_size=batch, setup=setup)
        print("handled", await projection.catch_up(), flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], int(sys.argv[2]))
