"""Runs one measurement in a fresh process, so its peak RSS growth is its own.

``python benchmarks/child.py '{"job": "w4:eventuality", "args": {"path": "..."}}'`` prints the
figures as one JSON line. ``run.py`` calls it through :func:`run_child`.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _esp_jobs() -> dict[str, Callable[..., Any]]:
    """eventsource-py and eventuality on a Python >= 3.13 (no eventsourcing there)."""
    import peers_esp as esp
    import workloads as ev

    a = asyncio.run
    return {
        "esp:w1": lambda todos: a(esp.esp_dispatch_memory(todos)),
        "esp:w2": lambda path, todos: a(esp.esp_dispatch_sqlite(Path(path), todos)),
        "esp:build_w3": lambda path, events, gap: a(esp.build_esp_w3(Path(path), events, gap)),
        "esp:w3": lambda path, id, events, loads: a(esp.esp_load(Path(path), id, events, loads)),
        "esp:w3_snapshot": lambda path, id, loads: a(esp.esp_load_snapshot(Path(path), id, loads)),
        "esp:build_w4": lambda path, todos: a(esp.build_esp_log(Path(path), todos)),
        "esp:w4": lambda path: a(esp.esp_read_all(Path(path))),
        "esp:w5": lambda path, saves, batch: a(esp.esp_append_batch(Path(path), saves, batch)),
        # eventuality on the same interpreter, for the ratios against eventsource-py
        "ev:w1": lambda todos: a(ev.ev_dispatch_memory(todos)),
        "ev:w2": lambda path, todos: a(ev.ev_dispatch_sqlite(Path(path), todos, "FULL")),
        "ev:w3": lambda path, events, loads: a(ev.ev_load(Path(path), events, loads)),
        "ev:w3_snapshot": lambda path, events, gap, loads: a(
            ev.ev_load_snapshot(Path(path), events, gap, loads)
        ),
        "ev:w4": lambda path: a(ev.ev_read_all(Path(path))),
        "ev:w5": lambda path, saves, batch: a(ev.ev_append_batch(Path(path), saves, batch, "FULL")),
    }


def _jobs(job: str) -> dict[str, Callable[..., Any]]:
    if job.startswith(("esp:", "ev:")):
        return _esp_jobs()
    import peers
    import workloads

    return {
        "w1:eventuality": lambda todos: asyncio.run(workloads.ev_dispatch_memory(todos)),
        "w1:eventsourcing": peers.es_dispatch_memory,
        "w1:asyncio": lambda commands: asyncio.run(peers.asyncio_floor(commands)),
        "w4:eventuality": lambda path: asyncio.run(workloads.ev_read_all(Path(path))),
        "w4:eventsourcing": lambda path: peers.es_read_all(Path(path)),
        "w4:sqlite3": lambda path: peers.sqlite3_scan(Path(path)),
        "w4:aiosqlite": lambda path: asyncio.run(peers.aiosqlite_scan(Path(path))),
    }


def run_child(job: str, python: str | None = None, **args: Any) -> Any:
    """Run ``job`` in a new interpreter (``python``, or this one) and return its result: the
    figures of a measurement."""
    spec = json.dumps({"job": job, "args": args})
    done = subprocess.run(
        [python or sys.executable, str(HERE / "child.py"), spec],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child {job} failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    figures = _jobs(spec["job"])[spec["job"]](**spec["args"])
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
