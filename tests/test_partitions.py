"""Partitioned subscriptions on every store: which partition a stream falls in, every event
handled once and in stream order, the stored partition count, read-your-writes, statistics."""

import zlib
from collections import Counter, defaultdict
from pathlib import Path

import anyio
import pytest

from eventuality import (
    Event,
    EventStore,
    PartitionsChanged,
    Projection,
    Subscription,
    SubscriptionRunner,
    Transaction,
    partition_of,
    wait_for_subscriptions,
)
from eventuality._partitions import Partitions
from tests._readme import readme_block, run_python
from tests.conftest import make_store


class Numbered(Event):
    stream: str
    n: int


async def fill(store: EventStore, streams: int, each: int, prefix: str = "s") -> list[Event]:
    """``streams`` streams of ``each`` events, appended round-robin so that they interleave."""
    stored: list[Event] = []
    for n in range(each):
        for s in range(streams):
            stream = f"{prefix}-{s}"
            stored += await store.append(stream, [Numbered(stream=stream, n=n)])
    return stored


def test_partition_of_is_crc32_of_the_utf8_stream_id() -> None:
    assert [partition_of(f"order-{i}", 16) for i in range(6)] == [
        zlib.crc32(f"order-{i}".encode()) % 16 for i in range(6)
    ]
    assert partition_of("Todo-1", 16) == 2
    assert partition_of("Todo-2", 16) == 8
    assert partition_of("crème brûlée", 7) == 3
    assert partition_of("\ud800 lone surrogate", 3) in range(3)


def test_every_stream_falls_in_exactly_one_partition_and_every_partition_gets_streams() -> None:
    streams = [f"stream-{i}" for i in range(2000)]

    counts = Counter(partition_of(s, 16) for s in streams)

    assert sorted(counts) == list(range(16))
    assert min(counts.values()) > 2000 / 16 / 2
    assert all(partition_of(s, 1) == 0 for s in streams[:50])


@pytest.mark.parametrize("bad", [0, -1, 1025, 2.5, True, "4", None])
def test_bad_partition_counts_are_refused_with_the_range(bad: object) -> None:
    with pytest.raises(ValueError, match=r"partitions must be an int from 1 to 1024"):
        partition_of("s", bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -3, 2000, 1.5, False, "2"])
async def test_a_subscription_refuses_bad_partition_counts(bad: object) -> None:
    from eventuality import InMemoryEventStore

    async with InMemoryEventStore() as store:
        with pytest.raises(ValueError, match=r"partitions must be an int from 1 to 1024"):
            Subscription(store, "s", print, partitions=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"partitions must be an int from 1 to 1024"):
            Projection(store, "p", _project, partitions=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [(4, 4), (-1, 4), (0, 0), (1,), "0/4"])
async def test_read_all_refuses_a_partition_outside_its_count(bad: object) -> None:
    from eventuality import InMemoryEventStore

    async with InMemoryEventStore() as store:
        with pytest.raises(ValueError, match="partition"):
            store.read_all(partition=bad)  # type: ignore[arg-type]


async def test_read_all_of_a_partition_holds_its_streams_in_log_order(store: EventStore) -> None:
    stored = await fill(store, streams=12, each=3)

    parts = [[e async for e in store.read_all(partition=(i, 3), page_size=5)] for i in range(3)]

    assert sorted(e.position or 0 for part in parts for e in part) == [e.position for e in stored]
    for i, part in enumerate(parts):
        assert all(partition_of(e.stream, 3) == i for e in part if isinstance(e, Numbered))
        assert [e.position or 0 for e in part] == sorted(e.position or 0 for e in part)


async def test_each_event_is_handled_once_in_stream_order(store: EventStore) -> None:
    stored = await fill(store, streams=20, each=5)
    seen: list[tuple[str, int]] = []

    async def handle(event: Numbered) -> None:
        seen.append((event.stream, event.n))

    handled = await Subscription(store, "numbers", handle, partitions=4).catch_up()

    assert handled == len(stored) == len(seen) == len(set(seen))
    by_stream: dict[str, list[int]] = defaultdict(list)
    for stream, n in seen:
        by_stream[stream].append(n)
    assert all(ns == list(range(5)) for ns in by_stream.values())
    assert len(by_stream) == 20


async def test_partitions_keep_checkpoints_of_their_own_and_continue_from_them(
    store: EventStore,
) -> None:
    await fill(store, streams=8, each=2)
    seen: list[int] = []

    async def handle(event: Numbered) -> None:
        seen.append(event.position or 0)

    first = Subscription(store, "numbers", handle, partitions=3)
    await first.catch_up()
    more = await fill(store, streams=8, each=1, prefix="t")
    second = Subscription(store, "numbers", handle, partitions=3)
    again = await second.catch_up()

    last = await store.last_position()
    assert again == len(more)
    assert len(seen) == len(set(seen)) == 24
    assert [await store.get_checkpoint(f"numbers#{i}/3") for i in range(3)] == [last] * 3
    assert await store.get_checkpoint("numbers#partitions") == 3


async def test_another_partition_count_for_a_stored_name_is_refused(store: EventStore) -> None:
    await fill(store, streams=3, each=1)
    await Subscription(store, "numbers", _ignore, partitions=4).catch_up()

    with pytest.raises(PartitionsChanged, match=r"keeps its checkpoints in 4 partitions") as info:
        await Subscription(store, "numbers", _ignore, partitions=8).catch_up()
    with pytest.raises(PartitionsChanged, match=r"asks for no partitions"):
        await Subscription(store, "numbers", _ignore).catch_up()

    assert (info.value.stored, info.value.asked) == (4, 8)
    assert await store.get_checkpoint("numbers#0/8") is None


async def test_partitions_start_from_the_unpartitioned_checkpoint_of_their_name(
    store: EventStore,
) -> None:
    await fill(store, streams=4, each=2)
    await Subscription(store, "numbers", _ignore).catch_up()
    later = await fill(store, streams=4, each=1, prefix="t")
    seen: list[int] = []

    async def handle(event: Numbered) -> None:
        seen.append(event.position or 0)

    await Subscription(store, "numbers", handle, partitions=2).catch_up()

    assert sorted(seen) == [e.position for e in later]


async def test_a_partitioned_projection_commits_each_event_once(
    store: EventStore, tmp_path: Path
) -> None:
    stored = await fill(store, streams=10, each=4)
    projection = Projection(store, "rows", _project, setup=_create_rows, partitions=4, batch_size=3)

    await projection.catch_up()
    rows = await store.query("SELECT stream, n FROM numbered_rows ORDER BY seq")

    assert len(rows) == len(set(rows)) == len(stored)
    for s in range(10):
        assert [n for stream, n in rows if stream == f"s-{s}"] == [0, 1, 2, 3]


async def test_wait_for_a_running_partitioned_projection_sees_every_write(
    store: EventStore,
) -> None:
    await fill(store, streams=5, each=2)
    projection = Projection(store, "rows", _project, setup=_create_rows, partitions=4)

    async with SubscriptionRunner(projection):
        for round in range(3):
            stored = await fill(store, streams=6, each=1, prefix=f"r{round}")
            await wait_for_subscriptions(store, ["rows"], stored[-1].position or 0, timeout=30)
            rows = await store.query("SELECT count(*) FROM numbered_rows")
            assert rows[0][0] == 10 + 6 * (round + 1)
        statistics = projection.statistics()

    assert statistics.handled == 28
    assert [p.name for p in statistics.partitions] == [f"rows#{i}/4" for i in range(4)]
    assert statistics.position == min(p.position for p in statistics.partitions)


async def test_wait_for_a_partitioned_name_from_another_store_object_reads_its_checkpoints(
    store_kind: str, tmp_path: Path
) -> None:
    if store_kind in ("memory", "sqlite-memory"):
        pytest.skip("two store objects share data only on durable stores")
    runner_store, other = make_store(store_kind, tmp_path), make_store(store_kind, tmp_path)
    async with runner_store, other:
        subscription = Subscription(runner_store, "numbers", _ignore, partitions=3)
        async with SubscriptionRunner(subscription):
            # Another process knows the name once the runner has stored its partition count (a
            # wait that starts earlier is refused as a misspelt name, partitioned or not).
            with anyio.fail_after(30):
                while await other.get_checkpoint("numbers#partitions") is None:
                    await anyio.sleep(0.01)
            stored = await fill(other, streams=4, each=2)
            await wait_for_subscriptions(other, ["numbers"], stored[-1].position or 0)
            checkpoints = [await other.get_checkpoint(f"numbers#{i}/3") for i in range(3)]

    assert min(c or 0 for c in checkpoints) >= (stored[-1].position or 0)


async def test_a_handler_error_in_one_partition_stops_run_with_that_error(
    store: EventStore,
) -> None:
    await fill(store, streams=6, each=2)

    async def handle(event: Numbered) -> None:
        if event.stream == "s-4" and event.n == 1:
            raise RuntimeError("broken s-4")

    subscription = Subscription(store, "numbers", handle, partitions=4)
    with anyio.fail_after(30), pytest.raises(RuntimeError, match="broken s-4"):
        await subscription.run()

    failed = f"numbers#{partition_of('s-4', 4)}/4"
    assert subscription.statistics().error is not None
    assert await store.get_checkpoint(failed) is not None
    position = await store.last_position()
    with pytest.raises(Exception, match="broken s-4"):
        await wait_for_subscriptions(store, ["numbers"], position, timeout=5)


async def test_the_one_process_stores_run_every_partition_in_this_process(
    store_kind: str, tmp_path: Path
) -> None:
    if store_kind == "postgres":
        pytest.skip("PostgreSQL shares partitions between processes")
    async with make_store(store_kind, tmp_path) as store:
        await fill(store, streams=8, each=1)
        subscription = Subscription(store, "numbers", _ignore, partitions=5)
        async with SubscriptionRunner(subscription):
            await wait_for_subscriptions(store, ["numbers"], await store.last_position())
            running = [p.running for p in subscription.statistics().partitions]

    assert running == [True] * 5


def test_a_partition_runs_as_a_copy_named_after_it() -> None:
    from eventuality import InMemoryEventStore

    subscription = Subscription(InMemoryEventStore(), "numbers", _ignore, partitions=3)
    partitions = subscription._partitions
    assert isinstance(partitions, Partitions)

    worker = partitions.worker(2)

    assert (worker.name, worker._partition, worker.handler) == ("numbers#2/3", (2, 3), _ignore)
    assert partitions.worker(2) is worker
    assert subscription.name == "numbers"


async def _ignore(event: Event) -> None:
    pass


async def _create_rows(tx: Transaction) -> None:
    await tx.execute(
        "CREATE TABLE IF NOT EXISTS numbered_rows (seq INTEGER NOT NULL, stream TEXT NOT NULL, "
        "n INTEGER NOT NULL, UNIQUE (stream, n))"
    )


async def _project(event: Event, tx: Transaction) -> None:
    if isinstance(event, Numbered):
        await tx.execute(
            "INSERT INTO numbered_rows (seq, stream, n) "
            "SELECT coalesce(max(seq), 0) + 1, :stream, :n FROM numbered_rows",
            stream=event.stream,
            n=event.n,
        )


def test_the_readme_partitions_example_runs(tmp_path: Path) -> None:
    (tmp_path / "partitions_example.py").write_text(readme_block("partitions-example"))

    output = run_python(tmp_path, "partitions_example.py")

    assert output.strip() == "[('account-0', 2), ('account-1', 0), ('account-2', 2)]"
