"""``benchmarks/relay.py --quick`` runs against both brokers and prints its table, so it cannot
rot. Only the shape is checked, never a speed."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.brokers.conftest import requires_nats, requires_rabbitmq

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@requires_nats
@requires_rabbitmq
def test_quick_relay_benchmark_prints_both_brokers_beside_the_raw_client() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "relay.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-5000:]
    rows = [line.split() for line in done.stdout.splitlines()]
    assert ["broker", "relay", "ev/s", "raw", "ev/s", "ratio"] in rows
    assert {row[0] for row in rows if len(row) == 4} == {"nats", "rabbitmq"}
