"""Child processes for the SQLite crash and multi-process tests (run with ``python -m``).

``crash PATH``: append batches of 5 events forever, printing each acknowledged batch.
``contend PATH WORKER BATCHES STREAMS``: append to shared streams with optimistic concurrency,
then print a JSON summary; any error but ConcurrencyError makes the process fail.
"""

import json
import random
import sys

import anyio

from eventuality import ConcurrencyError, SQLiteEventStore
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


if __name__ == "__main__":
    command, path, *rest = sys.argv[1:]
    if command == "crash":
        anyio.run(crash, path)
    else:
        anyio.run(contend, path, *map(int, rest))
