"""A consumer process killed with SIGKILL at random moments mid-stream and restarted: every
command is committed exactly once, nothing is dead-lettered and the broker ends empty."""

import random
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from eventuality import CommandConsumer, EventStore, Flow, Repository, SQLiteEventStore
from tests.brokers._inbound_child import TALLIES, renames
from tests.brokers._kits import BROKERS, Kit, open_kit
from tests.conftest import POSTGRES_DSN, postgres_schema, requires_postgres
from tests.domain import RenameTodo, Todo, TodoRenamed

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = 300


def _store_args(kind: str, tmp_path: Path) -> list[str]:
    if kind == "sqlite":
        return ["sqlite", str(tmp_path / "inbound.db")]
    return ["postgres", POSTGRES_DSN, postgres_schema(tmp_path)]


def _store(args: list[str]) -> EventStore:
    if args[0] == "sqlite":
        return SQLiteEventStore(args[1])
    from eventuality.stores.postgres import PostgresEventStore

    return PostgresEventStore(args[1], schema=args[2])


async def _drain(kit: Kit, store: EventStore) -> None:
    """Consume in this process until the broker holds nothing (redeliveries of commands the
    killed children committed but never acknowledged)."""
    tallies = Repository(Todo, store)
    flow = Flow(store=store)

    @flow.handles(RenameTodo)
    async def rename(command: RenameTodo) -> None:
        (await tallies.load(command.id)).rename(command.description)

    consumer = CommandConsumer(flow, kit.source(), commands=[RenameTodo], max_in_flight=8)
    async with consumer:
        quiet = 0
        while quiet < 3:
            idle = consumer.statistics().in_flight == 0 and await kit.held() == 0
            quiet = quiet + 1 if idle else 0
            await anyio.sleep(0.1)
    assert consumer.statistics().dead_lettered == 0


@pytest.mark.slow
@pytest.mark.parametrize("broker", BROKERS)
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=requires_postgres)])
async def test_a_consumer_killed_mid_stream_and_restarted_commits_every_command_once(
    broker: str, kind: str, tmp_path: Path
) -> None:
    store_args = _store_args(kind, tmp_path)
    rng = random.Random(15)
    kills = 0
    async with open_kit(broker) as kit, _store(store_args) as store:
        for t in range(TALLIES):
            await Repository(Todo, store).add(id=f"tally{t}", description="start")
        for i in range(COMMANDS):
            command = RenameTodo(id=f"tally{i % TALLIES}", description=str(i))
            await kit.send(command, message_id=f"c{i}")
        command_line = [
            sys.executable, "-m", "tests.brokers._inbound_child",
            *store_args, "--", *kit.child_args(), "--", str(COMMANDS),
        ]  # fmt: skip
        for _ in range(5):
            child = subprocess.Popen(
                command_line, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            target = await renames(store) + rng.randint(10, 50)
            while child.poll() is None:
                if await renames(store) >= target:
                    await anyio.sleep(rng.uniform(0, 0.01))
                    child.send_signal(signal.SIGKILL)
                    kills += 1
                    break
                await anyio.sleep(0.002)
            _, err = child.communicate()
            assert child.returncode in (0, -signal.SIGKILL), err

        final = subprocess.run(command_line, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert final.returncode == 0, final.stderr
        await _drain(kit, store)

        renamed = [
            event.description
            async for event in store.read_all(event_types=[TodoRenamed])
            if isinstance(event, TodoRenamed)
        ]
        assert kills > 0
        assert sorted(renamed, key=int) == [str(i) for i in range(COMMANDS)]
        assert await kit.dead_letters() == []
        assert await kit.held() == 0
