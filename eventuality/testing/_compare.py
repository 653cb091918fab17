"""Compare events and rows the way a domain test means them, and print a readable diff.

Events are equal here when their type and payload are: ids, times, versions, positions and
metadata are the framework's stamps, not the domain's decision, so a test never spells them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from typing import Any

from ..messages import Event

__all__ = ["assert_events", "assert_raised", "assert_rows", "describe_event", "diff_lines"]


def describe_event(event: Event) -> str:
    """One line for an event: its class and payload, as a test would write it."""
    fields = ", ".join(f"{name}={value!r}" for name, value in event.payload.items())
    return f"{type(event).__name__}({fields})"


def _key(event: Event) -> tuple[str, dict[str, Any]]:
    return event.event_type, event.payload


def diff_lines(expected: Sequence[str], actual: Sequence[str]) -> list[str]:
    """``expected`` against ``actual``, one item a line: '  ' both, '- ' expected, '+ ' actual."""
    lines: list[str] = []
    matcher = difflib.SequenceMatcher(a=expected, b=actual, autojunk=False)
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag == "equal":
            lines.extend(f"  {line}" for line in expected[a0:a1])
            continue
        lines.extend(f"- {line}" for line in expected[a0:a1])
        lines.extend(f"+ {line}" for line in actual[b0:b1])
    return lines


def _report(title: str, expected: Sequence[str], actual: Sequence[str]) -> str:
    body = diff_lines(expected, actual) or ["  (none on either side)"]
    return "\n".join([f"{title} (- expected, + actual):", *body])


def assert_events(
    expected: Iterable[Event], actual: Iterable[Event], *, what: str = "events"
) -> None:
    """Fail with a diff unless ``actual`` holds the ``expected`` events' types and payloads,
    in order. ``what`` names the actual events in the message ("recorded events")."""
    __tracebackhide__ = True
    expected, actual = list(expected), list(actual)
    for event in expected:
        if not isinstance(event, Event):
            raise TypeError(f"expected events must be Event instances, not {event!r}")
    if [_key(e) for e in expected] == [_key(e) for e in actual]:
        return
    raise AssertionError(
        _report(
            f"{what} differ from the expected",
            [describe_event(e) for e in expected],
            [describe_event(e) for e in actual],
        )
    )


def assert_rows(expected: Iterable[Sequence[Any]], actual: Iterable[Sequence[Any]]) -> None:
    """Fail with a diff unless the rows are equal, in order (compared as tuples)."""
    __tracebackhide__ = True
    expected_rows = [tuple(row) for row in expected]
    actual_rows = [tuple(row) for row in actual]
    if expected_rows == actual_rows:
        return
    raise AssertionError(
        _report(
            "rows differ from the expected",
            [repr(row) for row in expected_rows],
            [repr(row) for row in actual_rows],
        )
    )


def assert_raised(
    error: BaseException | None,
    expected: type[BaseException] | tuple[type[BaseException], ...],
    match: str | None,
    *,
    otherwise: str,
) -> None:
    """Fail unless ``error`` is an ``expected`` whose message matches ``match`` (``re.search``).
    ``otherwise`` says what happened instead when nothing was raised."""
    __tracebackhide__ = True
    names = _names(expected)
    if error is None:
        raise AssertionError(f"expected {names} to be raised, but {otherwise}")
    if not isinstance(error, expected):
        raise AssertionError(
            f"expected {names} to be raised, but got {type(error).__name__}: {error}"
        ) from error
    if match is not None and not re.search(match, str(error)):
        raise AssertionError(
            f"{type(error).__name__} was raised, but its message {str(error)!r} "
            f"does not match {match!r}"
        ) from error


def _names(expected: type[BaseException] | tuple[type[BaseException], ...]) -> str:
    if isinstance(expected, tuple):
        return " or ".join(cls.__name__ for cls in expected)
    return expected.__name__
