"""Given/when/then for aggregates: past events, one action, the events it recorded.

Runs synchronously and touches no store, because an aggregate's decisions are plain code:

    given(Todo, TodoCreated(description="x"), id="t1").when(lambda t: t.complete()).then(
        TodoCompleted()
    )
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Self, TypeVar

from ..aggregate import Aggregate
from ..messages import Event, evolve
from ._compare import assert_events, assert_raised, describe_event

__all__ = ["AggregateOutcome", "AggregateScenario", "given"]

A = TypeVar("A", bound=Aggregate)


def given(aggregate: type[A], *events: Event, id: str = "test-1") -> AggregateScenario[A]:
    """An ``aggregate`` with id ``id`` rebuilt from ``events``, as a repository would load it.

    With no events it is a fresh instance (version 0), the subject of a creation test.
    """
    return AggregateScenario(aggregate, events, id)


class AggregateScenario(Generic[A]):
    """The past of one aggregate; :meth:`when` runs an action on it."""

    def __init__(self, aggregate: type[A], events: tuple[Event, ...], id: str) -> None:
        if not (isinstance(aggregate, type) and issubclass(aggregate, Aggregate)):
            raise TypeError(f"given() takes an Aggregate subclass first, not {aggregate!r}")
        for event in events:
            if not isinstance(event, Event):
                raise TypeError(f"given() takes Event instances after the class, not {event!r}")
        self.aggregate_class = aggregate
        self.events = events
        self.id = id

    def build(self) -> A:
        """A new aggregate with the given events applied and nothing pending."""
        subject = self.aggregate_class(id=self.id)
        stamped = [
            evolve(event, {"aggregate_id": self.id, "aggregate_version": version})
            for version, event in enumerate(self.events, start=1)
        ]
        subject.replay(stamped)
        return subject

    def when(self, action: Callable[[A], object]) -> AggregateOutcome[A]:
        """Run ``action`` on a freshly built aggregate and keep what happened: the events it
        recorded, or the error it raised. If ``action`` returns an aggregate (a ``create``
        classmethod does), that one's recorded events are the outcome."""
        subject = self.build()
        try:
            result = action(subject)
        except Exception as error:
            return AggregateOutcome(subject, None, error)
        if isinstance(result, Aggregate):
            subject = result  # type: ignore[assignment]  # a creation returns the new aggregate
        return AggregateOutcome(subject, result, None)


class AggregateOutcome(Generic[A]):
    """What one action did. Each ``then*`` check returns the outcome, so checks chain."""

    def __init__(self, aggregate: A, result: object, error: Exception | None) -> None:
        self.aggregate = aggregate
        self.result = result
        self.error = error

    @property
    def events(self) -> tuple[Event, ...]:
        """The events the action recorded (pending on the aggregate), oldest first."""
        return self.aggregate.pending_events

    def then(self, *expected: Event) -> Self:
        """Assert the action recorded exactly ``expected`` (type and payload, in order);
        no arguments: it recorded nothing."""
        __tracebackhide__ = True
        self._no_error(f"{len(expected)} recorded event(s)")
        assert_events(expected, self.events, what="recorded events")
        return self

    def then_raises(
        self,
        expected: type[BaseException] | tuple[type[BaseException], ...],
        *,
        match: str | None = None,
    ) -> Self:
        """Assert the action raised ``expected`` (``match``: a regex its message contains)."""
        __tracebackhide__ = True
        recorded = ", ".join(describe_event(e) for e in self.events) or "nothing"
        assert_raised(self.error, expected, match, otherwise=f"the action recorded {recorded}")
        return self

    def then_state(self, check: Callable[[A], object]) -> Self:
        """Run ``check`` on the aggregate after the action. It may assert itself, or return a
        value: a falsy one other than ``None`` fails, showing the aggregate's state."""
        __tracebackhide__ = True
        self._no_error("a state to check")
        verdict = check(self.aggregate)
        if verdict is not None and not verdict:
            raise AssertionError(f"the state check returned {verdict!r} for {self.aggregate!r}")
        return self

    def _no_error(self, wanted: str) -> None:
        __tracebackhide__ = True
        if self.error is not None:
            raise AssertionError(
                f"expected {wanted}, but the action raised "
                f"{type(self.error).__name__}: {self.error}"
            ) from self.error
