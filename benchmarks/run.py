"""Benchmark eventuality against its peers: ``python benchmarks/run.py [--quick]``.

Runs W1-W8 of ``BENCHMARKS.md`` for eventuality and every peer in one run, interleaved: in each
round every workload runs each contender once, in an order that rotates from round to round.
Ratios are taken within a round, then their median reported (the machine is shared and noisy:
absolute figures drift, ratios hold). Writes ``latest.json``, ``latest.png`` and a timestamped
copy of the JSON into ``--out``. eventsource-py needs Python >= 3.13: its contenders, and
eventuality beside them, run in child processes on such an interpreter (``py313.py``), or are
skipped, with a line saying so, where there is none.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import report  # noqa: E402
from common import FULL_SIZES, QUICK_SIZES, Figures, machine_info, sizes_dict, source_digest  # noqa: E402
from plan import Bench, Plan, build_plan  # noqa: E402
from py313 import Found, find  # noqa: E402

RESULTS = HERE / "results"
WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8")
NEEDS = {"W6": {"W2"}}  # W6's ratios and its one-task point come from W2
ESP_WORKLOADS = {"W1", "W2", "W3", "W4", "W5"}  # where eventsource-py runs


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run of a few seconds: tiny sizes"
    )
    parser.add_argument("--rounds", type=int, help="rounds (default 5; 2 with --quick)")
    parser.add_argument("--only", help="comma-separated workloads, e.g. W1,W3 (default: all)")
    parser.add_argument(
        "--postgres",
        metavar="DSN",
        default=os.environ.get("EVENTUALITY_TEST_POSTGRES_DSN"),
        help="also run W2, W5 and W6 on PostgreSQL there, each in a schema of its own "
        "(default: $EVENTUALITY_TEST_POSTGRES_DSN; 'none' or unset: SQLite and memory only)",
    )
    parser.add_argument(
        "--postgres-lock",
        metavar="FILE",
        type=Path,
        default=os.environ.get("EVENTUALITY_BENCH_POSTGRES_LOCK") or None,
        help="hold an exclusive flock on FILE around each PostgreSQL measurement, for a server "
        "shared with others (default: $EVENTUALITY_BENCH_POSTGRES_LOCK; none)",
    )
    parser.add_argument(
        "--python",
        metavar="PATH",
        help="a Python >= 3.13 for the eventsource-py peer (and eventuality beside it); used as "
        "is if it imports this checkout's eventuality and eventsource-py, else benchmarks/"
        ".venv313 is made from it (default: this interpreter if it can, then benchmarks/"
        ".venv313, made from python3.13 if missing; 'none': skip the peer)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="directory for the results (default benchmarks/results; "
        "benchmarks/results/quick with --quick)",
    )
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 2 if args.quick else 5
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    only = {w.strip().upper() for w in (args.only or ",".join(WORKLOADS)).split(",") if w.strip()}
    unknown = only - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads {sorted(unknown)}; choose from {', '.join(WORKLOADS)}")
    for workload in list(only):
        only |= NEEDS.get(workload, set())
    args.only = [w for w in WORKLOADS if w in only]
    if args.out is None:
        args.out = RESULTS / "quick" if args.quick else RESULTS
    if args.quick and args.out.resolve() == RESULTS.resolve():
        parser.error("a --quick run never writes benchmarks/results/latest.*: pick another --out")
    return args


class Progress:
    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.start = time.monotonic()

    def clock(self) -> str:
        seconds = int(time.monotonic() - self.start)
        return f"{seconds // 60:d}:{seconds % 60:02d}"

    def log(self, text: str) -> None:
        print(f"[{self.clock()}] {text}", file=sys.stderr, flush=True)

    def step(self, text: str) -> None:
        self.done += 1
        width = len(str(self.total))
        self.log(f"{self.done:>{width}}/{self.total} {text}")


def figures_text(figures: Figures) -> str:
    return ", ".join(f"{report.number(v)} {k}" for k, v in figures.items() if k != "events")


def run_rounds(plan: Plan, rounds: int, progress: Progress) -> report.Rounds:
    results: report.Rounds = []
    for r in range(rounds):
        figures: dict[str, dict[str, Figures]] = {}
        for workload in plan.workloads:
            contenders = workload.contenders
            shift = r % len(contenders)
            for contender in contenders[shift:] + contenders[:shift]:
                measured = contender.run(r)
                figures.setdefault(workload.id, {})[contender.name] = measured
                progress.step(
                    f"round {r + 1}/{rounds}  {workload.id} {workload.title:<20} "
                    f"{contender.name:<34} {figures_text(measured)}"
                )
        results.append(figures)
    return results


def peer_notes(args: argparse.Namespace, python313: Found, postgres: str | None) -> list[str]:
    """What did not run, and why: said in the closing note."""
    notes: list[str] = []
    if ESP_WORKLOADS & set(args.only) and not python313.python:
        notes.append(f"eventsource-py skipped: no Python >= 3.13 ({python313.reason})")
    if not postgres and {"W2", "W5", "W6"} & set(args.only):
        notes.append(
            "PostgreSQL skipped: no --postgres DSN (nor $EVENTUALITY_TEST_POSTGRES_DSN); "
            "eventuality and eventsourcing on PostgreSQL not measured"
        )
    return notes


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    started = datetime.now(UTC)
    machine = machine_info()  # before the run: the code measured, not the code at the end
    workdir = Path(tempfile.mkdtemp(prefix="eventuality-bench-"))
    progress = Progress(0)
    try:
        postgres = None if args.postgres in (None, "", "none") else args.postgres
        python313 = Found(None, reason="not needed by --only")
        if ESP_WORKLOADS & set(args.only):
            python313 = find(args.python, progress.log)
        if python313.python:
            progress.log(
                f"eventsource-py {python313.eventsource} on Python {python313.version}: "
                f"{python313.python}"
            )
        else:
            progress.log(f"eventsource-py skipped: no Python >= 3.13 ({python313.reason})")
        bench = Bench(
            sizes,
            workdir,
            progress.log,
            postgres=postgres,
            python313=python313,
            postgres_lock=args.postgres_lock,
        )
        plan = build_plan(bench)
        plan.workloads = [w for w in plan.workloads if w.id in args.only]
        present = {(w.id, c.name) for w in plan.workloads for c in w.contenders}
        plan.checks = [
            c
            for c in plan.checks
            if c.workload in args.only
            and c.num[:2] in present
            and (c.den is None or c.den[:2] in present)
        ]
        progress.total = args.rounds * sum(len(w.contenders) for w in plan.workloads)
        progress.log(
            f"eventuality benchmarks: {', '.join(args.only)}; {args.rounds} rounds, "
            f"{progress.total} measurements{' (quick)' if args.quick else ''}; scratch {workdir}"
        )
        for workload in plan.workloads:
            if workload.setup is not None:
                workload.setup()
        rounds = run_rounds(plan, args.rounds, progress)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - progress.start

    table = report.medians(plan, rounds)
    found = report.ratios(plan, rounds)
    sweep = report.sweep(plan, rounds)
    print(f"\nMedians of {args.rounds} rounds\n")
    print(report.medians_table(plan, table))
    print(f"\nRatios: median of the ratios taken within each of {args.rounds} rounds\n")
    print(report.ratios_table(plan, found))
    if "W6" in args.only:
        print("\nW6 sweep: median commands/s against concurrent tasks (1 task = W2)\n")
        print(report.sweep_table(sweep))
    print("\nClosing note: every ratio against its bar\n")
    print(report.closing_note(found, skipped=peer_notes(args, python313, postgres)))

    source_now = source_digest()
    if source_now != machine["eventuality_source"]:
        machine["eventuality_source_at_end"] = source_now
        print(f"\nnote: eventuality's source changed during the run ({source_now}): rerun")
    data: dict[str, Any] = {
        "machine": machine,
        "config": {
            "quick": args.quick,
            "rounds": args.rounds,
            "workloads": args.only,
            "sizes": sizes_dict(sizes),
            "setup_seconds": bench.setup_seconds,
            "seconds": round(elapsed, 1),
            "started": started.isoformat(timespec="seconds"),
            "eventsource_py": {
                "python": python313.python,
                "python_version": python313.version,
                "version": python313.eventsource,
                "skipped": python313.reason or None,
            },
            "postgres": bool(postgres),
        },
        "rounds": rounds,
        "medians": table,
        "ratios": found,
        "w6_sweep": sweep,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    json_path, png_path = args.out / "latest.json", args.out / "latest.png"
    report.write_json(json_path, data, stamp)
    title = (
        f"eventuality {machine['eventuality']} ({machine['eventuality_commit']}) vs eventsourcing "
        f"{machine['eventsourcing']}"
        f"{f', eventsource-py {python313.eventsource} (3.13)' if python313.python else ''}"
        f"; {machine['cpu']}, {machine['cores']} cores, Python "
        f"{machine['python']}, SQLite {machine['sqlite']}; {args.rounds} rounds, {stamp}"
        f"{' (quick)' if args.quick else ''}"
    )
    limits = {
        f"raw sqlite3 one-insert txn {sync}": stats["median"]
        for sync in ("FULL", "NORMAL")
        if (stats := table.get("W2", {}).get(f"raw sqlite3 insert {sync}", {}).get("inserts/s"))
    }
    report.write_chart(png_path, plan, found, sweep, limits, title)
    print(f"\nwrote {json_path}, {png_path} ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
