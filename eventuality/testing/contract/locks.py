"""Subscription names and subscriptions: one holder per name, checkpoints that resume.

``hold_name`` works on every store (a store without locks holds nothing); a store that declares
``cross_process_locks`` keeps a second store on the same data out while a name is held.
"""

import anyio

from ...messages import Event
from ...stores.base import EventStore
from ...subscriptions import Subscription
from ._support import StoreFactory, _created, requires

__all__ = [
    "test_a_subscription_catches_up_in_order_and_stores_its_checkpoint",
    "test_a_subscription_on_a_second_store_resumes_from_the_stored_checkpoint",
    "test_hold_name_on_a_second_store_waits_while_the_first_holds_it",
    "test_hold_name_runs_the_block_and_can_be_held_again",
]


async def test_hold_name_runs_the_block_and_can_be_held_again(contract_store: EventStore) -> None:
    entered: list[int] = []

    async with contract_store.hold_name("names"):
        entered.append(1)
    async with contract_store.hold_name("names"):
        entered.append(2)

    assert entered == [1, 2]


async def test_hold_name_on_a_second_store_waits_while_the_first_holds_it(
    contract_store_factory: StoreFactory,
) -> None:
    first, second = contract_store_factory(), contract_store_factory()
    requires(first, "cross_process_locks")
    entered: list[str] = []

    async with first, second:
        async with first.hold_name("names"):
            with anyio.move_on_after(0.3):  # long enough for any lock to be tried
                async with second.hold_name("names"):
                    entered.append("while held")
        async with second.hold_name("names"):
            entered.append("after release")

    assert entered == ["after release"]


async def test_a_subscription_catches_up_in_order_and_stores_its_checkpoint(
    checkpoint_store: EventStore,
) -> None:
    stored = await checkpoint_store.append("a", _created("a1", "a2"))
    stored += await checkpoint_store.append("b", _created("b1"))
    seen: list[Event] = []

    async def handle(event: Event) -> None:
        seen.append(event)

    handled = await Subscription(checkpoint_store, "contract", handle).catch_up()

    assert handled == 3
    assert seen == stored
    assert await checkpoint_store.get_checkpoint("contract") == stored[-1].position


async def test_a_subscription_on_a_second_store_resumes_from_the_stored_checkpoint(
    contract_store_factory: StoreFactory,
) -> None:
    first, second = contract_store_factory(), contract_store_factory()
    requires(first, "durable")
    requires(first, "checkpoints")
    seen: list[Event] = []

    async def handle(event: Event) -> None:
        seen.append(event)

    async with first:
        await first.append("a", _created("a1"))
        await Subscription(first, "contract", handle).catch_up()
        later = await first.append("a", _created("a2"))
    async with second:
        handled = await Subscription(second, "contract", handle).catch_up()

    assert handled == 1
    assert seen[1:] == later
