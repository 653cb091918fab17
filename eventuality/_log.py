"""What a subscription reads: the log after its position, with stored events of unknown types
either raised or, with ``on_unknown="skip"``, logged and passed over by position."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

from .errors import UnknownEventType
from .messages import Event

if TYPE_CHECKING:
    from .subscriptions import Subscription

__all__ = ["log_after"]

logger = logging.getLogger("eventuality")


async def log_after(
    subscription: Subscription, position: int, partition: tuple[int, int] | None
) -> AsyncGenerator[Event | int]:
    """Events after ``position`` of the subscription's types (and ``partition``), and, when
    it skips unknown types, the positions of those events (``0`` where the store did not say).

    :raises UnknownEventType: a stored type has no class here and ``on_unknown="stop"``.
    """
    events = subscription.store.read_all(
        from_position=position, event_types=subscription.event_types, partition=partition
    )
    while True:
        try:
            event = await anext(events)
        except StopAsyncIteration:
            return
        except UnknownEventType as exc:
            if subscription.on_unknown == "stop":
                raise
            logger.warning(
                "subscription %r skipped a stored %r event (stream %r, position %s): no "
                "class has that type in this process (on_unknown='skip')",
                subscription.name,
                exc.event_type,
                exc.stream_id,
                exc.position,
            )
            yield exc.position or 0
            continue
        yield event
