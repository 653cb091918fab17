"""examples/two_services.py runs as the README says, and its reviewer's commands commit once
even when the Todo service's events reach it twice."""

import os
import re
import socket
import subprocess
import sys
import uuid
from contextlib import suppress
from pathlib import Path
from typing import Any

import anyio

from eventuality import Command, CommandConsumer, Event, Flow, Relay, Repository, SQLiteEventStore
from tests._readme import README
from tests.brokers._kits import NATS_URL, requires_nats
from tests.domain import Todo

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "two_services.py"


def run_example(nats_url: str) -> subprocess.CompletedProcess[str]:
    """Run the command the README gives, from the repository's root."""
    block = re.search(r"<!-- two-services -->\n```sh\n(.*?)```", README.read_text(), re.DOTALL)
    assert block is not None, "README.md lost its two-services block"
    assert block.group(1).strip() == "python examples/two_services.py"
    return subprocess.run(
        [sys.executable, "examples/two_services.py"],
        cwd=ROOT,
        env={**os.environ, "EVENTUALITY_NATS_URL": nats_url},
        capture_output=True,
        text=True,
        timeout=120,
    )


@requires_nats
def test_two_services_example_reviews_each_todo_once_in_another_process() -> None:
    done = run_example(NATS_URL)

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    started = re.fullmatch(
        r"todo service \(pid (\d+)\): started the reviewer \(pid (\d+)\)", lines[0]
    )
    assert started is not None, done.stdout
    assert started[1] != started[2]  # two processes
    assert sorted(line for line in lines if line.startswith("reviewer")) == [
        f"reviewer (pid {started[2]}): todo1 approved",
        f"reviewer (pid {started[2]}): todo2 needs more detail",
        f"reviewer (pid {started[2]}): todo3 approved",
    ]
    assert lines[-4:] == [
        "todo1 'Write the two-service example': approved",
        "todo2 'Fix it': needs more detail",
        "todo3 'Read the docs': approved",
        "3 todos, 3 reviews committed, 3 commands acknowledged",
    ]
    assert len(lines) == 8


def test_two_services_example_says_what_to_start_when_nats_is_unreachable() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        url = f"nats://127.0.0.1:{unused.getsockname()[1]}"

    done = run_example(url)

    assert done.returncode == 2
    assert done.stdout == ""
    assert f"NATS is unreachable at {url}" in done.stderr
    assert "nats-server -js" in done.stderr


def test_readme_excerpt_of_the_reviewer_is_the_example_s_code() -> None:
    block = re.search(
        r"<!-- two-services-reviewer -->\n```python\n(.*?)```", README.read_text(), re.DOTALL
    )
    assert block is not None, "README.md lost its two-services-reviewer block"
    example = [line.strip() for line in EXAMPLE.read_text().splitlines()]
    for line in block.group(1).splitlines():
        if line.strip() and line.strip() != "...":
            assert line.strip() in example, f"the README's excerpt has {line!r}, the example not"


class ReviewTodo(Command):  # the reviewer's command, as the example's Todo service takes it
    id: str
    verdict: str


async def run_reviewer(run: str, js: Any, commands: str, until: int) -> None:
    """The example's reviewer process, until the command stream holds ``until`` messages."""
    reviewer = await anyio.open_process(
        [sys.executable, str(EXAMPLE), "reviewer", run],
        env={**os.environ, "EVENTUALITY_NATS_URL": NATS_URL},
        stdout=subprocess.DEVNULL,
        stderr=None,
    )
    try:
        with anyio.fail_after(30):
            while (await js.stream_info(commands)).state.messages < until:
                await anyio.sleep(0.05)
    finally:
        reviewer.terminate()
        assert await reviewer.wait() == 0  # it closed its connection and left on SIGTERM


@requires_nats
async def test_an_event_delivered_again_sends_the_same_command_which_commits_once(
    tmp_path: Path,
) -> None:
    import nats
    import nats.js.errors

    from eventuality.brokers.nats import JetStreamPublisher
    from eventuality.brokers.nats_inbound import JetStreamCommandSource

    run = uuid.uuid4().hex[:8]
    events, commands = f"TODO_EVENTS_{run}", f"TODO_COMMANDS_{run}"
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    # The example's streams; the commands' duplicate window is short, so JetStream keeps a
    # repeat and only the flow's memory of message ids stands between it and a second commit.
    await js.add_stream(name=events, subjects=[f"todo.{run}.events.>"])
    await js.add_stream(name=commands, subjects=[f"todo.{run}.commands"], duplicate_window=0.2)
    try:
        async with SQLiteEventStore(str(tmp_path / "todo.db")) as store:
            todos = Repository(Todo, store)  # tests.domain's TodoCreated has the example's shape
            await todos.add(id="todo1", description="Write the two-service test")
            await todos.add(id="todo2", description="Fix it")
            async with JetStreamPublisher(NATS_URL, stream=events) as publisher:
                await Relay(store, "out", publisher, prefix=f"todo.{run}.events").catch_up()

            await run_reviewer(run, js, commands, until=2)
            await js.delete_consumer(events, "reviewer")  # it lost its place: all comes again
            await anyio.sleep(0.3)  # past the duplicate window
            await run_reviewer(run, js, commands, until=4)

            sent = [await js.get_msg(commands, seq) for seq in range(1, 5)]
            ids = [(msg.headers or {})["Nats-Msg-Id"] for msg in sent]
            assert ids[:2] == ids[2:]  # the same commands, by the same message ids
            flow = Flow(store=store)

            @flow.handles(ReviewTodo)
            async def review(cmd: ReviewTodo) -> list[Event]:
                todo = await todos.load(cmd.id)  # a rename per commit: a second one would show
                return todo.rename(f"{todo.description} ({cmd.verdict})")

            source = JetStreamCommandSource(
                nc, stream=commands, subject=f"todo.{run}.commands", durable="todo-service",
                dead_letter_subject=f"todo.{run}.dead-letters", fetch_timeout=0.3,
            )  # fmt: skip
            consumer = CommandConsumer(flow, source, commands=[ReviewTodo])
            async with consumer:
                with anyio.fail_after(30):
                    while consumer.statistics().acknowledged < 4:
                        await anyio.sleep(0.05)

            assert consumer.statistics().dead_lettered == 0
            assert [await store.stream_version(f"Todo-todo{n}") for n in (1, 2)] == [2, 2]
            assert (
                await todos.load("todo1")
            ).description == "Write the two-service test (approved)"
            assert (await todos.load("todo2")).description == "Fix it (needs more detail)"
    finally:
        for stream in (events, commands, f"{commands}_DLQ"):
            with suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(stream)
        await nc.close()
