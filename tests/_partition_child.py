"""Child process for the partitioned projection test: run one of the processes that share it.

``python -m tests._partition_child DSN SCHEMA``. Its handler records, in the projection's
transaction, each event's stream, number, position, this process's id and a sequence value,
so the test can see that every event was committed once, in stream order, and by whom.
"""

import os
import sys

import anyio

from eventuality import Event, Projection, Transaction
from eventuality.stores.postgres import PostgresEventStore

PARTITIONS = 16
NAME = "counted"


class Counted(Event):
    stream: str
    n: int


async def project(event: Event, tx: Transaction) -> None:
    if isinstance(event, Counted):
        await tx.execute(
            "INSERT INTO partition_handled (stream, n, position, pid, seq) "
            "VALUES (:stream, :n, :position, :pid, nextval('partition_seq'))",
            stream=event.stream,
            n=event.n,
            position=event.position,
            pid=os.getpid(),
        )


async def main(dsn: str, schema: str) -> None:
    async with PostgresEventStore(dsn, schema=schema, max_size=3) as store:
        projection = Projection(store, NAME, project, partitions=PARTITIONS, batch_size=10)
        print("started", flush=True)
        await projection.run()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2])
