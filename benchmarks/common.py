"""What every benchmark module shares: workload sizes, timing, memory readings, machine info."""

from __future__ import annotations

import gc
import hashlib
import json
import math
import os
import platform
import resource
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

Figures = dict[str, float]
"""One measurement: figure name (with its unit) -> value, e.g. ``{"commands/s": 31000.0}``."""

COMMANDS_PER_TODO = 5  # create, rename three times, complete
RENAMES = 3


@dataclass(frozen=True)
class Sizes:
    """How much work each workload does. Figures are rates, so sizes only trade time for noise."""

    w1_todos: int = 5000  # x5 commands, in memory
    w2_todos: int = 1000  # x5 commands, one transaction each (fsync-bound at FULL)
    w3_events: int = 10_000  # events in the long stream
    w3_snapshot_gap: int = 10  # events after the snapshot
    w3_loads: int = 5  # loads per measurement; the median counts
    w3_snapshot_loads: int = 51  # a snapshot load takes under a millisecond: more, for less noise
    w4_todos: int = 20_000  # x5 events in the log that is read
    w5_saves: int = 1000
    w5_batch: int = 100  # pending events per save
    w6_todos: int = 1000  # x5 commands, shared among the concurrent tasks
    w6_tasks: int = 100
    w6_sweep: tuple[int, ...] = (1, 10, 100, 1000)
    w7_large: int = 1_000_000  # events already in the store
    w7_small: int = 10_000
    w7_todos: int = 500  # x5 commands dispatched on each of them per round


FULL_SIZES = Sizes()
QUICK_SIZES = Sizes(
    w1_todos=40,
    w2_todos=40,
    w3_events=1000,
    w3_loads=3,
    w3_snapshot_loads=5,
    w4_todos=400,
    w5_saves=20,
    w6_todos=40,
    w6_sweep=(1, 10, 100, 1000),
    w7_large=20_000,
    w7_small=2_000,
    w7_todos=40,
)


def w6_todos(sizes: Sizes, tasks: int) -> int:
    """Every task works on its own todos: at least one each."""
    return max(sizes.w6_todos, tasks)


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def median(values: list[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


@contextmanager
def timer() -> Iterator[Callable[[], float]]:
    """``with timer() as elapsed: ...``; ``elapsed()`` is the block's wall time in seconds.

    Collects garbage first, so one measurement does not pay for the previous one's garbage.
    """
    gc.collect()
    start = time.perf_counter()
    end: float | None = None

    def elapsed() -> float:
        return (end if end is not None else time.perf_counter()) - start

    try:
        yield elapsed
    finally:
        end = time.perf_counter()


TICK = 0.001  # W8: the ticker's sleep, in seconds


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` lie (nearest rank)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]


@asynccontextmanager
async def loop_lag() -> AsyncIterator[Callable[[], Figures]]:
    """W8: ``async with loop_lag() as lags: ...`` runs a ticker task on the event loop for the
    block: it sleeps 1 ms again and again and records how late each wake-up is. ``lags()``
    gives the p50, p99 and max lag in ms, and the number of ticks."""
    import asyncio

    import anyio

    recorded: list[float] = []

    async def tick() -> None:
        while True:
            start = time.perf_counter()
            await anyio.sleep(TICK)
            recorded.append(time.perf_counter() - start - TICK)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)  # let it start before the work does
    frozen: list[float] | None = None

    def lags() -> Figures:
        values = [max(0.0, lag) * 1000 for lag in (frozen if frozen is not None else recorded)]
        return {
            "p50 lag ms": percentile(values, 0.5),
            "p99 lag ms": percentile(values, 0.99),
            "max lag ms": max(values, default=float("nan")),
            "ticks": float(len(values)),
        }

    try:
        yield lags
    finally:
        ticker.cancel()
        with suppress(asyncio.CancelledError):
            await ticker
        frozen = list(recorded)


# --- memory -------------------------------------------------------------------------------


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_kib() -> int:
    """Resident set size now, in KiB."""
    found = _status_kib("VmRSS")
    if found is not None:
        return found
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # no /proc: best effort


def reset_peak_rss() -> None:
    """Make the peak RSS (VmHWM) the current RSS, where Linux allows it (since 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        pass


def peak_rss_kib() -> int:
    found = _status_kib("VmHWM")
    if found is not None:
        return found
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@contextmanager
def peak_rss_growth() -> Iterator[Callable[[], float]]:
    """``with peak_rss_growth() as growth: ...``; ``growth()`` is the block's peak RSS above
    the RSS it started with, in MB. Meaningful in a fresh process (run by ``child.py``)."""
    gc.collect()
    baseline = rss_kib()
    reset_peak_rss()
    peak: int | None = None

    def growth() -> float:
        top = peak if peak is not None else peak_rss_kib()
        return max(0, top - baseline) / 1024

    try:
        yield growth
    finally:
        peak = peak_rss_kib()


# --- machine info -------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _git_commit(directory: Path) -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=directory,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "eventuality"],
            cwd=directory,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}{' (eventuality/ modified)' if dirty else ''}"


def source_digest() -> str:
    """A short hash of eventuality's source files: which code a run measured."""
    import eventuality

    digest = hashlib.sha256()
    for path in sorted(Path(eventuality.__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def machine_info() -> dict[str, Any]:
    import eventuality

    probe = sqlite3.connect(":memory:")
    default_synchronous = probe.execute("PRAGMA synchronous").fetchone()[0]
    probe.close()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "sqlite_default_synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(
            default_synchronous, str(default_synchronous)
        ),
        "eventuality": getattr(eventuality, "__version__", _version("eventuality")),
        "eventuality_commit": _git_commit(Path(__file__).resolve().parent.parent),
        "eventuality_source": source_digest(),
        "eventsourcing": _version("eventsourcing"),
        "aiosqlite": _version("aiosqlite"),
        "pydantic": _version("pydantic"),
        "anyio": _version("anyio"),
    }


def sizes_dict(sizes: Sizes) -> dict[str, Any]:
    return asdict(sizes)


def dumps(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=str)
