"""Snapshots load only into the shape of state that wrote them: a changed class or a raised
``__snapshot_version__`` replays from the first event and writes a fresh snapshot."""

import json
from collections.abc import Callable
from typing import Any, ClassVar

from eventuality import Aggregate, Event, EventStore, Repository
from eventuality.aggregate import state_fingerprint
from eventuality.stores.base import Snapshot


class SnapDeposited(Event):
    amount: int


class SnapAccount(Aggregate):
    """Release 1: a balance."""

    aggregate_type: ClassVar[str] = "SnapAccount"
    applied: ClassVar[list[int]] = []
    balance: int = 0

    @classmethod
    def create(cls, id: str) -> "SnapAccount":
        account = cls(id=id)
        account.deposit(10)
        return account

    def deposit(self, amount: int) -> None:
        self.record(SnapDeposited(amount=amount))

    def apply(self, event: Event) -> None:
        assert isinstance(event, SnapDeposited)
        type(self).applied.append(event.amount)
        self.balance += event.amount


class SnapAccountWithCount(Aggregate):
    """Release 2 of the same stream: one more derived field."""

    aggregate_type: ClassVar[str] = "SnapAccount"
    balance: int = 0
    deposits: int = 0

    def apply(self, event: Event) -> None:
        assert isinstance(event, SnapDeposited)
        self.balance += event.amount
        self.deposits += 1


class SnapAccountFixedApply(SnapAccount):
    """Release 2 with the same fields and an ``apply`` that now counts double."""

    aggregate_type: ClassVar[str] = "SnapAccount"
    __snapshot_version__: ClassVar[int] = 2

    def apply(self, event: Event) -> None:
        assert isinstance(event, SnapDeposited)
        self.balance += 2 * event.amount


class SnapUnschemable(Aggregate):
    """A field no JSON schema can describe."""

    callback: Callable[[], None] | None = None

    def apply(self, event: Event) -> None:
        pass


async def _account_with_a_snapshot(store: EventStore) -> None:
    """Deposits 10, 5, 1: a snapshot at version 2, one event after it."""
    accounts = Repository(SnapAccount, store, snapshot_every=2)
    account = await accounts.add(id="a")
    for amount in (5, 1):
        account.deposit(amount)
        await accounts.save(account)


def _state(snapshot: Snapshot | None) -> dict[str, Any]:
    assert snapshot is not None
    envelope: dict[str, Any] = json.loads(snapshot.state)
    return envelope


async def test_load_of_the_same_class_starts_from_its_snapshot(store: EventStore) -> None:
    await _account_with_a_snapshot(store)
    SnapAccount.applied.clear()

    account = await Repository(SnapAccount, store, snapshot_every=2).load("a")

    assert SnapAccount.applied == [1]
    assert (account.balance, account.version) == (16, 3)


async def test_snapshot_of_a_class_that_gained_a_field_is_replayed_from_the_start(
    store: EventStore,
) -> None:
    await _account_with_a_snapshot(store)

    account = await Repository(SnapAccountWithCount, store, snapshot_every=2).load("a")

    assert (account.balance, account.deposits, account.version) == (16, 3, 3)


async def test_replaying_past_a_snapshot_that_did_not_fit_writes_a_fresh_one(
    store: EventStore,
) -> None:
    await _account_with_a_snapshot(store)

    await Repository(SnapAccountWithCount, store, snapshot_every=2).load("a")

    envelope = _state(await store.load_snapshot("SnapAccount-a"))
    assert envelope["fingerprint"] == state_fingerprint(SnapAccountWithCount)
    assert envelope["state"] | {"id": "a"} == {
        "id": "a",
        "version": 3,
        "balance": 16,
        "deposits": 3,
    }


async def test_raising_the_snapshot_version_replays_from_the_start(store: EventStore) -> None:
    await _account_with_a_snapshot(store)

    account = await Repository(SnapAccountFixedApply, store, snapshot_every=2).load("a")

    assert account.balance == 32


async def test_snapshot_written_before_fingerprints_is_replayed_from_the_start(
    store: EventStore,
) -> None:
    await _account_with_a_snapshot(store)
    legacy = {"id": "a", "version": 2, "balance": 999}
    await store.save_snapshot(
        Snapshot(
            stream_id="SnapAccount-a",
            version=2,
            aggregate_type="SnapAccount",
            schema_version=1,
            state=json.dumps(legacy),
        )
    )

    account = await Repository(SnapAccount, store, snapshot_every=2).load("a")

    assert account.balance == 16


def test_state_fingerprint_changes_when_a_field_is_added() -> None:
    assert state_fingerprint(SnapAccount) != state_fingerprint(SnapAccountWithCount)


def test_state_fingerprint_is_the_same_for_the_same_class() -> None:
    assert state_fingerprint(SnapAccount) == state_fingerprint(SnapAccount)


def test_state_fingerprint_of_a_class_without_a_json_schema_still_tells_shapes_apart() -> None:
    class SnapUnschemableWithMore(SnapUnschemable):
        more: int = 0

    assert state_fingerprint(SnapUnschemable) != state_fingerprint(SnapUnschemableWithMore)
