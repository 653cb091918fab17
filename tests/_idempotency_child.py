"""Child process for the idempotency tests (run with ``python -m``).

``dispatch URL KEY TASKS GO``: open the store at URL, print ``ready``, wait until the file GO
exists, then dispatch the same CreateTodo (rebuilt per dispatch, so each has its own command id)
with idempotency key KEY from TASKS concurrent tasks; print a JSON summary: how often the
handler ran and the event ids each dispatch returned.
"""

import json
import sys
from pathlib import Path

import anyio

from eventuality import Event, Flow, Repository, open_store
from tests.domain import CreateTodo, Todo


async def dispatch(url: str, key: str, tasks: int, go: str) -> None:
    async with open_store(url) as store:
        todos = Repository(Todo, store)
        flow = Flow(store=store)
        runs = 0
        returned: list[list[str]] = []

        @flow.handles(CreateTodo)
        async def create(command: CreateTodo) -> None:
            nonlocal runs
            runs += 1
            await todos.add(id=command.id, description=command.description)

        async def one() -> None:
            events: list[Event] = await flow.dispatch(
                CreateTodo(id="t1", description="once"), idempotency_key=key
            )
            returned.append([str(event.event_id) for event in events])

        print("ready", flush=True)
        while not Path(go).exists():
            await anyio.sleep(0.002)
        async with anyio.create_task_group() as tg:
            for _ in range(tasks):
                tg.start_soon(one)
    print(json.dumps({"runs": runs, "returned": returned}), flush=True)


if __name__ == "__main__":
    command, url, key, tasks, go = sys.argv[1:]
    anyio.run(dispatch, url, key, int(tasks), go)
