"""Running subscriptions in the background of an application, for as long as it lives."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import TYPE_CHECKING, Self

import anyio
from anyio.abc import TaskGroup

from ._progress import SubscriptionStatistics

if TYPE_CHECKING:
    from .subscriptions import Subscription

__all__ = ["SubscriptionRunner"]

logger = logging.getLogger("eventuality")


class SubscriptionRunner:
    """Runs subscriptions in the background while the ``async with`` block lasts.

    Entering runs every subscription's :meth:`~Subscription.set_up` first (a Projection's
    ``setup``), so read-model tables exist before the application makes its first query; a
    set-up that fails is raised from ``async with``. A subscription that fails later is logged
    and left stopped (the others go on); its error is in :meth:`statistics` and makes
    read-your-writes waits on it fail at once. Transient store failures are retried (see
    :meth:`Subscription.run`). Leaving the block cancels them all and waits until each has saved
    its checkpoint. Suits an application's lifespan (FastAPI: ``async with
    SubscriptionRunner(a, b): yield``).
    """

    def __init__(self, *subscriptions: Subscription) -> None:
        names = [s.name for s in subscriptions]
        if len(set(names)) != len(names):
            raise ValueError(f"subscription names must be unique in one runner: {names}")
        self.subscriptions = subscriptions
        self._group: TaskGroup | None = None

    async def __aenter__(self) -> Self:
        for subscription in self.subscriptions:
            await subscription.set_up()
        group = anyio.create_task_group()
        await group.__aenter__()
        self._group = group
        for subscription in self.subscriptions:
            group.start_soon(self._run, subscription, name=f"subscription {subscription.name}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._group is not None
        group, self._group = self._group, None
        group.cancel_scope.cancel()
        return await group.__aexit__(exc_type, exc, tb)

    async def _run(self, subscription: Subscription) -> None:
        try:
            await subscription.run()
        except Exception:
            logger.exception("subscription %r stopped on an error", subscription.name)

    def statistics(self) -> list[SubscriptionStatistics]:
        return [s.statistics() for s in self.subscriptions]
