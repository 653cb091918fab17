"""A command minted in this process is not looked up on its first dispatch (no store can hold
its key yet); every other way of dispatching its id again still finds the first result."""

import anyio

from eventuality import TRUSTED_ENVELOPE, Event, EventStore, Flow, Repository
from tests.domain import CreateTodo, Todo


def _flow(store: EventStore, runs: list[CreateTodo]) -> Flow:
    todos = Repository(Todo, store)
    flow = Flow(store=store)

    @flow.handles(CreateTodo)
    async def create(command: CreateTodo) -> None:
        runs.append(command)
        await todos.add(id=command.id, description=command.description)

    return flow


async def test_the_same_object_copies_and_parsed_copies_all_return_the_first_result(
    store: EventStore,
) -> None:
    runs: list[CreateTodo] = []
    flow = _flow(store, runs)
    command = CreateTodo(id="t1", description="first")
    early_copy = command.model_copy()
    assert "command_id" not in command.model_fields_set

    first = await flow.dispatch(command)
    assert "command_id" in command.model_fields_set
    again = await flow.dispatch(command)
    parsed = await flow.dispatch(
        CreateTodo.model_validate_json(command.model_dump_json(), context=TRUSTED_ENVELOPE)
    )
    late_copy = await flow.dispatch(command.model_copy())

    assert len(runs) == 1
    assert again == parsed == late_copy == first
    copied = await flow.dispatch(early_copy)  # minted with the original: its commit is refused
    assert copied == first
    assert len(runs) == 2
    assert [e.event_id for e in await store.read_stream("Todo-t1")] == [first[0].event_id]


async def test_a_fresh_command_reaching_another_process_first_is_stored_once(
    store: EventStore,
) -> None:
    elsewhere_runs: list[CreateTodo] = []
    here_runs: list[CreateTodo] = []
    command = CreateTodo(id="t2", description="sent before it ran here")
    elsewhere = await _flow(store, elsewhere_runs).dispatch(
        CreateTodo.model_validate_json(command.model_dump_json(), context=TRUSTED_ENVELOPE)
    )

    here = await _flow(store, here_runs).dispatch(command)

    assert here == elsewhere
    assert len(await store.read_stream("Todo-t2")) == 1


async def test_one_fresh_object_dispatched_from_many_tasks_at_once_is_stored_once(
    store: EventStore,
) -> None:
    """The first dispatch of a fresh command takes no in-process turn; the others, no longer
    fresh, still end with the one commit's events."""
    runs: list[CreateTodo] = []
    flow = _flow(store, runs)
    command = CreateTodo(id="t3", description="from many tasks")
    returned: list[list[Event]] = []

    async def dispatch() -> None:
        returned.append(await flow.dispatch(command))

    async with anyio.create_task_group() as group:
        for _ in range(10):
            group.start_soon(dispatch)

    stored = await store.read_stream("Todo-t3")
    assert len(stored) == 1
    assert len(returned) == 10
    assert all(events == returned[0] for events in returned)
    assert [e.event_id for e in returned[0]] == [stored[0].event_id]
