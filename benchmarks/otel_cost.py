"""W1 with and without OpenTelemetry: what the instrumentation hooks cost.

``python benchmarks/otel_cost.py [--rounds 5] [--todos 5000] [--base main]`` runs W1 (every command
through ``Flow.dispatch`` on the in-memory store) in a fresh interpreter per measurement, for:

- ``base``: the code of ``--base`` (a git revision, default: where this branch left ``main``;
  ``--base none`` skips it), exported to a temp dir: the core before the hooks existed;
- ``off``: this tree, OpenTelemetry never imported (what an app without the extra runs);
- ``imported``: this tree with ``eventuality.otel`` and the OpenTelemetry API imported, and
  ``instrument()`` never called (the extra installed, no SDK configured);
- ``noop``: ``instrument()`` with no SDK (the API's no-op provider: spans that record nothing);
- ``sdk``: ``instrument()`` with the SDK's tracer provider (every span exported to a sink that
  drops it) and meter provider.

Rounds interleave the contenders in a rotating order; each ratio is taken within a round
against ``base`` (or ``off`` without it), and the medians are printed. Needs ``.[otel]`` and
``opentelemetry-sdk`` (both in ``.[dev]``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MODES = ("base", "off", "imported", "noop", "sdk")


def _configure(mode: str) -> None:
    if mode == "imported":
        import opentelemetry.trace  # noqa: F401

        import eventuality.otel  # noqa: F401
    elif mode == "noop":
        from eventuality import otel

        otel.instrument()
    elif mode == "sdk":
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            SimpleSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        from eventuality import otel

        class Sink(SpanExporter):
            def export(self, spans: Sequence[Any]) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(Sink()))
        meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        otel.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)


def child(mode: str, todos: int) -> None:
    """Run W1 once in this interpreter, configured for ``mode``; print its figure as JSON."""
    sys.path.insert(0, str(HERE))
    _configure(mode)
    import workloads

    figures = asyncio.run(workloads.ev_dispatch_memory(todos))
    print(json.dumps({"commands/s": figures["commands/s"]}))


def _export(revision: str, into: Path) -> Path:
    """The ``eventuality`` package of git ``revision``, unpacked under ``into``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "eventuality"],
        cwd=HERE.parent,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def _branch_point() -> str:
    """Where HEAD left ``main``: the core without this branch's changes."""
    done = subprocess.run(
        ["git", "merge-base", "HEAD", "main"], cwd=HERE.parent, capture_output=True, text=True
    )
    return done.stdout.strip() if done.returncode == 0 else "none"


def _measure(mode: str, todos: int, base: Path | None) -> float:
    env = None
    if mode == "base":
        assert base is not None
        import os

        env = {**os.environ, "PYTHONPATH": str(base)}
    done = subprocess.run(
        [sys.executable, __file__, "--child", "off" if mode == "base" else mode, str(todos)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"W1 {mode} failed:\n{done.stderr}")
    rate: float = json.loads(done.stdout.strip().splitlines()[-1])["commands/s"]
    return rate


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--todos", type=int, default=5000)
    parser.add_argument("--base", default=None, help="git revision for 'base', or none")
    parser.add_argument(
        "--contenders", default=",".join(MODES), help="comma-separated, e.g. base,off,imported"
    )
    parser.add_argument("--child", nargs=2, metavar=("MODE", "TODOS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]))
        return 0
    with tempfile.TemporaryDirectory(prefix="eventuality-otel-bench-") as temp:
        revision = args.base or _branch_point()
        base = None if revision == "none" else _export(revision, Path(temp))
        wanted = args.contenders.split(",")
        modes = [m for m in MODES if m in wanted and (base is not None or m != "base")]
        reference = modes[0]
        rates: dict[str, list[float]] = {mode: [] for mode in modes}
        ratios: dict[str, list[float]] = {mode: [] for mode in modes}
        for round_ in range(args.rounds):
            order = modes[round_ % len(modes) :] + modes[: round_ % len(modes)]
            measured = {mode: _measure(mode, args.todos, base) for mode in order}
            for mode in modes:
                rates[mode].append(measured[mode])
                ratios[mode].append(measured[mode] / measured[reference])
            print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    print(f"W1, {args.todos * 5} commands, {args.rounds} rounds; ratios against {reference}")
    print(f"{'contender':<10} {'commands/s (median)':>20} {'range':>22} {'ratio (median)':>15}")
    for mode in modes:
        low, high = min(rates[mode]), max(rates[mode])
        median_rate = statistics.median(rates[mode])
        ratio = statistics.median(ratios[mode])
        print(f"{mode:<10} {median_rate:>20,.0f} {f'{low:,.0f}-{high:,.0f}':>22} {ratio:>15.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
