"""What runs: W1-W8 with their contenders and the stores they share (the ratios: checks.py)."""

from __future__ import annotations

import asyncio
import fcntl
import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import peers
import workloads as ev
from checks import ESP, ESP_EV, Check, Ref, checks, sweep, w6_name, w8_name
from child import run_child
from common import COMMANDS_PER_TODO, Figures, Sizes, timer, w6_todos
from py313 import Found

SYNCS: tuple[ev.Synchronous, ...] = ("FULL", "NORMAL")


class Bench:
    """The sizes, a scratch directory, and the stores built once and read in every round."""

    def __init__(
        self,
        sizes: Sizes,
        workdir: Path,
        log: Callable[[str], None],
        postgres: str | None = None,
        python313: Found | None = None,
        postgres_lock: Path | None = None,
    ) -> None:
        self.sizes = sizes
        self.postgres = postgres  # a DSN: W2, W5 and W6 run on PostgreSQL too
        self.postgres_lock = postgres_lock  # a file locked around each PostgreSQL measurement
        self.python313 = python313  # where eventsource-py (and eventuality beside it) runs
        self.workdir = workdir
        self.log = log
        self._fresh = itertools.count(1)
        self.es_w3_ids: dict[str, str] = {}
        self.esp_w3_ids: dict[str, str] = {}
        self.setup_seconds: dict[str, float] = {}

    def fresh(self, name: str) -> Path:
        """A database path in a new, empty directory."""
        directory = self.workdir / f"{next(self._fresh):04d}-{name}"
        directory.mkdir()
        return directory / "events.db"

    def stored(self, name: str) -> Path:
        return self.workdir / "shared" / name

    def build(self, what: str, build: Callable[[], object]) -> None:
        self.stored("").mkdir(exist_ok=True)
        with timer() as elapsed:
            build()
        self.setup_seconds[what] = round(elapsed(), 2)
        self.log(f"setup  {what}: {elapsed():.1f} s")


@contextmanager
def file_lock(path: Path | None) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` for the block (nothing without a path): a server
    shared with others is used by one of them at a time."""
    if path is None:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Contender:
    name: str
    run: Callable[[int], Figures]  # the round number -> one measurement


@dataclass(frozen=True)
class Workload:
    id: str
    title: str
    contenders: list[Contender]
    setup: Callable[[], None] | None = None


@dataclass
class Plan:
    workloads: list[Workload]
    checks: list[Check] = field(default_factory=list)
    sweep: dict[str, dict[int, Ref]] = field(default_factory=dict)  # sync -> tasks -> figure


def build_plan(bench: Bench) -> Plan:
    s = bench.sizes
    a = asyncio.run
    w3_ev, w3_es = bench.stored("w3-eventuality.db"), bench.stored("w3-eventsourcing.db")
    w4_ev, w4_es = bench.stored("w4-eventuality.db"), bench.stored("w4-eventsourcing.db")
    w7 = {"small": bench.stored("w7-small.db"), "large": bench.stored("w7-large.db")}
    w7_size = {"small": s.w7_small, "large": s.w7_large}
    commands = s.w2_todos * COMMANDS_PER_TODO

    def setup_w3() -> None:
        bench.build("W3 eventuality", lambda: a(ev.build_w3(w3_ev, s.w3_events, s.w3_snapshot_gap)))

        def es() -> None:
            bench.es_w3_ids = peers.build_es_w3(w3_es, s.w3_events, s.w3_snapshot_gap)

        bench.build("W3 eventsourcing", es)
        setup_esp_w3()

    def setup_w4() -> None:
        bench.build("W4 eventuality", lambda: a(ev.build_log(w4_ev, s.w4_todos)))
        bench.build("W4 eventsourcing", lambda: peers.build_es_log(w4_es, s.w4_todos))
        setup_esp_w4()

    def setup_w7() -> None:
        for key in ("small", "large"):
            bench.build(
                f"W7 eventuality store of {w7_size[key]:,} events (prefill through the API)",
                partial(a, ev.build_scale_store(w7[key], w7_size[key], s.w3_events)),
            )

    def w7_dispatch(key: str) -> Callable[[int], Figures]:
        return lambda r: a(ev.ev_scale_dispatch(w7[key], s.w7_todos, f"r{r}"))

    def w7_load(key: str) -> Callable[[int], Figures]:
        return lambda r: a(ev.ev_load(w7[key], s.w3_events, s.w3_loads))

    def w2(sync: ev.Synchronous, idempotency: bool = True) -> Callable[[int], Figures]:
        return lambda r: a(
            ev.ev_dispatch_sqlite(bench.fresh("w2"), s.w2_todos, sync, idempotency=idempotency)
        )

    def w5(sync: ev.Synchronous) -> Callable[[int], Figures]:
        return lambda r: a(ev.ev_append_batch(bench.fresh("w5"), s.w5_saves, s.w5_batch, sync))

    def w6(sync: ev.Synchronous, tasks: int) -> Callable[[int], Figures]:
        todos = w6_todos(s, tasks)
        return lambda r: a(ev.ev_dispatch_concurrent(bench.fresh("w6"), todos, tasks, sync))

    def locked(run: Callable[[], Figures]) -> Callable[[int], Figures]:
        def measure(r: int) -> Figures:
            with file_lock(bench.postgres_lock):
                return run()

        return measure

    def on_postgres(workload: str) -> list[Contender]:
        """PostgreSQL contenders, when a server was given: eventuality, and eventsourcing's
        PostgreSQL module on the same server (W2, W5), each in a schema of its own."""
        dsn = bench.postgres
        if not dsn:
            return []
        if workload == "W2":
            run = partial(ev.ev_dispatch_postgres, dsn, s.w2_todos)
            return [
                Contender("eventuality PostgreSQL", locked(lambda: a(run()))),
                Contender(
                    "eventsourcing PostgreSQL",
                    locked(partial(peers.es_dispatch_postgres, dsn, s.w2_todos)),
                ),
            ]
        if workload == "W5":
            run = partial(ev.ev_append_batch_postgres, dsn, s.w5_saves, s.w5_batch)
            return [
                Contender("eventuality PostgreSQL", locked(lambda: a(run()))),
                Contender(
                    "eventsourcing PostgreSQL",
                    locked(partial(peers.es_append_batch_postgres, dsn, s.w5_saves, s.w5_batch)),
                ),
            ]
        todos = w6_todos(s, s.w6_tasks)
        run = partial(ev.ev_dispatch_concurrent_postgres, dsn, todos, s.w6_tasks)
        return [Contender(f"eventuality PostgreSQL x{s.w6_tasks} tasks", locked(lambda: a(run())))]

    python = bench.python313.python if bench.python313 else None
    esp_w3, esp_w4 = bench.stored("w3-eventsource-py.db"), bench.stored("w4-eventsource-py.db")

    def on_313(workload: str) -> list[Contender]:
        """eventsource-py and eventuality, each in a fresh process on the Python >= 3.13 found
        (same process kind, same sizes), when there is one."""
        if python is None:
            return []

        def child(job: str, **args: Any) -> Callable[[int], Figures]:
            return lambda r: run_child(job, python, **args)

        def fresh(job: str, name: str, **args: Any) -> Callable[[int], Figures]:
            return lambda r: run_child(job, python, path=str(bench.fresh(name)), **args)

        jobs: dict[str, tuple[Callable[[int], Figures], Callable[[int], Figures]]] = {
            "W1": (child("ev:w1", todos=s.w1_todos), child("esp:w1", todos=s.w1_todos)),
            "W2": (
                fresh("ev:w2", "w2-313", todos=s.w2_todos),
                fresh("esp:w2", "w2-esp", todos=s.w2_todos),
            ),
            "W3": (
                child("ev:w3", path=str(w3_ev), events=s.w3_events, loads=s.w3_loads),
                lambda r: run_child(
                    "esp:w3",
                    python,
                    path=str(esp_w3),
                    id=bench.esp_w3_ids["long"],
                    events=s.w3_events,
                    loads=s.w3_loads,
                ),
            ),
            "W4": (child("ev:w4", path=str(w4_ev)), child("esp:w4", path=str(esp_w4))),
            "W5": (
                fresh("ev:w5", "w5-313", saves=s.w5_saves, batch=s.w5_batch),
                fresh("esp:w5", "w5-esp", saves=s.w5_saves, batch=s.w5_batch),
            ),
        }
        ours, theirs = jobs[workload]
        found = [Contender(ESP_EV, ours), Contender(ESP, theirs)]
        if workload == "W3":
            found += [
                Contender(
                    f"{ESP_EV} snapshot",
                    child(
                        "ev:w3_snapshot",
                        path=str(w3_ev),
                        events=s.w3_events,
                        gap=s.w3_snapshot_gap,
                        loads=s.w3_snapshot_loads,
                    ),
                ),
                Contender(
                    f"{ESP} snapshot",
                    lambda r: run_child(
                        "esp:w3_snapshot",
                        python,
                        path=str(esp_w3),
                        id=bench.esp_w3_ids["snapshot"],
                        loads=s.w3_snapshot_loads,
                    ),
                ),
            ]
        return found

    def setup_esp_w3() -> None:
        if python is None:
            return

        def build() -> None:
            bench.esp_w3_ids = run_child(
                "esp:build_w3", python, path=str(esp_w3), events=s.w3_events, gap=s.w3_snapshot_gap
            )

        bench.build("W3 eventsource-py (Python >= 3.13)", build)

    def setup_esp_w4() -> None:
        if python is not None:
            bench.build(
                "W4 eventsource-py (Python >= 3.13)",
                lambda: run_child("esp:build_w4", python, path=str(esp_w4), todos=s.w4_todos),
            )

    def w8_ev(sync: ev.Synchronous, tasks: int) -> Callable[[int], Figures]:
        todos = s.w2_todos if tasks == 1 else w6_todos(s, tasks)
        return lambda r: a(ev.ev_loop_lag(bench.fresh("w8"), todos, tasks, sync))

    def w8_es(tasks: int, thread: bool) -> Callable[[int], Figures]:
        todos = s.w2_todos if tasks == 1 else w6_todos(s, tasks)
        return lambda r: peers.es_loop_lag(bench.fresh("w8-es"), todos, tasks, thread)

    def raw(kind: str, sync: str) -> Callable[[int], Figures]:
        if kind == "sqlite3 insert":
            return lambda r: peers.sqlite3_insert_each(bench.fresh("raw"), commands, sync)
        if kind == "aiosqlite insert":
            return lambda r: a(peers.aiosqlite_insert_each(bench.fresh("raw"), commands, sync))
        if kind == "sqlite3 executemany":
            return lambda r: peers.sqlite3_insert_batches(
                bench.fresh("raw"), s.w5_saves, s.w5_batch, sync
            )
        return lambda r: a(
            peers.aiosqlite_insert_batches(bench.fresh("raw"), s.w5_saves, s.w5_batch, sync)
        )

    C = Contender
    workloads = [
        Workload(
            "W1",
            "dispatch-mem",
            [
                C("eventuality", lambda r: run_child("w1:eventuality", todos=s.w1_todos)),
                C("eventsourcing POPO", lambda r: run_child("w1:eventsourcing", todos=s.w1_todos)),
                C(
                    "asyncio floor",
                    lambda r: run_child("w1:asyncio", commands=s.w1_todos * COMMANDS_PER_TODO),
                ),
                *on_313("W1"),
            ],
        ),
        Workload(
            "W2",
            "dispatch-sqlite",
            [
                C("eventuality FULL", w2("FULL")),
                C("eventuality NORMAL", w2("NORMAL")),
                *[C(f"eventuality {sync}, no idempotency", w2(sync, False)) for sync in SYNCS],
                C(
                    "eventsourcing SQLite (FULL)",
                    lambda r: peers.es_dispatch_sqlite(bench.fresh("w2-es"), s.w2_todos),
                ),
                C(
                    "eventsourcing SQLite (FULL) in a thread",
                    lambda r: peers.es_dispatch_sqlite_thread(bench.fresh("w2-es"), s.w2_todos),
                ),
                *[
                    C(f"raw {k} {sync}", raw(k, sync))
                    for k in ("aiosqlite insert", "sqlite3 insert")
                    for sync in SYNCS
                ],
                *on_313("W2"),
                *on_postgres("W2"),
            ],
        ),
        Workload(
            "W3",
            "load-long",
            [
                C("eventuality", lambda r: a(ev.ev_load(w3_ev, s.w3_events, s.w3_loads))),
                C(
                    "eventuality snapshot",
                    lambda r: a(
                        ev.ev_load_snapshot(
                            w3_ev, s.w3_events, s.w3_snapshot_gap, s.w3_snapshot_loads
                        )
                    ),
                ),
                C(
                    "eventsourcing",
                    lambda r: peers.es_load(
                        w3_es, bench.es_w3_ids["long"], s.w3_events, s.w3_loads
                    ),
                ),
                C(
                    "eventsourcing snapshot",
                    lambda r: peers.es_load_snapshot(
                        w3_es, bench.es_w3_ids["snapshot"], s.w3_snapshot_loads
                    ),
                ),
                C(
                    "raw sqlite3 select",
                    lambda r: peers.sqlite3_select_stream(
                        w3_ev, f"BenchTodo-{ev.LONG_ID}", s.w3_loads
                    ),
                ),
                C(
                    "raw aiosqlite select",
                    lambda r: a(
                        peers.aiosqlite_select_stream(w3_ev, f"BenchTodo-{ev.LONG_ID}", s.w3_loads)
                    ),
                ),
                *on_313("W3"),
            ],
            setup_w3,
        ),
        Workload(
            "W4",
            "read-all",
            [
                C("eventuality", lambda r: run_child("w4:eventuality", path=str(w4_ev))),
                C("eventsourcing", lambda r: run_child("w4:eventsourcing", path=str(w4_es))),
                C("raw sqlite3 scan", lambda r: run_child("w4:sqlite3", path=str(w4_ev))),
                C("raw aiosqlite scan", lambda r: run_child("w4:aiosqlite", path=str(w4_ev))),
                *on_313("W4"),
            ],
            setup_w4,
        ),
        Workload(
            "W5",
            "append-batch",
            [
                C("eventuality FULL", w5("FULL")),
                C("eventuality NORMAL", w5("NORMAL")),
                C(
                    "eventsourcing SQLite (FULL)",
                    lambda r: peers.es_append_batch(bench.fresh("w5-es"), s.w5_saves, s.w5_batch),
                ),
                *[
                    C(f"raw {k} {sync}", raw(k, sync))
                    for k in ("sqlite3 executemany", "aiosqlite executemany")
                    for sync in SYNCS
                ],
                *on_313("W5"),
                *on_postgres("W5"),
            ],
        ),
        Workload(
            "W6",
            "dispatch-concurrent",
            [
                *[
                    C(w6_name(sync, tasks), w6(sync, tasks))
                    for sync in SYNCS
                    for tasks in sorted({*s.w6_sweep, s.w6_tasks})
                    if tasks != 1  # one task is W2
                ],
                *on_postgres("W6"),
            ],
        ),
        Workload(
            "W7",
            "scale",
            [
                *[C(f"W2 NORMAL on {w7_size[k]:,} events", w7_dispatch(k)) for k in w7],
                *[C(f"W3 load on {w7_size[k]:,} events", w7_load(k)) for k in w7],
            ],
            setup_w7,
        ),
        Workload(
            "W8",
            "loop-lag",
            [
                *[
                    C(w8_name(f"eventuality {sync}", tasks), w8_ev(sync, tasks))
                    for tasks in (1, s.w6_tasks)
                    for sync in SYNCS
                ],
                *[
                    C(w8_name(f"eventsourcing {how}", tasks), w8_es(tasks, how == "in a thread"))
                    for tasks in (1, s.w6_tasks)
                    for how in ("direct", "in a thread")
                ],
            ],
        ),
    ]
    return Plan(workloads, checks(s), sweep(s))
