"""Given/then for projections and subscriptions: events in the log, the read model after
catch-up.

    scenario = ProjectionScenario(make_todo_list).given("Todo-t1", TodoCreated(description="x"))
    await scenario.then_rows("SELECT id, description FROM todo_list", [("t1", "x")])
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..messages import Event
from ..stores.base import EventStore
from ..subscriptions import Subscription
from ._compare import assert_raised, assert_rows
from ._stores import Given, StoreChoice, append_given, given_events, resolve, scenario_store

__all__ = ["ProjectionFactory", "ProjectionScenario", "StoreCheck"]

ProjectionFactory = Callable[[EventStore], Subscription | Awaitable[Subscription]]
"""Builds the Projection (or Subscription) under test on the store it is given."""

StoreCheck = Callable[[EventStore], object]
"""A check of the read model: a plain or async function of the store; falsy but not None fails."""


class ProjectionScenario:
    """An immutable scenario: ``given`` returns a new one. Each awaited ``then*`` check runs
    it once: a store of its own holding the given events, one ``catch_up()``, the check."""

    def __init__(self, projection_factory: ProjectionFactory, *, store: StoreChoice = None) -> None:
        if not callable(projection_factory):
            raise TypeError(
                f"ProjectionScenario takes a function of a store, not {projection_factory!r}"
            )
        self.projection_factory = projection_factory
        self.store = store
        self._given: Given = ()

    def given(
        self, stream_id: str, *events: Event, aggregate_id: str | None = None
    ) -> ProjectionScenario:
        """Events in ``stream_id``, appended in the order of the ``given`` calls. Their
        ``aggregate_id`` is ``aggregate_id``, else the part of the stream id after the first
        ``-``."""
        changed = copy.copy(self)
        changed._given = given_events(self._given, stream_id, events, aggregate_id)
        return changed

    async def _run(self, check: Callable[[EventStore, Exception | None], Awaitable[None]]) -> None:
        __tracebackhide__ = True
        async with scenario_store(self.store) as store:
            await append_given(store, self._given)
            subscription = await resolve(self.projection_factory, store)
            if not isinstance(subscription, Subscription):
                raise TypeError(
                    f"the projection factory returned {subscription!r}, not a Projection "
                    "or Subscription"
                )
            try:
                await subscription.catch_up()
                error: Exception | None = None
            except Exception as exc:
                error = exc
            await check(store, error)

    async def then_rows(self, sql: str, expected: Sequence[Sequence[Any]], **params: Any) -> None:
        """Assert ``store.query(sql, **params)`` returns ``expected``, in order (say
        ``ORDER BY`` in ``sql``)."""
        __tracebackhide__ = True

        async def check(store: EventStore, error: Exception | None) -> None:
            __tracebackhide__ = True
            _no_error(error)
            assert_rows(expected, await store.query(sql, **params))

        await self._run(check)

    async def then(self, check: StoreCheck) -> None:
        """Run ``check(store)`` after catch-up, for a read model kept elsewhere (a dict a
        subscription fills, a second query). It may assert itself or return a verdict."""
        __tracebackhide__ = True

        async def run_check(store: EventStore, error: Exception | None) -> None:
            __tracebackhide__ = True
            _no_error(error)
            verdict = check(store)
            if inspect.isawaitable(verdict):
                verdict = await verdict
            if verdict is not None and not verdict:
                raise AssertionError(f"the read model check returned {verdict!r}")

        await self._run(run_check)

    async def then_raises(
        self,
        expected: type[BaseException] | tuple[type[BaseException], ...],
        *,
        match: str | None = None,
    ) -> None:
        """Assert catch-up stopped with ``expected`` (``match``: a regex its message contains)."""
        __tracebackhide__ = True

        async def check(store: EventStore, error: Exception | None) -> None:
            __tracebackhide__ = True
            assert_raised(error, expected, match, otherwise="catch-up handled every event")

        await self._run(check)


def _no_error(error: Exception | None) -> None:
    __tracebackhide__ = True
    if error is not None:
        raise AssertionError(f"catch-up stopped with {type(error).__name__}: {error}") from error
