"""The ratios reported, each taken within a round, with the bar ``BENCHMARKS.md`` sets."""

from __future__ import annotations

import operator
from dataclasses import dataclass

from common import Figures, Sizes

SYNCS = ("FULL", "NORMAL")  # the settings compared


@dataclass(frozen=True)
class Bar:
    op: str  # ">=", "<=" or "<"
    value: float

    def met(self, value: float) -> bool:
        compare = {">=": operator.ge, "<=": operator.le, "<": operator.lt}[self.op]
        return bool(compare(value, self.value))

    def __str__(self) -> str:
        sign = {">=": "≥", "<=": "≤", "<": "<"}[self.op]
        return f"{sign} {self.value:g}"


Ref = tuple[str, str, str]  # workload, contender, figure


@dataclass(frozen=True)
class Check:
    """A ratio ``num / den`` taken within each round (or, without ``den``, a figure itself),
    with its bar if ``BENCHMARKS.md`` sets one."""

    workload: str
    label: str
    num: Ref
    den: Ref | None = None
    bar: Bar | None = None
    note: str = ""

    @property
    def peer(self) -> str:
        """Whom eventuality is measured against, for the chart's colours."""
        if self.workload == "W7":
            return "eventuality, small store / large"
        if self.den is None:
            return "eventuality alone"
        other = self.num if self.num[1].startswith("eventsourcing") else self.den
        if other[1].startswith("eventuality"):
            return f"eventuality's own {other[0]}" if other[0] != self.workload else "eventuality"
        for peer in ("eventsourcing", "raw sqlite3", "raw aiosqlite", "asyncio"):
            if other[1].startswith(peer):
                return peer
        return other[1]

    @property
    def lower_is_better(self) -> bool:
        return self.bar is not None and self.bar.op != ">="

    def value(self, figures: dict[str, dict[str, Figures]]) -> float | None:
        def get(ref: Ref) -> float | None:
            return figures.get(ref[0], {}).get(ref[1], {}).get(ref[2])

        num = get(self.num)
        if self.den is None:
            return num
        den = get(self.den)
        return None if num is None or not den else num / den


def w6_name(sync: str, tasks: int) -> str:
    return f"eventuality {sync} x{tasks} tasks"


def checks(s: Sizes) -> list[Check]:
    es_full = "eventsourcing SQLite (FULL)"
    small, large = f"{s.w7_small:,} events", f"{s.w7_large:,} events"
    checks = [
        Check(
            "W1",
            "eventuality / eventsourcing POPO",
            ("W1", "eventuality", "commands/s"),
            ("W1", "eventsourcing POPO", "commands/s"),
            Bar(">=", 5),
        ),
        Check(
            "W1",
            "peak RSS: eventuality / eventsourcing",
            ("W1", "eventuality", "peak RSS MB"),
            ("W1", "eventsourcing POPO", "peak RSS MB"),
            Bar("<=", 1),
            "memory bar",
        ),
        Check(
            "W1",
            "eventuality / asyncio floor",
            ("W1", "eventuality", "commands/s"),
            ("W1", "asyncio floor", "awaits/s"),
        ),
        Check(
            "W2",
            "eventuality FULL / eventsourcing (FULL)",
            ("W2", "eventuality FULL", "commands/s"),
            ("W2", es_full, "commands/s"),
            Bar(">=", 2),
        ),
    ]
    for sync in SYNCS:
        checks.append(
            Check(
                "W2",
                f"eventuality {sync} / raw aiosqlite insert {sync}",
                ("W2", f"eventuality {sync}", "commands/s"),
                ("W2", f"raw aiosqlite insert {sync}", "inserts/s"),
                Bar(">=", 1.5),
            )
        )
    for sync in SYNCS:
        checks.append(
            Check(
                "W2",
                f"idempotency cost: eventuality {sync} / no idempotency",
                ("W2", f"eventuality {sync}", "commands/s"),
                ("W2", f"eventuality {sync}, no idempotency", "commands/s"),
                Bar(">=", 0.9),
                "issue 11: at most 10% slower",
            )
        )
    for sync in SYNCS:
        checks.append(
            Check(
                "W2",
                f"eventuality {sync} / raw sqlite3 insert {sync}",
                ("W2", f"eventuality {sync}", "commands/s"),
                ("W2", f"raw sqlite3 insert {sync}", "inserts/s"),
            )
        )
    checks += [
        Check(
            "W3",
            "eventuality / eventsourcing (replay)",
            ("W3", "eventuality", "events/s"),
            ("W3", "eventsourcing", "events/s"),
            Bar(">=", 4),
        ),
        Check(
            "W3",
            "snapshot load: eventsourcing ms / eventuality ms",
            ("W3", "eventsourcing snapshot", "ms"),
            ("W3", "eventuality snapshot", "ms"),
            Bar(">=", 1),
        ),
        Check(
            "W3",
            "eventuality / raw sqlite3 select + JSON",
            ("W3", "eventuality", "events/s"),
            ("W3", "raw sqlite3 select", "events/s"),
        ),
        Check(
            "W4",
            "eventuality / eventsourcing",
            ("W4", "eventuality", "events/s"),
            ("W4", "eventsourcing", "events/s"),
            Bar(">=", 2),
        ),
        Check(
            "W4",
            "eventuality peak RSS growth, MB",
            ("W4", "eventuality", "peak RSS MB"),
            None,
            Bar("<", 10),
            "a figure, not a ratio",
        ),
        Check(
            "W4",
            "eventuality / raw sqlite3 scan + JSON",
            ("W4", "eventuality", "events/s"),
            ("W4", "raw sqlite3 scan", "events/s"),
        ),
        Check(
            "W4",
            "eventuality / raw aiosqlite scan + JSON",
            ("W4", "eventuality", "events/s"),
            ("W4", "raw aiosqlite scan", "events/s"),
        ),
        Check(
            "W5",
            "eventuality FULL / eventsourcing (FULL)",
            ("W5", "eventuality FULL", "events/s"),
            ("W5", es_full, "events/s"),
            Bar(">=", 3),
        ),
    ]
    for sync in SYNCS:
        checks.append(
            Check(
                "W5",
                f"eventuality {sync} / raw sqlite3 executemany {sync}",
                ("W5", f"eventuality {sync}", "events/s"),
                ("W5", f"raw sqlite3 executemany {sync}", "events/s"),
                Bar(">=", 0.5),
            )
        )
    for sync in SYNCS:
        checks.append(
            Check(
                "W5",
                f"eventuality {sync} / raw aiosqlite executemany {sync}",
                ("W5", f"eventuality {sync}", "events/s"),
                ("W5", f"raw aiosqlite executemany {sync}", "events/s"),
            )
        )
    for sync in SYNCS:
        checks += [
            Check(
                "W6",
                f"{w6_name(sync, s.w6_tasks)} / own W2 {sync}",
                ("W6", w6_name(sync, s.w6_tasks), "commands/s"),
                ("W2", f"eventuality {sync}", "commands/s"),
                Bar(">=", 5),
            ),
            Check(
                "W6",
                f"{w6_name(sync, s.w6_tasks)} / raw sqlite3 insert {sync}",
                ("W6", w6_name(sync, s.w6_tasks), "commands/s"),
                ("W2", f"raw sqlite3 insert {sync}", "inserts/s"),
                Bar(">=", 0.5),
            ),
        ]
    checks += [
        Check(
            "W7",
            f"W2 slowdown: {small} / {large}",
            ("W7", f"W2 NORMAL on {small}", "commands/s"),
            ("W7", f"W2 NORMAL on {large}", "commands/s"),
            Bar("<=", 1.5),
        ),
        Check(
            "W7",
            f"W3 slowdown: {small} / {large}",
            ("W7", f"W3 load on {small}", "events/s"),
            ("W7", f"W3 load on {large}", "events/s"),
            Bar("<=", 1.5),
        ),
    ]
    return checks


def sweep(s: Sizes) -> dict[str, dict[int, Ref]]:
    """W6's throughput against the number of tasks; one task is W2."""
    return {
        sync: {
            tasks: (
                ("W2", f"eventuality {sync}", "commands/s")
                if tasks == 1
                else ("W6", w6_name(sync, tasks), "commands/s")
            )
            for tasks in s.w6_sweep
        }
        for sync in SYNCS
    }
