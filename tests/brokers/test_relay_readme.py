"""The README's relay example runs as written (on fresh JetStream names) against NATS."""

import uuid
from contextlib import suppress
from pathlib import Path

from tests._readme import readme_block, run_python
from tests.brokers.conftest import NATS_URL, requires_nats


@requires_nats
async def test_readme_relay_example_publishes_the_todo_event_to_jetstream(tmp_path: Path) -> None:
    import nats
    import nats.js.errors

    tag = uuid.uuid4().hex[:10]
    block = readme_block("relay-example")
    for name in ("TODO_EVENTS", "todo.events"):
        assert name in block
    block = (
        block.replace("TODO_EVENTS", f"TODO_EVENTS_{tag}")
        .replace("todo.events", f"todo{tag}.events")
        .replace("nats://127.0.0.1:4222", NATS_URL)
    )
    (tmp_path / "relay.py").write_text(block)

    try:
        output = run_python(tmp_path, "relay.py")
    finally:
        nc = await nats.connect(NATS_URL)
        with suppress(nats.js.errors.NotFoundError):  # the example failed before it
            await nc.jetstream().delete_stream(f"TODO_EVENTS_{tag}")
        await nc.close()

    assert output == f'todo{tag}.events.TodoCreated todo1 {{"description":"Relayed to NATS"}}\n'
