"""The ratios reported, each taken within a round, with the bar ``BENCHMARKS.md`` sets."""

from __future__ import annotations

import operator
from dataclasses import dataclass

from common import Figures, Sizes

SYNCS = ("FULL", "NORMAL")  # the settings compared
ESP = "eventsource-py (3.13)"  # eventsource-py, on the Python >= 3.13 found
ESP_EV = "eventuality (3.13)"  # eventuality beside it, on the same interpreter
ES_THREAD = "eventsourcing SQLite (FULL) in a thread"


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
        if other[1] == ES_THREAD:
            return "eventsourcing in a thread"
        for peer in ("eventsource-py", "eventsourcing", "raw sqlite3", "raw aiosqlite", "asyncio"):
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


def w8_name(who: str, tasks: int) -> str:
    """A W8 contender: ``who`` during W2 (one task) or W6 (``tasks`` tasks)."""
    return f"{who} during W2" if tasks == 1 else f"{who} during W6 x{tasks}"


def checks(s: Sizes) -> list[Check]:
    es_full = "eventsourcing SQLite (FULL)"
    small, large = f"{s.w7_small:,} events", f"{s.w7_large:,} events"
    checks = [
        Check(
            "W1",
            "eventuality / eventsourcing POPO",
            ("W1", "eventuality", "commands/s"),
            ("W1", "eventsourcing POPO", "commands/s"),
            Bar(">=", 3),
        ),
        Check(
            "W1",
            "peak RSS: eventuality / eventsourcing",
            ("W1", "eventuality", "peak RSS MB"),
            ("W1", "eventsourcing POPO", "peak RSS MB"),
            Bar("<=", 1.25),
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
            Bar(">=", 1.5),
        ),
        Check(
            "W2",
            "eventuality FULL / eventsourcing (FULL) in a thread",
            ("W2", "eventuality FULL", "commands/s"),
            ("W2", ES_THREAD, "commands/s"),
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
                Bar(">=", 2) if sync == "NORMAL" else None,
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
            Bar(">=", 1.75),
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
            Bar(">=", 2),
        ),
    ]
    for sync in SYNCS:
        checks.append(
            Check(
                "W5",
                f"eventuality {sync} / raw sqlite3 executemany {sync}",
                ("W5", f"eventuality {sync}", "events/s"),
                ("W5", f"raw sqlite3 executemany {sync}", "events/s"),
                Bar(">=", 0.35),
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
                Bar(">=", 5) if sync == "FULL" else None,
            ),
            Check(
                "W6",
                f"{w6_name(sync, s.w6_tasks)} / raw sqlite3 insert {sync}",
                ("W6", w6_name(sync, s.w6_tasks), "commands/s"),
                ("W2", f"raw sqlite3 insert {sync}", "inserts/s"),
                Bar(">=", 0.4) if sync == "NORMAL" else None,
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
    checks += esp_checks() + w8_checks(s) + postgres_checks(s)
    return checks


def esp_checks() -> list[Check]:
    """eventuality against eventsource-py, both on the Python >= 3.13 found."""
    found: list[Check] = []
    for workload, figure, bar in (
        ("W1", "commands/s", Bar(">=", 3)),
        ("W2", "commands/s", None),
        ("W3", "events/s", Bar(">=", 4)),
        ("W4", "events/s", None),
        ("W5", "events/s", None),
    ):
        found.append(
            Check(
                workload,
                f"{ESP_EV} / {ESP}" + (" (FULL)" if workload in ("W2", "W5") else ""),
                (workload, ESP_EV, figure),
                (workload, ESP, figure),
                bar,
                "same interpreter",
            )
        )
    found.append(
        Check(
            "W3",
            f"snapshot load: {ESP} ms / {ESP_EV} ms",
            ("W3", f"{ESP} snapshot", "ms"),
            ("W3", f"{ESP_EV} snapshot", "ms"),
            Bar(">=", 1),
            "same interpreter",
        )
    )
    return found


def w8_checks(s: Sizes) -> list[Check]:
    """The loop's lag: eventuality's during W2 against the bar; the rest are figures."""
    found: list[Check] = []
    for sync in SYNCS:
        during = w8_name(f"eventuality {sync}", 1)
        found += [
            Check("W8", f"{during}: p99 lag ms", ("W8", during, "p99 lag ms"), None, Bar("<=", 1)),
            Check("W8", f"{during}: max lag ms", ("W8", during, "max lag ms"), None, Bar("<=", 10)),
        ]
    for tasks in (1, s.w6_tasks):
        for who in (
            *(f"eventuality {sync}" for sync in SYNCS if tasks != 1),
            "eventsourcing direct",
            "eventsourcing in a thread",
        ):
            name = w8_name(who, tasks)
            for figure in ("p99 lag ms", "max lag ms"):
                found.append(Check("W8", f"{name}: {figure}", ("W8", name, figure)))
    return found


def postgres_checks(s: Sizes) -> list[Check]:
    """On PostgreSQL (when a server is given): against eventsourcing's PostgreSQL module, and
    W6 against eventuality's own W2 there."""
    tasks = f"eventuality PostgreSQL x{s.w6_tasks} tasks"
    return [
        Check(
            "W2",
            "PostgreSQL: eventuality / eventsourcing",
            ("W2", "eventuality PostgreSQL", "commands/s"),
            ("W2", "eventsourcing PostgreSQL", "commands/s"),
            Bar(">=", 1.5),
        ),
        Check(
            "W5",
            "PostgreSQL: eventuality / eventsourcing",
            ("W5", "eventuality PostgreSQL", "events/s"),
            ("W5", "eventsourcing PostgreSQL", "events/s"),
            Bar(">=", 1.5),
        ),
        Check(
            "W6",
            f"PostgreSQL: {tasks} / own W2",
            ("W6", tasks, "commands/s"),
            ("W2", "eventuality PostgreSQL", "commands/s"),
            Bar(">=", 3),
        ),
    ]


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
