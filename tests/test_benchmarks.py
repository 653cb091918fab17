"""The benchmark harness runs end to end (``benchmarks/run.py --quick``), so it cannot rot.

Only the shape of what it prints and writes is checked, never a speed: speed is measured by the
harness, not asserted by tests.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ["W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8"]


def _quick(out: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--quick",
            "--out",
            str(out),
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _bench_extra() -> None:
    for module in ("eventsourcing", "matplotlib"):
        pytest.importorskip(
            module, reason="the bench extra is not installed: pip install -e '.[bench]'"
        )


@pytest.mark.slow
def test_quick_run_prints_tables_and_writes_json_and_chart(tmp_path: Path) -> None:
    _bench_extra()

    # Without the Python >= 3.13 peer and without PostgreSQL: both are said to be skipped.
    done = _quick(tmp_path, "--python", "none", "--postgres", "none")

    assert done.returncode == 0, done.stderr[-5000:]
    lines = done.stdout.splitlines()
    headers = [line.split() for line in lines if line.startswith("workload")]
    assert ["workload", "contender", "figure", "median", "range"] in headers
    assert any(h[:3] == ["workload", "ratio", "(within"] and "bar" in h for h in headers)
    for workload in WORKLOADS:
        assert any(line.startswith(f"{workload} ") for line in lines), workload
    assert "round 1/" in done.stderr  # progress while it runs
    assert any("eventsourcing SQLite (FULL) in a thread" in line for line in lines)
    assert "Closing note: every ratio against its bar" in done.stdout
    assert "skipped: eventsource-py skipped: no Python >= 3.13" in done.stdout
    assert "skipped: PostgreSQL skipped" in done.stdout

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
    assert data["config"]["eventsource_py"]["skipped"] == "--python none"
    lag = data["medians"]["W8"]
    for who in ("eventuality FULL", "eventuality NORMAL", "eventsourcing direct"):
        assert {"p50 lag ms", "p99 lag ms", "max lag ms"} <= lag[f"{who} during W2"].keys()
    assert "eventsourcing in a thread during W6 x100" in lag
    for sync in ("NORMAL", "FULL"):
        assert set(data["w6_sweep"][sync]) == {"1", "10", "100", "1000"}

    png = tmp_path / "latest.png"
    assert png.stat().st_size > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list(tmp_path.glob("*.json"))) == 2  # latest.json and its timestamped copy


def _python_313() -> str:
    """A ready interpreter for the eventsource-py peer, or a skip: the test never builds one."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import py313
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    for candidate in (sys.executable, str(py313.VENV / "bin" / "python")):
        if Path(candidate).exists() and py313.probe(candidate):
            return candidate
    pytest.skip(
        "no Python >= 3.13 with eventuality and eventsource-py ready (python benchmarks/run.py "
        "makes benchmarks/.venv313 on first use)"
    )


@pytest.mark.slow
def test_quick_run_with_eventsource_py_on_python_313(tmp_path: Path) -> None:
    _bench_extra()
    python = _python_313()

    done = _quick(tmp_path, "--python", python, "--postgres", "none", "--only", "W1,W3,W5")

    assert done.returncode == 0, done.stderr[-5000:]
    data = json.loads((tmp_path / "latest.json").read_text())
    assert data["config"]["eventsource_py"]["version"] == "0.15.1"
    for workload in ("W1", "W3", "W5"):
        assert {"eventuality (3.13)", "eventsource-py (3.13)"} <= data["medians"][workload].keys()
    labels = {r["label"] for r in data["ratios"]}
    assert "eventuality (3.13) / eventsource-py (3.13)" in labels
    assert "snapshot load: eventsource-py (3.13) ms / eventuality (3.13) ms" in labels


@pytest.mark.slow
def test_quick_run_with_the_postgresql_peer(tmp_path: Path) -> None:
    _bench_extra()
    pytest.importorskip("psycopg", reason="eventsourcing's postgres extra is not installed")
    dsn = os.environ.get("EVENTUALITY_TEST_POSTGRES_DSN")
    if not dsn:
        pytest.skip("EVENTUALITY_TEST_POSTGRES_DSN is not set: the PostgreSQL peer needs a server")

    done = _quick(tmp_path, "--python", "none", "--postgres", dsn, "--only", "W5")

    assert done.returncode == 0, done.stderr[-5000:]
    data = json.loads((tmp_path / "latest.json").read_text())
    assert {"eventuality PostgreSQL", "eventsourcing PostgreSQL"} <= data["medians"]["W5"].keys()
    assert "PostgreSQL: eventuality / eventsourcing" in {r["label"] for r in data["ratios"]}
