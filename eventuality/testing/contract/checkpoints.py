"""Checkpoints: named positions with compare-and-set (skipped on a store without them)."""

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ...errors import (
    CheckpointConflict,
)
from ...stores.base import EventStore
from ._support import _refused_when_cancelled

__all__ = [
    "test_every_checkpoint_operation_is_a_cancellation_point",
    "test_set_checkpoint_beyond_any_position_is_a_clear_error",
    "test_get_checkpoint_is_none_when_unset",
    "test_set_checkpoint_expecting_none_creates_it",
    "test_set_checkpoint_expecting_its_value_moves_it",
    "test_set_checkpoint_with_a_wrong_expectation_raises_and_leaves_it",
    "test_set_checkpoint_expecting_a_value_when_unset_raises_and_creates_nothing",
    "test_checkpoints_with_different_names_are_independent",
    "test_set_checkpoint_to_a_negative_position_raises_value_error",
]

# checkpoints


async def test_get_checkpoint_is_none_when_unset(checkpoint_store: EventStore) -> None:
    name = "projection"

    checkpoint = await checkpoint_store.get_checkpoint(name)

    assert checkpoint is None


async def test_set_checkpoint_expecting_none_creates_it(checkpoint_store: EventStore) -> None:
    name = "projection"

    await checkpoint_store.set_checkpoint(name, 7, expected=None)

    assert await checkpoint_store.get_checkpoint(name) == 7


async def test_set_checkpoint_expecting_its_value_moves_it(checkpoint_store: EventStore) -> None:
    await checkpoint_store.set_checkpoint("projection", 7, expected=None)

    await checkpoint_store.set_checkpoint("projection", 12, expected=7)

    assert await checkpoint_store.get_checkpoint("projection") == 12


@pytest.mark.parametrize("wrong", [None, 3, 12])
async def test_set_checkpoint_with_a_wrong_expectation_raises_and_leaves_it(
    checkpoint_store: EventStore, wrong: int | None
) -> None:
    await checkpoint_store.set_checkpoint("projection", 7, expected=None)

    with pytest.raises(CheckpointConflict) as raised:
        await checkpoint_store.set_checkpoint("projection", 12, expected=wrong)

    assert (raised.value.name, raised.value.expected, raised.value.actual) == (
        "projection",
        wrong,
        7,
    )
    assert await checkpoint_store.get_checkpoint("projection") == 7


async def test_set_checkpoint_expecting_a_value_when_unset_raises_and_creates_nothing(
    checkpoint_store: EventStore,
) -> None:
    name = "projection"

    with pytest.raises(CheckpointConflict):
        await checkpoint_store.set_checkpoint(name, 12, expected=7)

    assert await checkpoint_store.get_checkpoint(name) is None


async def test_checkpoints_with_different_names_are_independent(
    checkpoint_store: EventStore,
) -> None:
    await checkpoint_store.set_checkpoint("one", 3, expected=None)

    await checkpoint_store.set_checkpoint("two", 9, expected=None)
    await checkpoint_store.set_checkpoint("one", 4, expected=3)

    assert await checkpoint_store.get_checkpoint("one") == 4
    assert await checkpoint_store.get_checkpoint("two") == 9
    assert await checkpoint_store.get_checkpoint("One") is None


async def test_set_checkpoint_to_a_negative_position_raises_value_error(
    checkpoint_store: EventStore,
) -> None:
    name = "projection"

    with pytest.raises(ValueError, match="position"):
        await checkpoint_store.set_checkpoint(name, -1, expected=None)

    assert await checkpoint_store.get_checkpoint(name) is None


async def test_set_checkpoint_beyond_any_position_is_a_clear_error(
    checkpoint_store: EventStore,
) -> None:
    with pytest.raises(ValueError, match="beyond any position"):
        await checkpoint_store.set_checkpoint("far", 2**63, expected=None)

    assert await checkpoint_store.get_checkpoint("far") is None


def _checkpoint_operations(store: EventStore) -> dict[str, Callable[[], Awaitable[Any]]]:
    return {
        "get_checkpoint": lambda: store.get_checkpoint("c"),
        "set_checkpoint": lambda: store.set_checkpoint("c", 1, expected=None),
    }


@pytest.mark.parametrize("operation", ["get_checkpoint", "set_checkpoint"])
async def test_every_checkpoint_operation_is_a_cancellation_point(
    checkpoint_store: EventStore, operation: str
) -> None:
    call = _checkpoint_operations(checkpoint_store)[operation]

    await _refused_when_cancelled(operation, call)

    assert await checkpoint_store.last_position() == 0
    assert await checkpoint_store.get_checkpoint("c") is None
