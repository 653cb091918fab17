"""The Todo example of the README: commands in, events out, listeners told, state kept.

Run it twice: the second run finds the todos the first one stored in todo.db.

    python examples/todo.py [path/to/todo.db]
"""

import sys

import anyio

from eventuality import (
    Aggregate,
    Command,
    ConcurrencyError,
    Event,
    EventBus,
    EventStore,
    Flow,
    Repository,
    SQLiteEventStore,
    open_store,
)
from eventuality.stores.base import redact_dsn


class TodoCreated(Event):
    description: str


class TodoCompleted(Event):
    pass


class Todo(Aggregate):
    description: str | None = None
    completed: bool = False

    @classmethod
    def create(cls, id: str, description: str) -> "Todo":
        todo = cls(id=id)
        todo.record(TodoCreated(description=description))
        return todo

    def complete(self) -> list[Event]:
        if self.completed:
            return []  # nothing changes: n = 0 events
        return [self.record(TodoCompleted())]

    def apply(self, event: Event) -> None:
        match event:
            case TodoCreated(description=description):
                self.description = description
            case TodoCompleted():
                self.completed = True


class CreateTodo(Command):
    id: str
    description: str


class MarkAsCompleted(Command):
    id: str


def store_at(where: str) -> EventStore:
    """A SQLite file by path, or any store by URL (postgresql://... once it outgrew one
    machine: ``eventuality copy sqlite:///todo.db postgresql://...`` moves it there)."""
    return open_store(where) if "://" in where else SQLiteEventStore(where)


async def main(path: str) -> None:
    async with store_at(path) as store:
        todos = Repository(Todo, store)
        stored = len([event async for event in store.read_all()])
        print(f"store: {redact_dsn(path)} ({stored} events already stored)")

        async def create_todo(cmd: CreateTodo) -> Todo:
            return await todos.add(id=cmd.id, description=cmd.description)

        async def mark_as_completed(cmd: MarkAsCompleted) -> list[Event]:
            todo = await todos.load(cmd.id)
            return todo.complete()

        read_model: dict[str, str] = {}

        async def update_db(event: TodoCreated) -> None:
            read_model[event.aggregate_id or ""] = event.description
            print(f"    update_db: read model now holds {sorted(read_model)}")

        def log_stuff(event: Event) -> None:
            print(f"    log_stuff: {event.event_type} {event.aggregate_id}")

        bus = EventBus(listeners={TodoCreated: [update_db, log_stuff], TodoCompleted: [log_stuff]})
        flow = Flow(
            store=store,
            bus=bus,
            handlers={CreateTodo: create_todo, MarkAsCompleted: mark_as_completed},
        )

        number = stored // 2 + 1  # two events per todo (positions have gaps on PostgreSQL)
        commands: list[Command] = [
            CreateTodo(id=f"todo{number}", description=f"Create todo number {number}"),
            MarkAsCompleted(id=f"todo{number}"),
            MarkAsCompleted(id=f"todo{number}"),  # already completed: no events
        ]
        for command in commands:
            fields = command.model_dump(exclude={"command_id", "metadata"})
            print(f"> {type(command).__name__}({fields})")
            events = await flow.dispatch(command)
            for event in events:
                print(
                    f"  {event.event_type}: {event.aggregate_id} "
                    f"version {event.aggregate_version}, position {event.position}"
                )
            if not events:
                print("  (no events: nothing changed)")

        try:
            await flow.dispatch(CreateTodo(id=f"todo{number}", description="a second time"))
        except ConcurrencyError as exc:
            print(f"> CreateTodo for an existing id is refused: {exc}")

        print("final state:")
        for n in range(1, number + 1):
            todo = await todos.load(f"todo{n}")
            print(
                f"  {todo.id}: {todo.description!r} completed={todo.completed} "
                f"version={todo.version}"
            )


if __name__ == "__main__":
    anyio.run(main, sys.argv[1] if len(sys.argv) > 1 else "todo.db")
