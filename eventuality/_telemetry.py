"""The switch the core reads on its hot paths: ``hooks`` is ``None`` until
:func:`eventuality.otel.instrument` sets it.

When it is ``None`` (OpenTelemetry absent, or present and never instrumented) each hook site in
the core costs one module attribute read and one ``is None`` test, and nothing here imports
OpenTelemetry. The real spans and metrics live in :mod:`eventuality.otel`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .bus import EventBus
    from .messages import Command, Event
    from .repository import Repository
    from .stores.base import EventStore, StreamAppend
    from .subscriptions import Subscription

__all__ = ["Hooks", "handling", "hooks", "passing"]


class Hooks(Protocol):
    """What the core calls when instrumentation is on (see :mod:`eventuality.otel`)."""

    def opens_dispatch(self, command: Command) -> bool:
        """Whether this ``Flow.dispatch`` call should open a span (False when it is the call
        the hook itself made for ``command``)."""
        ...

    async def dispatch(
        self, dispatch: Callable[..., Awaitable[list[Event]]], command: Command, **options: Any
    ) -> list[Event]: ...

    def retrying(self, command: Command, error: Exception, attempt: int) -> None: ...

    async def append(
        self,
        store: EventStore,
        append: Callable[..., Awaitable[list[Event]]],
        appends: Sequence[StreamAppend],
        metadata: Mapping[str, Any] | None,
        options: dict[str, Any],
    ) -> list[Event]: ...

    async def load(
        self, repository: Repository[Any], rebuild: Awaitable[Any], stream_id: str
    ) -> Any: ...

    def replayed(self, events: int, from_snapshot: bool) -> None: ...

    async def publish(
        self, bus: EventBus, publish: Callable[[list[Event]], Awaitable[None]], events: list[Event]
    ) -> None: ...

    def listener_failed(self, event: Event, listener: str, error: Exception) -> None: ...

    def handling(
        self, subscription: Subscription, event: Event
    ) -> AbstractContextManager[None]: ...

    def passing(self, subscription: Subscription, horizon: int) -> AbstractContextManager[None]: ...


#: The active instrumentation, or None: set only by eventuality.otel.instrument/uninstrument.
hooks: Hooks | None = None


class _Nothing:
    """A reusable context manager that does nothing: what the hook sites use when off."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


NOTHING: AbstractContextManager[None] = _Nothing()


def handling(subscription: Subscription, event: Event) -> AbstractContextManager[None]:
    """The span of one event's handling by ``subscription`` (nothing when off)."""
    current = hooks
    return NOTHING if current is None else current.handling(subscription, event)


def passing(subscription: Subscription, horizon: int) -> AbstractContextManager[None]:
    """One pass of ``subscription`` up to ``horizon``: its batch span (nothing when off)."""
    current = hooks
    return NOTHING if current is None else current.passing(subscription, horizon)


def as_list(events: Iterable[Event]) -> list[Event]:
    return events if isinstance(events, list) else list(events)
