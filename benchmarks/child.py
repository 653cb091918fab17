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

from common import Figures

HERE = Path(__file__).resolve().parent


def _jobs() -> dict[str, Callable[..., Figures]]:
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


def run_child(job: str, **args: Any) -> Figures:
    """Run ``job`` in a new interpreter and return its figures."""
    spec = json.dumps({"job": job, "args": args})
    done = subprocess.run(
        [sys.executable, str(HERE / "child.py"), spec],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child {job} failed ({done.returncode}):\n{done.stderr}")
    figures: Figures = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    figures = _jobs()[spec["job"]](**spec["args"])
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
