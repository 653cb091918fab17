"""Child processes for the PostgreSQL tests (run with ``python -m``).

``append DSN SCHEMA WORKER BATCHES TASKS``: TASKS concurrent tasks append BATCHES batches of three
events each, some to shared streams; prints a JSON summary.
``follow DSN SCHEMA NAME``: runs subscription NAME, printing each handled position.
"""

import json
import random
import sys

import anyio

from eventuality import ConcurrencyError, Event, Subscription
from eventuality.stores.postgres import PostgresEventStore
from tests.domain import TodoCreated


async def append(dsn: str, schema: str, worker: int, batches: int, tasks: int) -> None:
    committed = conflicts = 0

    async def run(task: int) -> None:
        nonlocal committed, conflicts
        for batch in range(batches):
            stream = f"shared-{random.randrange(3)}" if batch % 3 == 0 else f"own-{worker}-{task}"
            version = await store.stream_version(stream)
            events = [TodoCreated(description=f"{worker}/{task}/{batch}/{i}") for i in range(3)]
            try:
                await store.append(stream, events, expected_version=version)
            except ConcurrencyError:
                conflicts += 1
            else:
                committed += 3

    async with PostgresEventStore(dsn, schema=schema) as store, anyio.create_task_group() as tg:
        for task in range(tasks):
            tg.start_soon(run, task)
    print(json.dumps({"committed": committed, "conflicts": conflicts}))


async def follow(dsn: str, schema: str, name: str) -> None:
    async def handle(event: Event) -> None:
        print(f"handled {event.position}", flush=True)

    async with PostgresEventStore(dsn, schema=schema) as store:
        print("started", flush=True)
        await Subscription(store, name, handle, checkpoint_every=1).run()


if __name__ == "__main__":
    command, dsn, schema, *rest = sys.argv[1:]
    if command == "append":
        anyio.run(append, dsn, schema, *map(int, rest))
    else:
        anyio.run(follow, dsn, schema, rest[0])
