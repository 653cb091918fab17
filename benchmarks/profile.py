"""Where the time goes: eventuality's W1-W6 broken down per command / per event (issue 14).

    python benchmarks/profile.py                      # wall clock, phases, cProfile, raw limits
    python benchmarks/profile.py --workload W2        # one workload (W2 = W2-FULL and W2-NORMAL)
    python benchmarks/profile.py --callgrind          # also instruction counts (slow: minutes)

Four views, each per unit of work (a command for W1, W2, W6; an event for W3, W4, W5):

- **wall**: the median over ``--rounds`` runs of the uninstrumented workload (µs per unit);
- **phases**: the same workload with timers wrapped around the library's functions (by
  monkeypatching them here; the library is not changed), each phase's *exclusive* time, so the
  phases add up to the instrumented total. Functions on the SQLite threads are timed on their
  own side, and the thread round trip is what the loop waited beyond them. Single-task
  workloads only (a global stack of timers cannot follow 100 interleaved tasks: W6 has wall,
  cProfile and callgrind);
- **cprofile**: the top functions by own time (cProfile inflates Python-heavy code: read the
  shares, not the µs);
- **callgrind** (``--callgrind``): each workload run bare under ``valgrind --tool=callgrind`` at
  two sizes N and 3N; the difference divided by 2N units removes start-up, imports and setup.
  Instructions are split between the event-loop thread (``(below main)``) and the SQLite
  threads (``start_thread``), with the top functions by own instructions (C level: the
  interpreter, pydantic-core, SQLite, the JSON codec). Deterministic to a fraction of a percent,
  where the wall clock on this shared machine is not; fsync time is not an instruction.

``--bare W --size N`` runs one workload once with nothing around it (what valgrind runs).
Results go to ``--out`` (default ``benchmarks/results/profile``) as JSON; the report is
printed as markdown (``PROFILE.md`` is made from it).
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is called profile.py, which shadows the standard library's ``profile`` that
# cProfile imports: import cProfile with this directory off the path.
_HERE = str(Path(__file__).resolve().parent)
_saved_path = sys.path[:]
sys.path[:] = [p for p in sys.path if p not in ("", _HERE, ".")]
sys.modules.pop("profile", None)
import cProfile  # noqa: E402
import pstats  # noqa: E402

sys.path[:] = _saved_path
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import functools  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

from common import COMMANDS_PER_TODO, median  # noqa: E402
from workloads import (  # noqa: E402
    BenchTodo,
    build_long_streams,
    dispatch_todos,
    long_todo,
    make_flow,
    prefill,
    sqlite_store,
    todo_ids,
)

from eventuality import InMemoryEventStore, Repository  # noqa: E402

ns = time.perf_counter_ns

# --- the workloads, each as: build (untimed) then work (timed) ------------------------------


@dataclass
class Spec:
    name: str
    unit: str  # "command" or "event"
    size: int  # default size for wall / phases / cprofile
    cg_size: int  # N for callgrind (runs N and 3N)
    per_size: int  # units per size step
    what: str
    single_task: bool = True


SPECS = {
    s.name: s
    for s in [
        Spec("W1", "command", 1000, 200, COMMANDS_PER_TODO, "todos' commands, in memory"),
        Spec("W2-FULL", "command", 200, 60, COMMANDS_PER_TODO, "todos' commands, SQLite FULL"),
        Spec("W2-NORMAL", "command", 400, 60, COMMANDS_PER_TODO, "todos' commands, SQLite NORMAL"),
        Spec("W3", "event", 5, 1, 10_000, "loads of a 10,000-event stream"),
        Spec("W4", "event", 1, 1, 100_000, "reads of a 100,000-event log"),
        Spec("W5", "event", 200, 20, 100, "saves of 100 new events (NORMAL)"),
        Spec("W6", "command", 200, 100, COMMANDS_PER_TODO, "todos' commands, 100 tasks", False),
    ]
}
W4_CG_EVENTS = 10_000  # under callgrind W4 reads a 10,000-event log (1 and 3 times)


class Run:
    """One workload on a fresh store (read workloads: on a store built once, in ``cache``)."""

    def __init__(self, spec: Spec, size: int, cache: Path, *, callgrind: bool = False) -> None:
        self.spec, self.size, self.cache, self.callgrind = spec, size, cache, callgrind
        self.units = size * spec.per_size
        if spec.name == "W4" and callgrind:
            self.units = size * W4_CG_EVENTS

    async def __call__(self, timed: Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]):
        """Build, then ``await timed(work)``: ``timed`` decides what wraps the work."""
        name, size = self.spec.name, self.size
        tmp = Path(tempfile.mkdtemp(prefix="evprof-"))
        try:
            if name == "W1":
                flow = make_flow(InMemoryEventStore())
                ids = todo_ids(size)
                return await timed(lambda: dispatch_todos(flow, ids))
            if name.startswith("W2") or name == "W6":
                sync = "FULL" if name == "W2-FULL" else "NORMAL"
                tasks = 100 if name == "W6" else 1
                async with sqlite_store(tmp / "w.db", sync) as store:  # type: ignore[arg-type]
                    flow = make_flow(store)
                    ids = todo_ids(size)
                    shares = [ids[k::tasks] for k in range(tasks)]

                    async def work() -> None:
                        await asyncio.gather(*(dispatch_todos(flow, s) for s in shares))

                    return await timed(work if tasks > 1 else lambda: dispatch_todos(flow, ids))
            if name == "W3":
                path = await cached(self.cache, "w3.db", build_w3_store)
                async with sqlite_store(path) as store:
                    repository = Repository(BenchTodo, store)

                    async def loads() -> None:
                        for _ in range(size):
                            await repository.load("long")

                    return await timed(loads)
            if name == "W4":
                events = W4_CG_EVENTS if self.callgrind else 100_000
                path = await cached(
                    self.cache, f"w4-{events}.db", functools.partial(build_w4_store, events)
                )
                async with sqlite_store(path) as store:

                    async def reads() -> None:
                        for _ in range(size):
                            counts: Counter[str] = Counter()
                            async for event in store.read_all():
                                counts[event.event_type] += 1

                    return await timed(reads)
            if name == "W5":
                async with sqlite_store(tmp / "w.db", "NORMAL") as store:
                    repository = Repository(BenchTodo, store)

                    async def saves() -> None:
                        for i in range(size):
                            await repository.save(long_todo(f"batch-{i}", 100))

                    return await timed(saves)
            raise ValueError(name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


async def build_w3_store(path: Path) -> None:
    async with sqlite_store(path) as store:
        await build_long_streams(store, 10_000, 10)


async def build_w4_store(events: int, path: Path) -> None:
    async with sqlite_store(path) as store:
        await prefill(store, events, "todo")


async def cached(cache: Path, name: str, build: Callable[[Path], Awaitable[None]]) -> Path:
    path = cache / name
    if not path.exists():
        part = cache / f"{name}.part"
        part.unlink(missing_ok=True)
        await build(part)
        for suffix in ("-wal", "-shm"):
            Path(f"{part}{suffix}").unlink(missing_ok=True)
        part.rename(path)
    return path


async def just_run(work: Callable[[], Awaitable[Any]]) -> None:
    await work()


async def wall_ns(work: Callable[[], Awaitable[Any]]) -> int:
    gc.collect()
    start = ns()
    await work()
    return ns() - start


# --- phases: timers wrapped around library functions ---------------------------------------


@dataclass
class _Frame:
    name: str
    start: int
    child: int = 0


@dataclass
class Phases:
    """Exclusive time per phase on the loop, and per function on the SQLite threads."""

    loop: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    thread: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    thread_calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    thread_top: int = 0  # inclusive time of the outermost timed function of each thread call
    stack: list[_Frame] = field(default_factory=list)
    local: threading.local = field(default_factory=threading.local)
    lock: threading.Lock = field(default_factory=threading.Lock)
    main: int = field(default_factory=threading.get_ident)
    active: bool = False  # only the timed block counts (not opening stores, not building)

    def _enter(self, name: str) -> _Frame:
        stack = self.stack if threading.get_ident() == self.main else self._tstack()
        frame = _Frame(name, ns())
        stack.append(frame)
        return frame

    def _tstack(self) -> list[_Frame]:
        stack = getattr(self.local, "stack", None)
        if stack is None:
            stack = self.local.stack = []
        return stack

    def _leave(self, frame: _Frame) -> None:
        elapsed = ns() - frame.start
        if threading.get_ident() == self.main:
            stack, into, calls = self.stack, self.loop, self.calls
            stack.pop()
            if not self.active:
                return
            into[frame.name] += elapsed - frame.child
            calls[frame.name] += 1
            if stack:
                stack[-1].child += elapsed
            return
        stack = self._tstack()
        stack.pop()
        if not self.active:
            return
        with self.lock:
            self.thread[frame.name] += elapsed - frame.child
            self.thread_calls[frame.name] += 1
            if stack:
                stack[-1].child += elapsed
            else:
                self.thread_top += elapsed

    def sync(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            frame = self._enter(name)
            try:
                return fn(*args, **kwargs)
            finally:
                self._leave(frame)

        return timed

    def coro(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            frame = self._enter(name)
            try:
                return await fn(*args, **kwargs)
            finally:
                self._leave(frame)

        return timed


_INHERITED = object()


def instrument(phases: Phases) -> Callable[[], None]:
    """Wrap the hot paths' functions with ``phases``' timers; return what puts them back."""
    import aiosqlite
    import anyio.lowlevel

    import eventuality.aggregate as aggregate_mod
    import eventuality.flow as flow_mod
    import eventuality.stores._log_reader as log_reader
    import eventuality.stores._sqlite_commands as sqlite_commands
    import eventuality.stores._sqlite_files as sqlite_files
    import eventuality.stores._sqlite_ops as ops
    import eventuality.stores._sqlite_reads as sqlite_reads
    import eventuality.stores._sqlite_streams as sqlite_streams
    import eventuality.stores._validation as validation
    import eventuality.stores.base as base
    import eventuality.stores.memory as memory
    import eventuality.stores.rows as rows_mod
    import eventuality.stores.sqlite as sqlite_mod
    from eventuality import Aggregate, Command, Event, EventBus, EventStore, Flow
    from eventuality.idempotency import Idempotency
    from eventuality.unit_of_work import UnitOfWork

    undo: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, attr: str, name: str, kind: str = "sync") -> None:
        own = not isinstance(owner, type) or attr in owner.__dict__
        original = getattr(owner, attr)
        if isinstance(owner, type) and own:
            original = owner.__dict__[attr]
        wrap = phases.coro if kind == "coro" else phases.sync
        undo.append((owner, attr, original if own else _INHERITED))
        setattr(owner, attr, wrap(name, original))

    # command and dispatch
    patch(Command, "__init__", "command: build + validate (pydantic)")
    patch(Flow, "dispatch", "dispatch: Flow.dispatch itself + loop scheduling", "coro")
    patch(flow_mod, "_envelope", "dispatch: envelope (metadata dict)")
    patch(flow_mod, "_commit", "commit: _commit itself (StreamAppend, stream locks)", "coro")
    patch(flow_mod, "check_result", "commit: uow checks (check_result)")
    patch(UnitOfWork, "pending", "commit: uow checks (check_result)")
    patch(UnitOfWork, "track", "load: repository + uow tracking")
    patch(Idempotency, "__init__", "idempotency: key + payload digest")
    patch(Idempotency, "record_for", "idempotency: CommandRecord")
    patch(Idempotency, "exit", "idempotency: enter/exit")
    patch(EventBus, "publish", "publish (EventBus, no listeners)", "coro")
    patch(Repository, "snapshot_if_due", "snapshot_if_due", "coro")
    # the handler's side: load, add, record
    patch(Repository, "load", "load: repository + uow tracking", "coro")
    patch(Repository, "_rebuild", "load: repository + uow tracking", "coro")
    patch(Repository, "add", "add: Repository.add itself", "coro")
    patch(Repository, "save", "save: Repository.save/_write itself", "coro")
    patch(Repository, "_write", "save: Repository.save/_write itself", "coro")
    patch(EventStore, "stream_version", "add: existing-id check (stream_version)", "coro")
    patch(EventStore, "read_stream", "load: read_stream front", "coro")
    patch(EventStore, "_stream_rows", "load: read_stream front", "coro")
    # decoding: a load decodes rows as replay asks (events_of -> rows.from_rows), read_stream a
    # list at once (base.from_rows), read_all 32 rows per step (decoded_prefix)
    patch(rows_mod, "from_rows", "decode: from_rows (JSON + pydantic validate)")
    patch(base, "from_rows", "decode: from_rows (JSON + pydantic validate)")
    patch(log_reader, "decoded_prefix", "decode: from_rows (JSON + pydantic validate)")
    patch(base, "opened", "decode: personal-data pass (opened)", "coro")
    patch(log_reader, "opened", "decode: personal-data pass (opened)", "coro")
    patch(log_reader.LogReader, "__anext__", "read_all: LogReader.__anext__ itself", "coro")
    patch(Aggregate, "replay", "load: replay/apply")
    patch(Aggregate, "__init__", "events: aggregate construct (pydantic)")
    patch(Event, "__init__", "events: build event (pydantic validate)")
    patch(Aggregate, "record", "events: record (copy state, apply, pending)")
    patch(aggregate_mod, "evolve", "events: stamp (evolve)")
    patch(Aggregate, "collect_events", "commit: collect_events + pending_events")
    # the append front
    patch(EventStore, "append_streams", "append: front itself", "coro")
    patch(EventStore, "_append_streams", "append: front itself", "coro")
    patch(base, "checked_metadata", "append: metadata check + JSON")
    patch(base, "to_requests", "append: to_requests (checks)")
    patch(validation, "to_row", "append: to_row (JSON serialise per event)")
    patch(base, "evolve", "append: result events (evolve)")
    # the stores, event-loop side
    patch(memory.MemoryBackend, "append", "store: memory append", "coro")
    patch(memory.MemoryBackend, "append_command", "store: memory append", "coro")
    patch(memory.MemoryBackend, "read_stream", "store: memory read", "coro")
    patch(memory.MemoryBackend, "stream_version", "store: memory read", "coro")
    patch(memory.MemoryBackend, "get_command", "store: memory read", "coro")
    patch(memory, "checkpoint", "loop: checkpoint (sleep(0))", "coro")
    patch(anyio.lowlevel, "checkpoint", "loop: checkpoint (sleep(0))", "coro")
    patch(sqlite_mod.SQLiteBackend, "append", "store: SQLite group-commit queue", "coro")
    patch(sqlite_mod.SQLiteBackend, "_lead", "store: SQLite group-commit queue", "coro")
    patch(sqlite_mod.SQLiteBackend, "_call", "store: SQLiteBackend._call (error mapping)", "coro")
    patch(sqlite_mod.SQLiteBackend, "_read", "store: inline read (loop connection)", "coro")
    patch(sqlite_mod.SQLiteBackend, "read_stream", "store: inline read (loop connection)", "coro")
    patch(sqlite_mod.SQLiteBackend, "read_log", "store: read_log front", "coro")
    patch(aiosqlite.Connection, "_execute", "store: thread round trip (aiosqlite)", "coro")
    # the stores, SQL (on the loop's inline connection, or on a thread)
    patch(sqlite_mod.SQLiteBackend, "_checked", "sql: SQLiteBackend._checked")
    patch(sqlite_files, "check_same_file", "sql: check_same_file (stat)")
    patch(ops, "append_group", "sql: writer call (BEGIN, COMMIT, fsync)")
    patch(ops, "last_position", "sql: last_position")
    patch(ops, "_insert", "sql: INSERT rows")
    patch(sqlite_commands, "claim_key", "sql: INSERT command record")
    patch(sqlite_commands, "get_command", "sql: SELECT command record")
    patch(sqlite_streams, "read_live_stream", "sql: SELECT stream rows")
    patch(sqlite_streams, "live_stream_version", "sql: SELECT stream version")
    patch(ops, "read_stream", "sql: SELECT stream rows")
    patch(ops, "read_log", "sql: SELECT log page")
    patch(ops, "_stored", "sql: row tuple -> StoredEvent (fromisoformat)")
    patch(sqlite_reads, "_stream_rows", "sql: SELECT steps + rows -> StoredEvent (fromisoformat)")
    patch(sqlite_reads, "_log_rows", "sql: SELECT steps + rows -> StoredEvent (fromisoformat)")

    def restore() -> None:
        for owner, attr, original in reversed(undo):
            if original is _INHERITED:
                delattr(owner, attr)
            else:
                setattr(owner, attr, original)

    return restore


async def run_phases(run: Run) -> tuple[Phases, int]:
    phases = Phases()
    restore = instrument(phases)
    try:
        result: list[int] = []

        async def timed(work: Callable[[], Awaitable[Any]]) -> None:
            gc.collect()
            phases.active = True
            frame = phases._enter("other: benchmark loop, task switches")
            start = ns()
            try:
                await work()
            finally:
                result.append(ns() - start)
                phases._leave(frame)
                phases.active = False

        await run(timed)
    finally:
        restore()
    return phases, result[0]


def phase_table(phases: Phases, total: int, units: int) -> list[dict[str, Any]]:
    """Loop phases (exclusive), with the thread round trip split into thread work and the
    hand-off itself; thread functions listed below, as parts of the loop's wait."""
    rows: dict[str, float] = dict(phases.loop)
    trip = "store: thread round trip (aiosqlite)"
    if trip in rows:
        rows[trip] -= phases.thread_top
        rows["store: work on the SQLite threads"] = phases.thread_top
    rows = {k: v for k, v in rows.items() if v}
    out = [
        {
            "phase": name,
            "us": value / units / 1000,
            "share": value / total,
            "calls": phases.calls.get(name, 0) / units,
        }
        for name, value in sorted(rows.items(), key=lambda kv: -kv[1])
    ]
    for name, value in sorted(phases.thread.items(), key=lambda kv: -kv[1]):
        out.append(
            {
                "phase": f"  (thread) {name}",
                "us": value / units / 1000,
                "share": value / total,
                "calls": phases.thread_calls[name] / units,
            }
        )
    return out


def timer_cost() -> float:
    """ns a timer adds around a call (a wrapped no-op against a bare one), median of 5."""
    phases = Phases()
    wrapped = phases.sync("calibration", _noop)
    costs = []
    for _ in range(5):
        start = ns()
        for _ in range(20_000):
            _noop()
        bare = ns() - start
        start = ns()
        for _ in range(20_000):
            wrapped()
        costs.append((ns() - start - bare) / 20_000)
    return median(costs)


def inline_sql(phases: Phases, units: int) -> float:
    """µs per unit of SQL run inline on the loop's connection (already in the loop table)."""
    return sum(v for k, v in phases.loop.items() if k.startswith("sql:")) / units / 1000


# --- cProfile ----------------------------------------------------------------------------


async def run_cprofile(run: Run, top: int) -> list[dict[str, Any]]:
    profiler = cProfile.Profile()
    units = run.units

    async def timed(work: Callable[[], Awaitable[Any]]) -> None:
        gc.collect()
        profiler.enable()
        try:
            await work()
        finally:
            profiler.disable()

    await run(timed)
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (path, line, func), (_cc, ncalls, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{_short(path)}:{line}({func})",
                "own_us": tt / units * 1e6,
                "share": tt / total,
                "cum_us": ct / units * 1e6,
                "calls": ncalls / units,
            }
        )
    rows.sort(key=lambda r: -r["own_us"])
    return rows[:top]


def _short(path: str) -> str:
    if "/eventuality/" in path:
        return "eventuality/" + path.split("/eventuality/", 1)[1]
    return re.sub(r"^.*/(site-packages|python3\.\d+)/", "", path)


# --- raw limits --------------------------------------------------------------------------


def raw_limits(count: int) -> dict[str, float]:
    """µs per operation, median of 5: the floors eventuality sits on."""
    import aiosqlite
    import anyio
    import anyio.lowlevel

    out: dict[str, float] = {}

    def best(label: str, fn: Callable[[], Any], n: int) -> None:
        times = []
        for _ in range(5):
            gc.collect()
            start = ns()
            fn()
            times.append((ns() - start) / n / 1000)
        out[label] = median(times)

    async def loop_ops(op: Callable[[], Awaitable[Any]], n: int) -> None:
        for _ in range(n):
            await op()

    best("asyncio: await sleep(0)", lambda: asyncio.run(loop_ops(_sleep0, count)), count)
    best(
        "anyio: lowlevel.checkpoint()",
        lambda: asyncio.run(loop_ops(anyio.lowlevel.checkpoint, count)),
        count,
    )
    tmp = Path(tempfile.mkdtemp(prefix="evprof-raw-"))
    try:
        for sync in ("NORMAL", "FULL"):
            n = count // 10 if sync == "FULL" else count
            db = sqlite3.connect(tmp / f"raw-{sync}.db", isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={sync}")
            db.execute("CREATE TABLE t (s TEXT, v INT, d TEXT, UNIQUE (s, v))")
            counter = iter(range(10**9))

            def one_insert(db: sqlite3.Connection = db, n: int = n, counter: Any = counter) -> None:
                for _ in range(n):
                    i = next(counter)
                    db.execute("BEGIN IMMEDIATE")
                    db.execute("INSERT INTO t VALUES (?, ?, ?)", (f"s{i}", 1, '{"a": 1}'))
                    db.execute("COMMIT")

            best(f"sqlite3: one-insert transaction ({sync})", one_insert, n)
            db.close()

        async def aio(sync: str, n: int, kind: str) -> None:
            path = tmp / f"aio-{sync}-{kind}-{ns()}.db"
            async with aiosqlite.connect(path, isolation_level=None) as db:
                await db.execute("PRAGMA journal_mode=WAL")
                await db.execute(f"PRAGMA synchronous={sync}")
                await db.execute("CREATE TABLE t (s TEXT, v INT, d TEXT, UNIQUE (s, v))")
                start = ns()
                for i in range(n):
                    if kind == "noop":
                        await db._execute(_noop)  # what the store calls: one round trip
                    else:
                        await db.execute("BEGIN IMMEDIATE")
                        await db.execute("INSERT INTO t VALUES (?, ?, ?)", (f"s{i}", 1, "{}"))
                        await db.execute("COMMIT")
                aio_times.append((ns() - start) / n / 1000)

        for label, sync, kind, n in [
            ("aiosqlite: one round trip (_execute of a no-op)", "NORMAL", "noop", count),
            ("aiosqlite: one-insert transaction, 3 calls (NORMAL)", "NORMAL", "txn", count // 4),
            ("aiosqlite: one-insert transaction, 3 calls (FULL)", "FULL", "txn", count // 10),
        ]:
            aio_times: list[float] = []
            for _ in range(5):
                asyncio.run(aio(sync, n, kind))
            out[label] = median(aio_times)

        async def to_thread(n: int) -> None:
            start = ns()
            for _ in range(n):
                await anyio.to_thread.run_sync(_noop)
            aio_times.append((ns() - start) / n / 1000)

        aio_times = []
        for _ in range(5):
            asyncio.run(to_thread(count // 4))
        out["anyio: to_thread.run_sync(no-op)"] = median(aio_times)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


async def _sleep0() -> None:
    await asyncio.sleep(0)


def _noop(*_: Any) -> None:
    return None


# --- callgrind ---------------------------------------------------------------------------


def callgrind(spec: Spec, cache: Path, out: Path, python: str) -> dict[str, Any]:
    """Instructions per unit from runs at N and 3N, split by thread, with top functions."""
    runs = {}
    for size in (spec.cg_size, 3 * spec.cg_size):
        target = out / f"callgrind.{spec.name}.{size}.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={target}",
            python,
            __file__,
            "--bare",
            spec.name,
            "--size",
            str(size),
            "--cache",
            str(cache),
        ]
        subprocess.run(command, check=True, capture_output=True)
        runs[size] = annotate(target)
    small, large = runs[spec.cg_size], runs[3 * spec.cg_size]
    run = Run(spec, spec.cg_size, cache, callgrind=True)
    units = 2 * run.units
    per = {k: (large[k] - small[k]) / units for k in ("total", "main", "threads")}
    own: dict[str, float] = {}
    for name in set(large["own"]) | set(small["own"]):
        own[name] = (large["own"].get(name, 0) - small["own"].get(name, 0)) / units
    top = sorted(own.items(), key=lambda kv: -kv[1])[:12]
    return {
        "N": spec.cg_size,
        "units_between": units,
        "instructions_per_unit": per["total"],
        "event_loop_thread": per["main"],
        "sqlite_threads": per["threads"],
        "top_own": [{"function": k, "instructions": v} for k, v in top],
    }


_LINE = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*)$")


def annotate(target: Path) -> dict[str, Any]:
    total = main = threads = 0
    for line in _annotate(target, inclusive=True):
        m = _LINE.match(line)
        if not m:
            continue
        value, name = int(m.group(1).replace(",", "")), m.group(2)
        if "(below main)" in name:
            main = max(main, value)
        elif re.search(r"\bstart_thread\b", name):
            threads = max(threads, value)
    own: dict[str, int] = {}
    for line in _annotate(target, inclusive=False):
        m = _LINE.match(line)
        if m and ("PROGRAM TOTALS" in m.group(2)):
            total = int(m.group(1).replace(",", ""))
        elif m and ":" in m.group(2):
            lib = re.search(r"\[(.*)\]$", m.group(2))
            name = re.sub(r"\s+\[.*\]$", "", m.group(2))
            if name.startswith("???") and lib:  # no symbols: name the library at least
                name = f"{lib.group(1).rsplit('/', 1)[-1]}:{name.split(':', 1)[-1]}"
            name = re.sub(r"'\d+$", "", name.rsplit("/", 1)[-1])  # recursion depth: merged
            own[name] = own.get(name, 0) + int(m.group(1).replace(",", ""))
    return {"total": total, "main": main, "threads": threads, "own": own}


def _annotate(target: Path, *, inclusive: bool) -> list[str]:
    command = ["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}"]
    command += ["--threshold=100", str(target)]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()


# --- the report --------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    import aiosqlite
    import pydantic

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "pydantic": pydantic.VERSION,
        "aiosqlite": getattr(aiosqlite, "__version__", "?"),
        "load_average": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


CATEGORIES = [  # (category, phase prefixes), first match wins; thread rows are inside "store"
    ("command: build + validate", ("command:",)),
    (
        "handler + load: read, decode, apply",
        (
            "load:",
            "decode:",
            "add:",
            "read_all:",
            "store: memory read",
            "store: inline read",
            "store: read_log",
            "sql: SELECT stream",
            "sql: row tuple",
        ),
    ),
    ("events: pydantic build, record, stamp", ("events:",)),
    ("commit front: uow, append_streams, JSON", ("commit:", "append:", "save:")),
    ("store call: queue, thread round trip, SQL, COMMIT", ("store:", "sql:")),
    ("idempotency bookkeeping", ("idempotency:",)),
    ("publish + snapshot check", ("publish", "snapshot_if_due")),
    ("dispatch itself + asyncio/anyio + loop", ("dispatch:", "loop:", "other:")),
]


def categories(table: list[dict[str, Any]]) -> dict[str, float]:
    """Shares of the instrumented total per category of the issue's list."""
    out = dict.fromkeys((c for c, _ in CATEGORIES), 0.0)
    for row in table:
        if row["phase"].startswith("  (thread)"):
            continue
        for category, prefixes in CATEGORIES:
            if row["phase"].startswith(prefixes):
                out[category] += row["share"]
                break
    return {k: v for k, v in out.items() if v}


def markdown(report: dict[str, Any]) -> str:
    lines = [f"machine: {json.dumps(report['machine'])}", ""]
    for name, data in report["workloads"].items():
        spec = SPECS[name]
        lines.append(f"## {name}: {data['what']}")
        lines.append("")
        wall = data.get("wall")
        if wall:
            lines.append(
                f"wall clock, median of {len(wall['runs_us'])}: **{wall['us']:.2f} µs per "
                f"{spec.unit}** ({1e6 / wall['us']:,.0f} {spec.unit}s/s; runs "
                f"{', '.join(f'{x:.1f}' for x in wall['runs_us'])})"
            )
        if "phases" in data:
            ph = data["phases"]
            lines += [
                "",
                f"phases (instrumented total {ph['total_us']:.2f} µs per {spec.unit}):",
                "",
                f"| phase (exclusive) | µs per {spec.unit}, instrumented | share | µs scaled to "
                f"the wall clock | calls per {spec.unit} |",
                "| --- | ---: | ---: | ---: | ---: |",
            ]
            scale = wall["us"] if wall else ph["total_us"]
            lines[-4:-4] = [
                f"| category | µs per {spec.unit} (share of the wall clock) | share |",
                "| --- | ---: | ---: |",
                *(
                    f"| {name} | {share * scale:.2f} | {share:.1%} |"
                    for name, share in categories(ph["table"]).items()
                ),
                "",
            ]
            for row in ph["table"]:
                lines.append(
                    f"| {row['phase']} | {row['us']:.2f} | {row['share']:.1%} | "
                    f"{row['share'] * scale:.2f} | {row['calls']:.2f} |"
                )
            lines.append(
                f"\n(timers: {ph['timed_calls']:.1f} timed calls per {spec.unit}, "
                f"{ph['timer_ns']:.0f} ns each measured alone: shares of phases made of many "
                "small calls are inflated)"
            )
        if "cprofile" in data:
            lines += [
                "",
                f"cProfile, top by own time (µs per {spec.unit}, inflated by the profiler):",
                "",
                "| function | own µs | share | cumulative µs | calls |",
                "| --- | ---: | ---: | ---: | ---: |",
            ]
            for row in data["cprofile"]:
                lines.append(
                    f"| `{row['function']}` | {row['own_us']:.2f} | {row['share']:.1%} | "
                    f"{row['cum_us']:.2f} | {row['calls']:.2f} |"
                )
        if "callgrind" in data:
            cg = data["callgrind"]
            lines += [
                "",
                f"callgrind (N={cg['N']} and 3N, difference over {cg['units_between']:,} "
                f"{spec.unit}s): **{cg['instructions_per_unit']:,.0f} instructions per "
                f"{spec.unit}**: event-loop thread {cg['event_loop_thread']:,.0f}, SQLite "
                f"threads {cg['sqlite_threads']:,.0f}",
                "",
                f"| function (own instructions) | per {spec.unit} | share |",
                "| --- | ---: | ---: |",
            ]
            for row in cg["top_own"]:
                share = row["instructions"] / cg["instructions_per_unit"]
                lines.append(f"| `{row['function']}` | {row['instructions']:,.0f} | {share:.1%} |")
        lines.append("")
    if report.get("raw"):
        lines += ["## raw limits (µs per operation, median of 5)", ""]
        lines += ["| operation | µs |", "| --- | ---: |"]
        for label, value in report["raw"].items():
            lines.append(f"| {label} | {value:.2f} |")
    return "\n".join(lines)


# --- main --------------------------------------------------------------------------------


def selected(workload: str | None) -> list[Spec]:
    if workload is None:
        return list(SPECS.values())
    names = [n for n in SPECS if n == workload or n.split("-")[0] == workload]
    if not names:
        raise SystemExit(f"unknown workload {workload!r}; one of {', '.join(SPECS)} or W2")
    return [SPECS[n] for n in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workload", help="W1, W2 (both settings), W2-FULL, W2-NORMAL, W3-W6")
    parser.add_argument("--rounds", type=int, default=5, help="wall-clock runs (median)")
    parser.add_argument("--callgrind", action="store_true", help="also count instructions")
    parser.add_argument("--only-callgrind", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-raw", action="store_true", help="skip the raw limits")
    parser.add_argument("--out", type=Path, default=Path(_HERE) / "results" / "profile")
    parser.add_argument("--cache", type=Path, help="where built read stores are kept")
    parser.add_argument("--render", type=Path, help="print the markdown of a saved report")
    parser.add_argument("--bare", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.bare:  # what valgrind runs: the workload once, nothing around it
        cache = args.cache or Path(tempfile.gettempdir())
        asyncio.run(Run(SPECS[args.bare], args.size, cache, callgrind=True)(just_run))
        return

    if args.render:  # a saved report, with the callgrind figures saved beside it merged in
        report = json.loads(args.render.read_text())
        for name, data in report["workloads"].items():
            saved = args.render.parent / f"{name}.json"
            if "callgrind" not in data and saved.exists():
                found = json.loads(saved.read_text()).get("callgrind")
                if found:
                    data["callgrind"] = found
        print(markdown(report))
        return

    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.cache or Path(tempfile.mkdtemp(prefix="evprof-cache-"))
    cache.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"machine": machine(), "workloads": {}}
    for spec in selected(args.workload):
        data: dict[str, Any] = {"what": f"{spec.size} {spec.what}", "unit": spec.unit}
        report["workloads"][spec.name] = data
        run = Run(spec, spec.size, cache)
        if not args.only_callgrind:
            print(f"{spec.name}: wall clock", file=sys.stderr)
            asyncio.run(run(wall_ns))  # warm-up: imports, first-use caches, page cache
            runs = [asyncio.run(run(wall_ns)) / run.units / 1000 for _ in range(args.rounds)]
            data["wall"] = {"us": median(runs), "runs_us": runs}
            if spec.single_task:
                print(f"{spec.name}: phases", file=sys.stderr)
                phases, total = asyncio.run(run_phases(run))
                data["phases"] = {
                    "total_us": total / run.units / 1000,
                    "table": phase_table(phases, total, run.units),
                    "inline_sql_us": inline_sql(phases, run.units),
                    "timed_calls": (sum(phases.calls.values()) + sum(phases.thread_calls.values()))
                    / run.units,
                    "timer_ns": timer_cost(),
                }
            print(f"{spec.name}: cProfile", file=sys.stderr)
            data["cprofile"] = asyncio.run(run_cprofile(run, 12))
        if args.callgrind or args.only_callgrind:
            print(f"{spec.name}: callgrind", file=sys.stderr)
            asyncio.run(Run(spec, 1, cache, callgrind=True)(just_run))  # build read stores
            data["callgrind"] = callgrind(spec, cache, args.out, sys.executable)
        stamp = args.out / f"{spec.name}.json"
        stamp.write_text(json.dumps(data, indent=1))
    if not args.no_raw and not args.only_callgrind:
        print("raw limits", file=sys.stderr)
        report["raw"] = raw_limits(4000)
    name = "latest" if args.workload is None else f"latest-{args.workload}"
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=1))
    text = markdown(report)
    (args.out / f"{name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
