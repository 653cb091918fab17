"""Reactions killed with SIGKILL at random moments: restarted, they end with exactly the
effects of one clean pass (SQLite and PostgreSQL, in child processes)."""

import random
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import anyio
import pytest

from eventuality import EventStore, Repository, SQLiteEventStore
from tests.conftest import POSTGRES_DSN, postgres_schema, requires_postgres
from tests.domain import Todo

ROOT = Path(__file__).resolve().parent.parent
INPUTS = 300


def _args(kind: str, tmp_path: Path) -> list[str]:
    if kind == "sqlite":
        return ["sqlite", str(tmp_path / "reaction.db")]
    return ["postgres", POSTGRES_DSN, postgres_schema(tmp_path)]


def _store(args: list[str]) -> EventStore:
    if args[0] == "sqlite":
        return SQLiteEventStore(args[1])
    from eventuality.stores.postgres import PostgresEventStore

    return PostgresEventStore(args[1], schema=args[2])


async def _fill(store: EventStore) -> None:
    await Repository(Todo, store).add(id="tally", description="0")
    for i in range(INPUTS):
        todo = Todo.create(id=f"in{i}", description=str(i))
        await store.append(todo.stream_id, todo.pending_events, expected_version=0)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=requires_postgres)])
async def test_a_reaction_killed_at_random_moments_ends_equal_to_one_clean_pass(
    kind: str, tmp_path: Path
) -> None:
    args = _args(kind, tmp_path)
    command = [sys.executable, "-m", "tests._reaction_child", *args]
    rng = random.Random(12)
    kills = 0
    async with _store(args) as store:
        await _fill(store)
        for _ in range(8):
            child = subprocess.Popen(
                command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            target = (await store.get_checkpoint("follow-ups") or 0) + rng.randint(5, 60)
            while child.poll() is None:
                if (await store.get_checkpoint("follow-ups") or 0) >= target:
                    await anyio.sleep(rng.uniform(0, 0.005))
                    child.send_signal(signal.SIGKILL)
                    kills += 1
                    break
                await anyio.sleep(0.001)
            _, err = child.communicate()
            assert child.returncode in (0, -signal.SIGKILL), err

        final = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)

        assert final.returncode == 0, final.stderr
        assert kills > 0
        tally = await store.read_stream("Todo-tally")
        inputs = {e.event_id: e.aggregate_id async for e in store.read_all() if e.aggregate_id}
        renamed = [e.metadata["causation_id"] for e in tally[1:]]
        assert len(renamed) == len(set(renamed)) == INPUTS
        assert {inputs[uuid.UUID(c)] for c in renamed} == {f"in{i}" for i in range(INPUTS)}
        versions = [await store.stream_version(f"Todo-follow-in{i}") for i in range(INPUTS)]
        assert versions == [1] * INPUTS
        last_input = max((await store.read_stream(f"Todo-in{INPUTS - 1}"))[0].position or 0, 1)
        assert (await store.get_checkpoint("follow-ups") or 0) >= last_input
