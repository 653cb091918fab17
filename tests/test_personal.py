"""Personal data: declarations checked at class definition, every read path masked after
``forget`` (repositories, snapshots, subscriptions, projections rebuilt from zero), and the
plaintext absent from what the database keeps. The store-level rules are the shipped contract
(``eventuality.testing.contract.personal``); these are the rest."""

import re
import sqlite3
import sys
import uuid
from contextlib import closing
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import pytest

from eventuality import (
    Aggregate,
    Event,
    EventSchemaError,
    EventStore,
    PersonalData,
    Projection,
    Repository,
    SQLiteEventStore,
    StoreUsageError,
    Subscription,
    Transaction,
    UnsupportedOperation,
)
from tests.conftest import POSTGRES_DSN, make_store, postgres_schema, requires_postgres
from tests.domain import TodoCreated
from tests.stores.log_only import LogOnlyStore


class CustomerRegistered(Event):
    __personal_subject__ = "customer_id"

    customer_id: str
    name: Annotated[str, PersonalData]
    email: Annotated[str, PersonalData(mask="forgotten@invalid")]
    plan: str


class CustomerRenamed(Event):
    __personal_subject__ = "aggregate_id"

    name: Annotated[str, PersonalData]


class Customer(Aggregate):
    name: str | None = None
    email: str | None = None
    plan: str | None = None

    @classmethod
    def create(cls, id: str, name: str, email: str) -> "Customer":
        customer = cls(id=id)
        customer.record(CustomerRegistered(customer_id=id, name=name, email=email, plan="gold"))
        return customer

    def rename(self, name: str) -> None:
        self.record(CustomerRenamed(name=name))

    def apply(self, event: Event) -> None:
        match event:
            case CustomerRegistered(name=name, email=email, plan=plan):
                self.name, self.email, self.plan = name, email, plan
            case CustomerRenamed(name=name):
                self.name = name


NAME, EMAIL = "Ada Lovelace-Byron", "ada.lovelace@example.org"


# Declarations fail at class definition, naming what to do


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("email: Annotated[str, PersonalData]", "names no subject"),
        (
            "__personal_subject__ = 'customer'\n    email: Annotated[str, PersonalData]",
            "names no field of the event",
        ),
        (
            "__personal_subject__ = 'email'\n    email: Annotated[str, PersonalData]",
            "names a PersonalData field",
        ),
        (
            "__personal_subject__ = 'c'\n    c: str | None\n"
            "    email: Annotated[str, PersonalData]",
            "must be a str, int or UUID",
        ),
        (
            "__personal_subject__ = 'c'\n    c: str\n    age: Annotated[int, PersonalData]",
            "has no default mask",
        ),
        (
            "__personal_subject__ = 'c'\n    c: str\n"
            "    age: Annotated[int, PersonalData(mask='x')]",
            "does not fit the field's type",
        ),
        (
            "__personal_subject__ = 'c'\n    c: str\n"
            "    code: Annotated[str, PersonalData(mask='toolong'), Field(max_length=3)]",
            "does not fit the field's type",
        ),
        (
            "__personal_subject__ = 'c'\n    c: str\n    tags: list[Annotated[str, PersonalData]]",
            "only a whole payload field",
        ),
    ],
)
def test_a_bad_personal_data_declaration_fails_at_class_definition(body: str, message: str) -> None:
    namespace: dict[str, Any] = {"Annotated": Annotated, "PersonalData": PersonalData}
    source = f"from pydantic import Field\nclass Bad(Event):\n    {body}\n"

    with pytest.raises(TypeError, match=message):
        exec(source, {**namespace, "Event": Event})


def test_masks_default_by_type_and_are_checked_against_it() -> None:
    class Defaults(Event):
        __personal_subject__ = "ref"

        ref: uuid.UUID
        text: Annotated[str, PersonalData]
        maybe: Annotated[int | None, PersonalData]
        count: Annotated[int, PersonalData(mask="0")]

    assert Defaults.__personal_fields__ == {"text": "[erased]", "maybe": None, "count": 0}


def test_a_subclass_inherits_the_subject_and_the_personal_fields() -> None:
    class Upgraded(CustomerRegistered):
        phone: Annotated[str, PersonalData] = ""

    assert Upgraded.__personal_subject__ == "customer_id"
    assert set(Upgraded.__personal_fields__) == {"name", "email", "phone"}


# Every read path after forget


async def test_repository_load_after_forget_shows_the_masks(store: EventStore) -> None:
    customers = Repository(Customer, store)
    customer = await customers.add(id="c1", name=NAME, email=EMAIL)
    customer.rename("Ada King")
    await customers.save(customer)

    await store.forget("c1")

    loaded = await customers.load("c1")
    assert (loaded.name, loaded.email, loaded.plan, loaded.version) == (
        "[erased]",
        "forgotten@invalid",
        "gold",
        2,
    )


async def test_forget_removes_snapshots_and_later_loads_never_show_the_data(
    store: EventStore,
) -> None:
    customers = Repository(Customer, store, snapshot_every=1)
    await customers.add(id="c1", name=NAME, email=EMAIL)
    assert await store.load_snapshot("Customer-c1") is not None

    await store.forget("c1")

    assert await store.load_snapshot("Customer-c1") is None
    loaded = await customers.load("c1")
    loaded.rename("Someone")
    await customers.save(loaded)  # snapshot_every=1: a save would snapshot, but not this stream
    assert await store.load_snapshot("Customer-c1") is None
    assert (await customers.load("c1")).email == "forgotten@invalid"


async def test_a_subscription_after_forget_sees_the_masks(store: EventStore) -> None:
    await Repository(Customer, store).add(id="c1", name=NAME, email=EMAIL)
    await store.forget("c1")
    seen: list[tuple[str, str]] = []

    async def handle(event: Event) -> None:
        assert isinstance(event, CustomerRegistered)
        seen.append((event.name, event.email))

    await Subscription(store, "mailing", handle).catch_up()

    assert seen == [("[erased]", "forgotten@invalid")]


async def create_customers(tx: Transaction) -> None:
    await tx.execute("CREATE TABLE IF NOT EXISTS customers (id TEXT PRIMARY KEY, name TEXT)")


async def project_customers(event: Event, tx: Transaction) -> None:
    if isinstance(event, CustomerRegistered):
        await tx.execute(
            "INSERT INTO customers (id, name) VALUES (:id, :name)",
            id=event.customer_id,
            name=event.name,
        )


async def test_a_projection_rebuilt_from_zero_after_forget_sees_the_masks(
    store: EventStore,
) -> None:
    await Repository(Customer, store).add(id="c1", name=NAME, email=EMAIL)
    await Repository(Customer, store).add(id="c2", name="Bob", email="bob@example.org")
    await Projection(store, "customers", project_customers, setup=create_customers).catch_up()
    await store.forget("c1")

    async with store.transaction() as tx:
        await tx.execute("DELETE FROM customers")
    rebuilt = Projection(store, "customers-v2", project_customers, setup=create_customers)
    await rebuilt.catch_up()

    rows = await store.query("SELECT id, name FROM customers ORDER BY id")
    assert rows == [("c1", "[erased]"), ("c2", "Bob")]


# What the database keeps


def _files(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


async def test_sqlite_files_never_hold_the_plaintext_and_forget_removes_key_and_snapshot(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.db"
    async with SQLiteEventStore(path) as store:
        await Repository(Customer, store).add(id="c1", name=NAME, email=EMAIL)
        data = await store.query("SELECT data FROM eventuality_events")
        ((key,),) = await store.query("SELECT key FROM eventuality_subject_keys")
        assert re.search(r'"email":"eventuality-pd:v1:[0-9a-f]{32}:[\w-]+"', data[0][0])
        assert len(key) == 32
        assert NAME.encode() not in _files(path)
        assert EMAIL.encode() not in _files(path)

        snapshotting = Repository(Customer, store, snapshot_every=1)
        customer = await snapshotting.load("c1")
        customer.rename(NAME + " II")
        await snapshotting.save(customer)  # the snapshot holds the state in plaintext
        assert EMAIL.encode() in _files(path)  # (so this test can see plaintext)

        await store.forget("c1")

        raw = _files(path)
        assert NAME.encode() not in raw
        assert EMAIL.encode() not in raw
        assert key not in raw


@requires_postgres
async def test_postgres_rows_never_hold_the_plaintext_and_forget_removes_key_and_snapshot(
    tmp_path: Path,
) -> None:
    schema = postgres_schema(tmp_path)
    async with make_store("postgres", tmp_path) as store:
        customers = Repository(Customer, store, snapshot_every=1)
        await customers.add(id="c1", name=NAME, email=EMAIL)
        raw = await asyncpg.connect(POSTGRES_DSN)
        try:

            async def table(name: str) -> str:
                rows = await raw.fetch(f'SELECT t::text FROM "{schema}".{name} AS t')
                return "\n".join(row[0] for row in rows)

            ((key,),) = await raw.fetch(f'SELECT key FROM "{schema}".eventuality_subject_keys')
            events = await table("eventuality_events")
            assert "eventuality-pd:v1:" in events
            assert NAME not in events
            assert EMAIL not in events
            assert EMAIL in await table("eventuality_snapshots")  # (this test can see plaintext)

            await store.forget("c1")

            for name in ("eventuality_events", "eventuality_snapshots", "eventuality_subject_keys"):
                text = await table(name)
                assert NAME not in text
                assert EMAIL not in text
                assert key.hex() not in text
        finally:
            await raw.close()


async def test_a_tampered_sealed_value_is_reported_not_read(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with SQLiteEventStore(path) as store:
        await Repository(Customer, store).add(id="c1", name=NAME, email=EMAIL)
        await Repository(Customer, store).add(id="c2", name="Bob", email="bob@example.org")
    with closing(sqlite3.connect(path)) as raw:  # move c1's sealed name into c2's event
        (first,), (second,) = raw.execute("SELECT data FROM eventuality_events ORDER BY position")
        name = re.search(r'"name":"([^"]+)"', first)
        assert name is not None
        moved = re.sub(r'"name":"[^"]+"', f'"name":"{name.group(1)}"', second)
        raw.execute("UPDATE eventuality_events SET data = ? WHERE position = 2", (moved,))
        raw.commit()

    async with SQLiteEventStore(path) as store:
        with pytest.raises(EventSchemaError, match="fails authentication"):
            await store.read_stream("Customer-c2")
        assert (await store.read_stream("Customer-c1"))[0].name == NAME  # type: ignore[attr-defined]


async def test_a_key_forgotten_during_an_append_is_never_written_back(store: EventStore) -> None:
    customers = Repository(Customer, store)
    customer = await customers.add(id="c1", name=NAME, email=EMAIL)
    backend: Any = store.backend
    fetch = backend.keys_for_subjects
    calls: list[list[str]] = []

    async def fetch_then_forget(subjects: Any) -> Any:
        found = await fetch(subjects)
        calls.append(list(found))
        if len(calls) == 1:
            await store.forget("c1")  # between the append's key read and its commit
        return found

    backend.keys_for_subjects = fetch_then_forget
    customer.rename("New Name")
    await customers.save(customer)

    assert calls == [["c1"], []]  # sealed with the old key, refused, sealed with a new one
    assert [getattr(e, "name", None) for e in await store.read_stream("Customer-c1")] == [
        "[erased]",
        "New Name",
    ]


# Costs and limits


class _CountingKeys:
    def __init__(self, store: EventStore) -> None:
        self.calls = 0
        backend: Any = store.backend
        original = backend.keys_by_id

        async def counted(key_ids: Any) -> Any:
            self.calls += 1
            return await original(key_ids)

        backend.keys_by_id = counted


async def test_reads_without_personal_data_query_no_keys_and_pages_one_query_each(
    store: EventStore,
) -> None:
    counting = _CountingKeys(store)
    await Repository(Customer, store).add(id="c0", name=NAME, email=EMAIL)  # position 1
    await store.append("todos", [TodoCreated(description=str(n)) for n in range(30)])
    for n in range(1, 4):
        await Repository(Customer, store).add(id=f"c{n}", name=NAME, email=EMAIL)

    assert [e async for e in store.read_all(from_position=1, event_types=[TodoCreated])]
    await store.read_stream("todos")
    assert counting.calls == 0
    events = [e async for e in store.read_all(page_size=10)]
    assert len(events) == 34
    assert counting.calls == 2  # pages: [c0 + 9 todos], 10 todos, 10 todos, [1 todo + c1..c3]


async def test_a_store_without_key_storage_refuses_personal_data() -> None:
    async with LogOnlyStore() as store:
        with pytest.raises(UnsupportedOperation, match="personal_data"):
            await Repository(Customer, store).add(id="c1", name=NAME, email=EMAIL)
        with pytest.raises(UnsupportedOperation, match="forget"):
            await store.forget("c1")
        assert await store.last_position() == 0
        assert not store.capabilities.personal_data


async def test_an_event_without_its_subject_is_refused_before_anything_is_written(
    store: EventStore,
) -> None:
    with pytest.raises(ValueError, match="subject 'aggregate_id' is None"):
        await store.append("customers", [CustomerRenamed(name=NAME)])

    assert await store.last_position() == 0


async def test_without_cryptography_personal_data_asks_for_the_extra(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers.aead", None)

    with pytest.raises(StoreUsageError, match=r'pip install "eventuality\[crypto\]"'):
        await Repository(Customer, store).add(id="c1", name=NAME, email=EMAIL)
    assert await store.last_position() == 0


async def test_reading_personal_data_without_cryptography_asks_for_the_extra(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await Repository(Customer, store).add(id="c1", name=NAME, email=EMAIL)
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers.aead", None)

    with pytest.raises(StoreUsageError, match=r'pip install "eventuality\[crypto\]"'):
        await store.read_stream("Customer-c1")


def test_the_core_imports_and_stores_events_without_cryptography(tmp_path: Path) -> None:
    import subprocess

    script = (
        "import sys; sys.modules['cryptography'] = None\n"
        "import anyio, eventuality\n"
        "class Note(eventuality.Event):\n    text: str\n"
        "async def main():\n"
        "    store = eventuality.InMemoryEventStore()\n"
        "    await store.append('n', [Note(text='hi')])\n"
        "    print([e.text for e in await store.read_stream('n')])\n"
        "anyio.run(main)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['hi']"
