"""Processes sharing one partitioned projection on PostgreSQL, killed and added while events
are appended: every event is committed once, in stream order, and new processes get work."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio

from eventuality import StreamAppend
from eventuality.stores.postgres import PostgresEventStore
from tests._partition_child import Counted
from tests.conftest import POSTGRES_DSN, postgres_schema, requires_postgres

pytestmark = requires_postgres

ROOT = Path(__file__).resolve().parents[2]
STREAMS = 24
DEADLINE = 40.0  # seconds for each condition waited on; a normal run needs a few


class Children:
    """The child processes of one test, each writing its stderr to a file for the report."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[subprocess.Popen[bytes]] = []
        self.killed: set[int] = set()

    def start(self) -> subprocess.Popen[bytes]:
        errors = open(self.tmp_path / f"child-{len(self.started)}.err", "wb")  # noqa: SIM115
        child = subprocess.Popen(
            [sys.executable, "-m", "tests._partition_child", POSTGRES_DSN, str(self.schema)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
        errors.close()
        self.started.append(child)
        return child

    @property
    def schema(self) -> str:
        return postgres_schema(self.tmp_path)

    def kill(self, child: subprocess.Popen[bytes]) -> None:
        child.send_signal(signal.SIGKILL)
        child.wait()
        self.killed.add(child.pid)

    def live(self) -> list[subprocess.Popen[bytes]]:
        return [c for c in self.started if c.pid not in self.killed]

    def check_alive(self) -> None:
        for index, child in enumerate(self.started):
            if child.pid not in self.killed and child.poll() is not None:
                log = (self.tmp_path / f"child-{index}.err").read_text()
                raise AssertionError(f"child {index} exited with {child.returncode}:\n{log}")

    def stop(self) -> None:
        for child in self.started:
            child.kill()
            child.wait()


async def _wait_until(what: str, condition: object, children: Children) -> None:
    """Poll the async ``condition`` until it is true; fail naming ``what`` after DEADLINE."""
    with anyio.move_on_after(DEADLINE):
        while True:
            children.check_alive()
            if await condition():  # type: ignore[operator]
                return
            await anyio.sleep(0.1)
    raise AssertionError(f"not within {DEADLINE} s: {what}")


async def test_processes_share_sixteen_partitions_through_kills_and_joins(tmp_path: Path) -> None:
    children = Children(tmp_path)
    rounds = 0
    async with PostgresEventStore(POSTGRES_DSN, schema=children.schema, max_size=2) as store:
        async with store.transaction() as tx:
            await tx.execute("CREATE SEQUENCE partition_seq")
            await tx.execute(
                "CREATE TABLE partition_handled (stream TEXT NOT NULL, n INTEGER NOT NULL, "
                "position BIGINT NOT NULL, pid INTEGER NOT NULL, seq BIGINT NOT NULL)"
            )

        async def append_round() -> None:
            nonlocal rounds
            await store.append_streams(
                [
                    StreamAppend(f"s-{k}", [Counted(stream=f"s-{k}", n=rounds)])
                    for k in range(STREAMS)
                ]
            )
            rounds += 1

        async def handled_by(pid: int) -> bool:
            rows = await store.query("SELECT count(*) FROM partition_handled WHERE pid = $1", pid)
            return bool(rows[0][0])

        async def kill_once_it_handled(child: subprocess.Popen[bytes]) -> None:
            async def handled() -> bool:
                await append_round()
                return await handled_by(child.pid)

            await _wait_until(f"process {child.pid} handles events", handled, children)
            children.kill(child)

        try:
            first = [children.start() for _ in range(4)]
            for _ in range(5):
                await append_round()
            await kill_once_it_handled(first[0])
            children.start()
            for _ in range(5):
                await append_round()
            await kill_once_it_handled(first[1])
            for _ in range(3):
                await append_round()
            children.start()
            await kill_once_it_handled(first[2])
            children.start()

            async def every_live_process_handled() -> bool:
                await append_round()
                return all([await handled_by(c.pid) for c in children.live()])

            await _wait_until(
                "every live process handles events", every_live_process_handled, children
            )
            total = rounds * STREAMS

            async def all_handled() -> bool:
                rows = await store.query("SELECT count(*) FROM partition_handled")
                return bool(rows[0][0] >= total)

            await _wait_until(f"{total} events handled", all_handled, children)
            children.check_alive()
            rows = await store.query("SELECT stream, n, pid FROM partition_handled ORDER BY seq")
        finally:
            children.stop()

    assert len(rows) == total
    assert len({(stream, n) for stream, n, _ in rows}) == total
    for k in range(STREAMS):
        assert [n for stream, n, _ in rows if stream == f"s-{k}"] == list(range(rounds))
    pids = {pid for _, _, pid in rows}
    assert pids == {c.pid for c in children.started}
    moved = {s for s in {r[0] for r in rows} if len({p for st, _, p in rows if st == s}) > 1}
    assert moved  # streams whose partition changed owner mid-run, and kept their order
    assert os.getpid() not in pids
