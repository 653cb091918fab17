"""Child process for the relay crash test: relay a SQLite store's whole log to JetStream.

``python -m tests.brokers._relay_child PATH NATS_URL STREAM`` publishes from the checkpoint to
the end of the log (small batches, a checkpoint every few of them) and exits.
"""

import sys

import anyio

from eventuality import Relay, SQLiteEventStore
from eventuality.brokers.nats import JetStreamPublisher
from tests.brokers._support import Ticked


async def main(path: str, url: str, stream: str) -> None:
    async with (
        SQLiteEventStore(path) as store,
        JetStreamPublisher(url, stream=stream, subjects=[f"{stream}.>"]) as publisher,
    ):
        relay = Relay(
            store,
            "to-nats",
            publisher,
            prefix=stream,
            batch=50,
            checkpoint_every=200,
            event_types=[Ticked],
        )
        print("published", await relay.catch_up(), flush=True)


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:])
