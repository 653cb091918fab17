"""Child processes for the SQLite crash and multi-process tests (run with ``python -m``).

``crash PATH``: append batches of 5 events forever, printing each acknowledged batch.
``contend PATH WORKER BATCHES STREAMS``: append to shared streams with optimistic concurrency,
then print a JSON summary; any error but ConcurrencyError makes the process fail.
``project PATH NAME UNTIL``: run Projection NAME, which inserts each event's position into the
``seen`` table and prints ``handled POSITION``; exit once its checkpoint reaches UNTIL (0: never).
``open PATH BUSY_TIMEOUT``: open the store and print ``opened``, or the error's type and message;
the process must then exit by itself.
"""

import json
import random
import sys

import anyio

from eventuality import (
    ConcurrencyError,
    Event,
    EventualityError,
    Projection,
    SQLiteEventStore,
    Transaction,
)
from tests.domain import TodoCreated, TodoRenamed

BATCH = 5


async def crash(path: str) -> None:
    async with SQLiteEventStore(path) as store:
        batch = 0
        while True:
            batch += 1
            events = [
                TodoRenamed(description=f"b{batch}-{i}", metadata={"batch": batch})
                for i in range(BATCH)
            ]
            stored = await store.append(f"crash-{batch % 7}", events)
            print(f"ack {batch} {stored[-1].position}", flush=True)


async def contend(path: str, worker: int, batches: int, streams: int) -> None:
    committed = conflicts = 0
    async with SQLiteEventStore(path, busy_timeout=30) as store:
        for batch in range(batches):
            stream = f"shared-{random.randrange(streams)}" if batch % 2 else f"own-{worker}"
            version = await store.stream_version(stream)
            events = [TodoCreated(description=f"w{worker}b{batch}e{i}") for i in range(3)]
            try:
                await store.append(stream, events, expected_version=version)
            except ConcurrencyError:
                conflicts += 1
            else:
                committed += len(events)
    print(json.dumps({"worker": worker, "committed": committed, "conflicts": conflicts}))


async def project(path: str, name: str, until: int) -> None:
    async def handle(event: Event, tx: Transaction) -> None:
        await tx.execute("INSERT INTO seen (position) VALUES (?)", event.position)
        print(f"handled {event.position}", flush=True)

    async with SQLiteEventStore(path, busy_timeout=30) as store:
        projection = Projection(store, name, handle)
        print("started", flush=True)
        async with anyio.create_task_group() as tg:
            tg.start_soon(projection.run)
            while until == 0 or (await store.get_checkpoint(name) or 0) < until:
                await anyio.sleep(0.02)
            tg.cancel_scope.cancel()


async def open_only(path: str, busy_timeout: float) -> None:
    try:
        async with SQLiteEventStore(path, busy_timeout=busy_timeout):
            print("opened", flush=True)
    except EventualityError as exc:
        print(type(exc).__name__, exc, flush=True)


if __name__ == "__main__":
    command, path, *rest = sys.argv[1:]
    if command == "crash":
        anyio.run(crash, path)
    elif command == "contend":
        anyio.run(contend, path, *map(int, rest))
    elif command == "project":
        anyio.run(project, path, rest[0], int(rest[1]))
    else:
        anyio.run(open_only, path, float(rest[0]))
