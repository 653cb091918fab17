"""Domain tests in a few lines: given past events, when an action or a command, then events.

- :func:`given` for aggregates: sync, no store (``given(Todo, ...).when(...).then(...)``).
- :class:`FlowScenario` for flows: events in streams, a command, what it committed, raised or
  published; awaited, on a fresh store per check.
- :class:`ProjectionScenario` for projections and subscriptions: events, catch-up, the rows.

Events compare by type and payload, never by ids, times, versions, positions or metadata; a
mismatch fails with an ``AssertionError`` holding a diff, one event a line. Everything runs on
asyncio and trio (on trio with the in-memory store: the others need asyncio).

The pytest fixtures (``event_store``) are in :mod:`eventuality.testing.fixtures`, off until a
conftest or the ini turns them on (see :mod:`eventuality.testing.plugin`).
"""

import inspect

from ._aggregate import AggregateOutcome as AggregateOutcome
from ._aggregate import AggregateScenario as AggregateScenario
from ._aggregate import given as given
from ._compare import assert_events as assert_events
from ._compare import assert_rows as assert_rows
from ._compare import describe_event as describe_event
from ._flow import FlowFactory as FlowFactory
from ._flow import FlowOutcome as FlowOutcome
from ._flow import FlowScenario as FlowScenario
from ._projection import ProjectionFactory as ProjectionFactory
from ._projection import ProjectionScenario as ProjectionScenario
from ._stores import StoreChoice as StoreChoice

__all__ = [
    "AggregateOutcome",
    "AggregateScenario",
    "FlowFactory",
    "FlowOutcome",
    "FlowScenario",
    "ProjectionFactory",
    "ProjectionScenario",
    "StoreChoice",
    "assert_events",
    "assert_rows",
    "describe_event",
    "given",
]


def _fix_module_names() -> None:
    """Report public names as ``eventuality.testing.X``, where users import them from."""
    for name in __all__:
        value = globals()[name]
        if isinstance(value, type) or inspect.isfunction(value):
            value.__module__ = __name__


_fix_module_names()
