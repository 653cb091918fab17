"""Two services through NATS JetStream: the Todo service relays its events; a reviewer, another
process with no event store, reads them and sends a command back. Needs NATS with JetStream at
EVENTUALITY_NATS_URL (default nats://127.0.0.1:4222) and `pip install "eventuality[nats]"`.

    python examples/two_services.py    # the Todo service; it starts `... reviewer RUN` itself
"""

import json
import os
import signal
import sys
import tempfile
import uuid
from contextlib import suppress
from urllib.parse import unquote, urlsplit

import anyio
import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client

from eventuality import (
    Aggregate,
    Command,
    CommandConsumer,
    Event,
    Flow,
    Relay,
    Repository,
    SQLiteEventStore,
)
from eventuality.brokers.nats import JetStreamPublisher
from eventuality.brokers.nats_inbound import JetStreamCommandSource, send_command

NATS_URL = os.environ.get("EVENTUALITY_NATS_URL", "nats://127.0.0.1:4222")
TODOS = {"todo1": "Write the two-service example", "todo2": "Fix it", "todo3": "Read the docs"}


class TodoCreated(Event):
    description: str


class TodoReviewed(Event):
    verdict: str


class Todo(Aggregate):
    description: str | None = None
    verdict: str | None = None

    @classmethod
    def create(cls, id: str, description: str) -> "Todo":
        todo = cls(id=id)
        todo.record(TodoCreated(description=description))
        return todo

    def review(self, verdict: str) -> list[Event]:
        return [self.record(TodoReviewed(verdict=verdict))]

    def apply(self, event: Event) -> None:
        match event:
            case TodoCreated(description=description):
                self.description = description
            case TodoReviewed(verdict=verdict):
                self.verdict = verdict


class CreateTodo(Command):
    id: str
    description: str


class ReviewTodo(Command):  # the command the reviewer sends back
    id: str
    verdict: str


async def reviewer(run: str) -> None:
    """The reviewer: a durable JetStream consumer of the TodoCreated events, nothing more."""
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    created = await js.pull_subscribe(
        f"todo.{run}.events.TodoCreated", durable="reviewer", stream=f"TODO_EVENTS_{run}"
    )
    try:
        while True:
            with suppress(nats.errors.TimeoutError):
                for message in await created.fetch(16, timeout=1):
                    headers = message.headers or {}
                    todo_id = unquote(headers["Eventuality-Aggregate-Id"])
                    words = len(json.loads(message.data)["description"].split())
                    verdict = "approved" if words >= 3 else "needs more detail"
                    # The same event makes the same command (nothing from the clock or the
                    # process in it), with its id as the message id: an event delivered again
                    # sends it again, and the Todo service commits it once.
                    review = ReviewTodo(id=todo_id, verdict=verdict)
                    event_id = headers["Eventuality-Event-Id"]
                    await send_command(
                        js, f"todo.{run}.commands", review, message_id=f"review-{event_id}"
                    )
                    await message.ack()  # after the send: a crash in between sends it again
                    print(f"reviewer (pid {os.getpid()}): {todo_id} {verdict}", flush=True)
    finally:
        with anyio.CancelScope(shield=True):
            await nc.close()


async def reviewer_process(run: str) -> None:
    """Run the reviewer until SIGTERM or Ctrl-C, then close its connection."""
    async with anyio.create_task_group() as group:
        group.start_soon(reviewer, run)
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                group.cancel_scope.cancel()


async def todo_service(store: SQLiteEventStore, nc: Client, run: str) -> None:
    todos = Repository(Todo, store)
    flow = Flow(store=store)

    @flow.handles(CreateTodo)
    async def create_todo(cmd: CreateTodo) -> None:
        await todos.add(id=cmd.id, description=cmd.description)

    @flow.handles(ReviewTodo)
    async def review_todo(cmd: ReviewTodo) -> list[Event]:
        return (await todos.load(cmd.id)).review(cmd.verdict)

    publisher = JetStreamPublisher(NATS_URL, stream=f"TODO_EVENTS_{run}")
    relay = Relay(store, "todo-events-out", publisher, prefix=f"todo.{run}.events")
    source = JetStreamCommandSource(
        nc, stream=f"TODO_COMMANDS_{run}", subject=f"todo.{run}.commands",
        durable="todo-service", dead_letter_subject=f"todo.{run}.dead-letters",
    )  # fmt: skip
    consumer = CommandConsumer(flow, source, commands=[ReviewTodo])
    async with publisher, consumer, anyio.create_task_group() as services:
        services.start_soon(relay.run)  # the consumer runs in the background of `async with`
        child = await anyio.open_process(
            [sys.executable, __file__, "reviewer", run], stdout=None, stderr=None
        )
        print(
            f"todo service (pid {os.getpid()}): started the reviewer (pid {child.pid})", flush=True
        )
        try:
            # The service's own commands come in through its own API (an HTTP route would
            # call flow.dispatch just so); the reviewer's come in through the broker.
            for todo_id, description in TODOS.items():
                await flow.dispatch(CreateTodo(id=todo_id, description=description))
            with anyio.fail_after(30):
                while any([(await todos.load(i)).verdict is None for i in TODOS]):
                    await anyio.sleep(0.1)
        finally:
            child.terminate()
            await child.wait()
        services.cancel_scope.cancel()
    reviews = 0
    for todo in [await todos.load(todo_id) for todo_id in TODOS]:
        reviews += todo.version - 1  # the events after TodoCreated: one TodoReviewed each
        print(f"{todo.id} {todo.description!r}: {todo.verdict}")
    acknowledged = consumer.statistics().acknowledged
    print(f"{len(TODOS)} todos, {reviews} reviews committed, {acknowledged} commands acknowledged")


async def main() -> int:
    address = urlsplit(NATS_URL)
    try:
        with anyio.fail_after(2):
            await (await anyio.connect_tcp(address.hostname or "", address.port or 4222)).aclose()
    except (OSError, TimeoutError):
        print(f"NATS is unreachable at {NATS_URL}: start a NATS server with JetStream "
              "(nats-server -js) or set EVENTUALITY_NATS_URL", file=sys.stderr)  # fmt: skip
        return 2
    run = uuid.uuid4().hex[:8]  # names of this run's own: reruns and parallel runs never meet
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    # The Todo service owns its streams: made before the reviewer subscribes, and (being a
    # demo) deleted at the end.
    await js.add_stream(name=f"TODO_EVENTS_{run}", subjects=[f"todo.{run}.events.>"])
    try:
        with tempfile.TemporaryDirectory() as folder:
            async with SQLiteEventStore(os.path.join(folder, "todo.db")) as store:
                await todo_service(store, nc, run)
    finally:
        for stream in (f"TODO_EVENTS_{run}", f"TODO_COMMANDS_{run}", f"TODO_COMMANDS_{run}_DLQ"):
            with suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(stream)
        await nc.close()
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["reviewer"]:
        anyio.run(reviewer_process, sys.argv[2])
    else:
        sys.exit(anyio.run(main))
