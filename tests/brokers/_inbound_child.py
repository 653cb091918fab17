"""Child process for the inbound crash tests (run with ``python -m``).

``python -m tests.brokers._inbound_child STORE... -- BROKER... -- TOTAL``: consume RenameTodo
commands into the store (``sqlite PATH`` or ``postgres DSN SCHEMA``) from the broker (``nats URL
STREAM SUBJECT DURABLE`` or ``rabbitmq URL QUEUE``) until the log holds the five tallies and
TOTAL renames, then stop gracefully. Every rename records an event: a command committed twice
would show as its description twice.
"""

import sys
from typing import Any

import anyio

from eventuality import CommandConsumer, EventStore, Flow, Repository, SQLiteEventStore
from tests.domain import RenameTodo, Todo

TALLIES = 5


async def renames(store: EventStore) -> int:
    """How many renames the tallies hold (positions are not a count on every store)."""
    versions = [await store.stream_version(f"Todo-tally{t}") for t in range(TALLIES)]
    return sum(versions) - TALLIES


def open_store(args: list[str]) -> EventStore:
    if args[0] == "sqlite":
        return SQLiteEventStore(args[1])
    from eventuality.stores.postgres import PostgresEventStore

    return PostgresEventStore(args[1], schema=args[2])


def make_source(args: list[str]) -> Any:
    if args[0] == "nats":
        from eventuality.brokers.nats_inbound import JetStreamCommandSource

        _, url, stream, subject, durable = args
        return JetStreamCommandSource(
            url, stream=stream, subject=subject, durable=durable, ack_wait=2, fetch_timeout=0.3
        )
    from eventuality.brokers.rabbitmq_inbound import RabbitCommandSource

    return RabbitCommandSource(args[1], queue=args[2], receive_timeout=0.3)


async def main(store_args: list[str], broker_args: list[str], total: int) -> None:
    async with open_store(store_args) as store:
        tallies = Repository(Todo, store)
        flow = Flow(store=store)

        @flow.handles(RenameTodo)
        async def rename(command: RenameTodo) -> None:
            (await tallies.load(command.id)).rename(command.description)

        consumer = CommandConsumer(
            flow, make_source(broker_args), commands=[RenameTodo], max_in_flight=8
        )
        async with consumer:
            while await renames(store) < total:
                await anyio.sleep(0.01)
        print(consumer.statistics(), flush=True)


if __name__ == "__main__":
    raw = sys.argv[1:]
    first, second = raw.index("--"), raw.index("--", raw.index("--") + 1)
    anyio.run(main, raw[:first], raw[first + 1 : second], int(raw[second + 1]))
