"""Where subscriptions are, per store, in this process: what read-your-writes waits on.

Subscriptions report each handled position and the error that stopped them here;
:func:`wait_for_subscriptions` waits on those reports, and on stored checkpoints for
subscriptions that run in other processes.
"""

from __future__ import annotations

import logging
import random
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

import anyio

from .errors import (
    SubscriptionLocked,
    SubscriptionTimeout,
    TransientStoreError,
    UnknownSubscription,
)
from .stores.base import POLL_MAX, POLL_START, EventStore

__all__ = [
    "TRANSIENT_ERRORS",
    "StoreProgress",
    "progress_of",
    "retry_delay",
    "wait_for_subscriptions",
]

#: Errors after which :meth:`Subscription.run` waits and resumes from its stored checkpoint.
TRANSIENT_ERRORS = (TransientStoreError, SubscriptionLocked)

RETRY_FIRST, RETRY_MAX = 0.1, 5.0


def retry_delay(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): doubling from 0.1 s, capped at
    5 s, jittered so that instances that failed together do not retry together."""
    return random.uniform(0.5, 1.0) * min(RETRY_MAX, RETRY_FIRST * 2.0 ** min(attempt - 1, 16))


async def back_off(name: str, error: BaseException, attempt: int, then: str) -> None:
    """Log subscription ``name``'s transient ``error`` as a warning, then wait before retry
    ``attempt`` (:func:`retry_delay`); ``then`` says what the retry does."""
    delay = retry_delay(attempt)
    logging.getLogger("eventuality").warning(
        f"subscription %r: %s: %s; {then} in %.2f s (retry %d)",
        name,
        type(error).__name__,
        error,
        delay,
        attempt,
    )
    await anyio.sleep(delay)


@dataclass(frozen=True, slots=True)
class SubscriptionStatistics:
    """A snapshot of a subscription's progress, for debugging and health checks."""

    name: str
    position: int
    checkpoint: int | None
    handled: int
    running: bool
    error: BaseException | None
    #: A partitioned subscription's partitions that this process has run, one by one.
    partitions: tuple[SubscriptionStatistics, ...] = ()


class StoreProgress:
    """One store's subscriptions in this process: their names, in-process locks, handled
    positions and the errors that stopped them."""

    def __init__(self) -> None:
        self.known: set[str] = set()
        self.partitioned: dict[str, int] = {}
        self.locks: dict[str, anyio.Lock] = {}
        self.progress: dict[str, int] = {}
        self.failures: dict[str, BaseException] = {}
        self.changed: anyio.Event | None = None

    def lock(self, name: str) -> anyio.Lock:
        if name not in self.locks:
            self.locks[name] = anyio.Lock()
        return self.locks[name]

    def start(self, name: str) -> None:
        """``name`` runs again: an error that stopped it before no longer holds."""
        self.failures.pop(name, None)

    def report(self, name: str, position: int) -> None:
        self.progress[name] = position
        self.failures.pop(name, None)
        self._wake()

    def fail(self, name: str, error: BaseException) -> None:
        self.failures[name] = error
        self._wake()

    def _wake(self) -> None:
        if self.changed is not None:
            self.changed.set()
            self.changed = None

    def wait_event(self) -> anyio.Event:
        if self.changed is None:
            self.changed = anyio.Event()
        return self.changed


_states: weakref.WeakKeyDictionary[EventStore, StoreProgress] = weakref.WeakKeyDictionary()


def progress_of(store: EventStore) -> StoreProgress:
    state = _states.get(store)
    if state is None:
        state = _states[store] = StoreProgress()
    return state


async def wait_for_subscriptions(
    store: EventStore, names: Iterable[str], position: int, *, timeout: float = 10.0
) -> None:
    """Wait until each named subscription has handled everything up to ``position``.

    Subscriptions in this process report as they go; those in other processes are seen through
    their stored checkpoints (a subscription stores one when it starts), polled with backoff.
    A partitioned subscription has got there when every one of its partitions has.

    :raises UnknownSubscription: a name is neither a subscription made in this process on
        ``store`` nor has a stored checkpoint (a misspelt name); raised at once.
    :raises SubscriptionTimeout: one had not got there within ``timeout`` seconds, or it
        stopped on an error (then in ``error`` and ``__cause__``).
    """
    state = progress_of(store)
    checkpoints: dict[str, int | None] = {}
    targets: list[tuple[str, str]] = []  # (subscription, the checkpoint that must get there)
    for name in names:
        partitions = state.partitioned.get(name)
        if partitions is None and name not in state.known:  # only then is a store read needed
            partitions = await store.get_checkpoint(f"{name}#partitions")
            if partitions is None:
                checkpoints[name] = await store.get_checkpoint(name)
                if checkpoints[name] is None:
                    raise UnknownSubscription(name, sorted(state.known))
        if partitions is None:
            targets.append((name, name))
        else:  # every partition, since the wait does not know which streams it is about
            targets.extend((name, f"{name}#{i}/{partitions}") for i in range(partitions))
    deadline = anyio.current_time() + timeout
    for name, target in targets:
        interval = POLL_START
        checkpoint = checkpoints.get(target)
        while True:
            if state.progress.get(target, 0) >= position:
                break
            failure = state.failures.get(target) or state.failures.get(name)
            if failure is not None:
                reached = state.progress.get(target)
                raise SubscriptionTimeout(name, position, reached, error=failure) from failure
            if checkpoint is not None and checkpoint >= position:
                break
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                raise SubscriptionTimeout(name, position, checkpoint, timeout=timeout)
            changed = state.wait_event()
            with anyio.move_on_after(min(interval, remaining)):
                await changed.wait()
            interval = min(interval * 2, POLL_MAX)
            checkpoint = await store.get_checkpoint(target)
