"""Child process for the reaction crash tests: run a reaction over the whole log, to the end.

``python -m tests._reaction_child sqlite PATH`` or ``... postgres DSN SCHEMA``. For each created
todo the reaction creates a follow-up todo and renames one shared tally, so an input handled
twice would show as a failed follow-up (it exists) or as one more tally event.
"""

import sys

import anyio

from eventuality import Event, EventStore, Flow, Reaction, Repository, SQLiteEventStore
from tests.domain import CreateTodo, Todo, TodoCreated


def open_store(argv: list[str]) -> EventStore:
    if argv[0] == "sqlite":
        return SQLiteEventStore(argv[1])
    from eventuality.stores.postgres import PostgresEventStore

    return PostgresEventStore(argv[1], schema=argv[2])


def follow_ups(store: EventStore) -> Reaction:
    todos = Repository(Todo, store)
    flow = Flow(store=store)

    @flow.handles(CreateTodo)
    async def create(command: CreateTodo) -> None:
        await todos.add(id=command.id, description=command.description)

    async def react(event: Event) -> None:
        todo_id = event.aggregate_id or ""
        if not isinstance(event, TodoCreated) or not todo_id.startswith("in"):
            return
        await flow.dispatch(CreateTodo(id=f"follow-{todo_id}", description="follow-up"))
        (await todos.load("tally")).rename(todo_id)

    return Reaction(store, "follow-ups", react, flow=flow, event_types=[TodoCreated])


async def main(argv: list[str]) -> None:
    async with open_store(argv) as store:
        print("handled", await follow_ups(store).catch_up(), flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1:])
