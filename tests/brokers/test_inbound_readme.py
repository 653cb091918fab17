"""The README's inbound example runs as written (on fresh JetStream names) against NATS."""

import uuid
from contextlib import suppress
from pathlib import Path

from tests._readme import readme_block, run_python
from tests.brokers._kits import NATS_URL, requires_nats


@requires_nats
async def test_readme_inbound_example_commits_a_command_sent_twice_once(tmp_path: Path) -> None:
    import nats
    import nats.js.errors

    tag = uuid.uuid4().hex[:10]
    block = readme_block("inbound-example")
    for name in ("TODO_COMMANDS", "todo.commands", "todo-service"):
        assert name in block
    block = (
        block.replace("TODO_COMMANDS", f"TODO_{tag}")
        .replace("todo.commands", f"todo.{tag}")
        .replace("todo-service", f"todo-{tag}")
        .replace("nats://127.0.0.1:4222", NATS_URL)
    )
    (tmp_path / "inbound.py").write_text(block)

    try:
        output = run_python(tmp_path, "inbound.py")
    finally:
        nc = await nats.connect(NATS_URL)
        for stream in (f"TODO_{tag}", f"TODO_{tag}_DLQ"):
            with suppress(nats.js.errors.NotFoundError):  # the example failed before it
                await nc.jetstream().delete_stream(stream)
        await nc.close()

    assert output == "Sent through NATS | acknowledged: 1\n"
