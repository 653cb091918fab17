"""The command as a real process: SQLite to PostgreSQL and back, a copy killed mid-way and run
again, and ``tail --follow`` seeing an event appended by another process."""

import json
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from eventuality import open_store
from tests.cli._populate import Bulk, assert_same
from tests.cli.conftest import postgres_url, sqlite_url
from tests.conftest import requires_postgres

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "eventuality.cli", *args]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(*args), cwd=ROOT, capture_output=True, text=True, timeout=300)


def populate(url: str, bulk: int = 0) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.cli._populate", url, str(bulk)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr


async def _same(source: str, target: str) -> None:
    async with open_store(source) as a, open_store(target) as b:
        await assert_same(a, b)


async def _count(url: str) -> int:
    async with open_store(url) as store:
        return len([r async for r in store.read_all_records(page_size=5000)])


@requires_postgres
def test_copy_sqlite_to_postgres_and_back(tmp_path: Path) -> None:
    sqlite, postgres, back = (
        sqlite_url(tmp_path),
        postgres_url(tmp_path),
        sqlite_url(tmp_path, "back"),
    )
    populate(sqlite)

    there = run("copy", sqlite, postgres, "--keep", "todo-list")
    again = run("copy", postgres, back, "--keep", "todo-list")

    assert there.returncode == 0, there.stderr
    assert "verify: OK" in there.stdout
    assert again.returncode == 0, again.stderr
    anyio.run(_same, sqlite, postgres)
    anyio.run(_same, postgres, back)


@requires_postgres
def test_a_killed_copy_resumes_to_an_equal_store(tmp_path: Path) -> None:
    sqlite, postgres = sqlite_url(tmp_path), postgres_url(tmp_path)
    populate(sqlite, bulk=20_000)
    total = anyio.run(_count, sqlite)
    copying = subprocess.Popen(command("copy", sqlite, postgres, "--keep", "todo-list"), cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait until some batches are in, then kill it
            if _postgres_rows(postgres) >= 2_000:
                break
            time.sleep(0.02)
    finally:
        copying.send_signal(signal.SIGKILL)
        copying.wait()
    interrupted = _postgres_rows(postgres)

    resumed = run("copy", sqlite, postgres, "--keep", "todo-list")

    assert 0 < interrupted < total
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed: {interrupted} were there" in resumed.stdout
    assert "verify: OK" in resumed.stdout
    assert anyio.run(_count, postgres) == anyio.run(_count, sqlite)
    anyio.run(_same, sqlite, postgres)


def _postgres_rows(url: str) -> int:
    async def count() -> int:
        import asyncpg

        from tests.conftest import POSTGRES_DSN

        schema = url.rsplit("schema=", 1)[1]
        connection = await asyncpg.connect(POSTGRES_DSN)
        try:
            exists = await connection.fetchval(
                "SELECT to_regclass($1) IS NOT NULL", f"{schema}.eventuality_events"
            )
            if not exists:
                return 0
            return int(
                await connection.fetchval(f'SELECT count(*) FROM "{schema}".eventuality_events')
            )
        finally:
            await connection.close()

    return anyio.run(count)


async def _last_position(url: str) -> int:
    async with open_store(url) as store:
        return await store.last_position()


def test_tail_follow_shows_an_event_appended_by_another_process(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    populate(url)
    start = anyio.run(_last_position, url)
    tail = subprocess.Popen(
        command("tail", url, "--from-position", str(start), "--follow", "--json"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:

        async def append() -> None:
            async with open_store(url) as store:
                await store.append("Bulk-9", [Bulk(n=7, text="live")])

        anyio.run(append)
        assert tail.stdout is not None
        ready, _, _ = select.select([tail.stdout], [], [], 60)
        assert ready, "tail --follow printed nothing within a minute"
        line = json.loads(tail.stdout.readline())
    finally:
        tail.kill()
        tail.communicate()  # waits, and closes the pipe

    assert (line["stream_id"], line["payload"]) == ("Bulk-9", {"n": 7, "text": "live"})
