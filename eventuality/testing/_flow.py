"""Given/when/then for flows: events already in streams, one command, what it committed.

Each check runs the scenario once, on a store of its own (memory unless told otherwise), with
the flow the user's factory builds on that store:

    await FlowScenario(make_flow).given("Todo-t1", TodoCreated(description="x")).when(
        MarkAsCompleted(id="t1")
    ).then(TodoCompleted())
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..flow import Flow
from ..messages import Command, Event
from ..stores.base import EventStore
from ._compare import assert_events, assert_raised, describe_event
from ._stores import Given, StoreChoice, append_given, given_events, resolve, scenario_store

__all__ = ["FlowFactory", "FlowOutcome", "FlowScenario"]

FlowFactory = Callable[[EventStore], Flow | Awaitable[Flow]]
"""Builds the flow under test on the store it is given: the user's own construction."""


@dataclass(frozen=True)
class FlowOutcome:
    """What one dispatch did: committed events or the error, and what the bus delivered."""

    committed: list[Event]
    published: list[Event]
    error: Exception | None


class FlowScenario:
    """An immutable scenario: each ``given``/``when`` returns a new one, so a partial scenario
    can be shared between tests. The ``then*`` checks are awaited and run it."""

    def __init__(self, flow_factory: FlowFactory, *, store: StoreChoice = None) -> None:
        if not callable(flow_factory):
            raise TypeError(f"FlowScenario takes a function of a store, not {flow_factory!r}")
        self.flow_factory = flow_factory
        self.store = store
        self._given: Given = ()
        self._command: Command | None = None
        self._metadata: Mapping[str, Any] | None = None

    def _with(self, **changes: Any) -> FlowScenario:
        changed = copy.copy(self)
        changed.__dict__.update(changes)
        return changed

    def given(
        self, stream_id: str, *events: Event, aggregate_id: str | None = None
    ) -> FlowScenario:
        """Events already in ``stream_id`` before the command. Their ``aggregate_id`` is
        ``aggregate_id``, else the part of the stream id after the first ``-``."""
        return self._with(_given=given_events(self._given, stream_id, events, aggregate_id))

    def when(self, command: Command, *, metadata: Mapping[str, Any] | None = None) -> FlowScenario:
        """The command to dispatch (with ``metadata``, as ``flow.dispatch`` takes it)."""
        if not isinstance(command, Command):
            raise TypeError(f"when() takes a Command instance, not {command!r}")
        return self._with(_command=command, _metadata=metadata)

    async def run(self) -> FlowOutcome:
        """Dispatch the command on a store holding the given events and keep what happened:
        for checks of your own (the ``then*`` methods call it)."""
        if self._command is None:
            raise TypeError("the scenario has no command: call .when(command) before a check")
        async with scenario_store(self.store) as store:
            await append_given(store, self._given)
            flow = await resolve(self.flow_factory, store)
            if not isinstance(flow, Flow):
                raise TypeError(f"the flow factory returned {flow!r}, not a Flow")
            published: list[Event] = []
            unsubscribe = flow.bus.subscribe(Event, published.append)
            try:
                committed = await flow.dispatch(self._command, metadata=self._metadata)
                error: Exception | None = None
            except Exception as exc:
                committed, error = [], exc
            finally:
                unsubscribe()
            return FlowOutcome(committed, published, error)

    async def then(self, *expected: Event) -> FlowOutcome:
        """Assert the dispatch committed exactly ``expected`` (type and payload, in commit
        order); no arguments: it committed nothing."""
        __tracebackhide__ = True
        outcome = await self.run()
        _no_error(outcome, f"{len(expected)} committed event(s)")
        assert_events(expected, outcome.committed, what="committed events")
        return outcome

    async def then_published(self, *expected: Event) -> FlowOutcome:
        """Assert the flow's bus delivered exactly ``expected`` to its listeners."""
        __tracebackhide__ = True
        outcome = await self.run()
        _no_error(outcome, f"{len(expected)} published event(s)")
        assert_events(expected, outcome.published, what="published events")
        return outcome

    async def then_raises(
        self,
        expected: type[BaseException] | tuple[type[BaseException], ...],
        *,
        match: str | None = None,
    ) -> FlowOutcome:
        """Assert the dispatch raised ``expected`` (``match``: a regex its message contains)."""
        __tracebackhide__ = True
        outcome = await self.run()
        committed = ", ".join(describe_event(e) for e in outcome.committed) or "nothing"
        assert_raised(
            outcome.error, expected, match, otherwise=f"the dispatch committed {committed}"
        )
        return outcome


def _no_error(outcome: FlowOutcome, wanted: str) -> None:
    __tracebackhide__ = True
    if outcome.error is not None:
        error = outcome.error
        raise AssertionError(
            f"expected {wanted}, but the dispatch raised {type(error).__name__}: {error}"
        ) from error
