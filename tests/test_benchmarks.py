"""The benchmark harness runs end to end (``benchmarks/run.py --quick``), so it cannot rot.

Only the shape of what it prints and writes is checked, never a speed: speed is measured by the
harness, not asserted by tests.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ["W1", "W2", "W3", "W4", "W5", "W6", "W7"]


@pytest.mark.slow
def test_quick_run_prints_tables_and_writes_json_and_chart(tmp_path: Path) -> None:
    pytest.importorskip(
        "eventsourcing", reason="the bench extra is not installed: pip install -e '.[bench]'"
    )
    pytest.importorskip(
        "matplotlib", reason="the bench extra is not installed: pip install -e '.[bench]'"
    )

    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-5000:]
    lines = done.stdout.splitlines()
    headers = [line.split() for line in lines if line.startswith("workload")]
    assert ["workload", "contender", "figure", "median", "range"] in headers
    assert any(h[:3] == ["workload", "ratio", "(within"] and "bar" in h for h in headers)
    for workload in WORKLOADS:
        assert any(line.startswith(f"{workload} ") for line in lines), workload
    assert "round 1/" in done.stderr  # progress while it runs

    data = json.loads((tmp_path / "latest.json").read_text())
    assert {"machine", "config", "rounds", "medians", "ratios", "w6_sweep"} <= data.keys()
    assert {"cpu", "cores", "python", "sqlite", "eventuality", "eventsourcing", "date"} <= set(
        data["machine"]
    )
    assert data["config"]["quick"] is True
    assert len(data["rounds"]) == data["config"]["rounds"] >= 1
    assert set(data["medians"]) == set(WORKLOADS)
    for contenders in data["medians"].values():
        for figures in contenders.values():
            for stats in figures.values():
                assert set(stats) == {"median", "min", "max"}
    assert {r["workload"] for r in data["ratios"]} == set(WORKLOADS)
    for ratio in data["ratios"]:
        assert {"label", "median", "per_round", "bar", "met"} <= ratio.keys()
        assert len(ratio["per_round"]) == data["config"]["rounds"]
    for sync in ("NORMAL", "FULL"):
        assert set(data["w6_sweep"][sync]) == {"1", "10", "100", "1000"}

    png = tmp_path / "latest.png"
    assert png.stat().st_size > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list(tmp_path.glob("*.json"))) == 2  # latest.json and its timestamped copy
