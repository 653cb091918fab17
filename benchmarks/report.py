"""Turning per-round figures into medians, ratios, tables, JSON and a chart."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from checks import Check
from common import Figures, median
from plan import Plan

Rounds = list[dict[str, dict[str, Figures]]]  # round -> workload -> contender -> figures


def medians(plan: Plan, rounds: Rounds) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """workload -> contender -> figure -> {median, min, max}."""
    result: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for workload in plan.workloads:
        for contender in workload.contenders:
            values: dict[str, list[float]] = {}
            for figures in rounds:
                for name, value in figures.get(workload.id, {}).get(contender.name, {}).items():
                    values.setdefault(name, []).append(value)
            for name, series in values.items():
                result.setdefault(workload.id, {}).setdefault(contender.name, {})[name] = {
                    "median": median(series),
                    "min": min(series),
                    "max": max(series),
                }
    return result


def ratios(plan: Plan, rounds: Rounds) -> list[dict[str, Any]]:
    """Each check's value in every round, and the median of those."""
    result: list[dict[str, Any]] = []
    for check in plan.checks:
        per_round = [v for figures in rounds if (v := check.value(figures)) is not None]
        value = median(per_round) if per_round else None
        result.append(
            {
                "workload": check.workload,
                "label": check.label,
                "numerator": list(check.num),
                "denominator": list(check.den) if check.den else None,
                "per_round": per_round,
                "median": value,
                "bar": str(check.bar) if check.bar else None,
                "met": (check.bar.met(value) if check.bar and value is not None else None),
                "peer": check.peer,
                "lower_is_better": check.lower_is_better,
                "note": check.note,
            }
        )
    return result


def sweep(plan: Plan, rounds: Rounds) -> dict[str, dict[str, float | None]]:
    """W6: sync -> tasks -> median commands/s."""
    table: dict[str, dict[str, float | None]] = {}
    for sync, points in plan.sweep.items():
        for tasks, ref in points.items():
            check = Check("W6", "", ref)
            series = [v for figures in rounds if (v := check.value(figures)) is not None]
            table.setdefault(sync, {})[str(tasks)] = median(series) if series else None
    return table


def number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def medians_table(plan: Plan, table: dict[str, dict[str, dict[str, dict[str, float]]]]) -> str:
    rows: list[list[str]] = []
    for workload in plan.workloads:
        for contender in workload.contenders:
            for name, stats in table.get(workload.id, {}).get(contender.name, {}).items():
                if name == "events" and "events/s" in table[workload.id][contender.name]:
                    continue  # a count, not a figure
                rows.append(
                    [
                        f"{workload.id} {workload.title}",
                        contender.name,
                        name,
                        number(stats["median"]),
                        f"{number(stats['min'])} - {number(stats['max'])}",
                    ]
                )
    return _table(["workload", "contender", "figure", "median", "range"], rows, {3, 4})


def ratios_table(plan: Plan, found: list[dict[str, Any]]) -> str:
    titles = {w.id: f"{w.id} {w.title}" for w in plan.workloads}
    rows: list[list[str]] = []
    for item in found:
        if item["workload"] not in titles:
            continue
        met = {True: "yes", False: "NO", None: "-"}[item["met"]] if item["bar"] else ""
        if item["median"] is None:
            met = "n/a"
        per_round = item["per_round"]
        spread = f"{number(min(per_round))} - {number(max(per_round))}" if per_round else ""
        rows.append(
            [
                titles[item["workload"]],
                item["label"],
                number(item["median"]),
                spread,
                item["bar"] or "",
                met,
            ]
        )
    return _table(
        ["workload", "ratio (within each round)", "median", "range", "bar", "met"], rows, {2, 3}
    )


def closing_note(found: list[dict[str, Any]], skipped: list[str]) -> str:
    """One line per ratio that has a bar (met or not), then what was not measured and why."""
    lines: list[str] = []
    barred = [item for item in found if item["bar"]]
    met = sum(1 for item in barred if item["met"])
    for item in barred:
        verdict = {True: "met", False: "NOT MET", None: "n/a"}[item["met"]]
        lines.append(
            f"{item['workload']}  {item['label']}: {number(item['median'])} "
            f"(bar {item['bar']}): {verdict}"
        )
    lines.append(f"{met} of {len(barred)} bars met.")
    lines += [f"skipped: {note}" for note in skipped]
    return "\n".join(lines)


def sweep_table(table: dict[str, dict[str, float | None]]) -> str:
    tasks = sorted({t for points in table.values() for t in points}, key=int)
    rows = [[sync, *(number(points.get(t)) for t in tasks)] for sync, points in table.items()]
    return _table(["tasks", *tasks], rows, set(range(1, len(tasks) + 1)))


def write_json(path: Path, data: dict[str, Any], stamp: str) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    shutil.copyfile(path, path.with_name(f"{stamp}.json"))


def write_chart(
    path: Path,
    plan: Plan,
    found: list[dict[str, Any]],
    sweep_table: dict[str, dict[str, float | None]],
    limits: dict[str, float],
    title: str,
) -> None:
    """Every ratio as a bar, grouped by workload and coloured by peer (log scale, the bar as a
    black tick), and W6's throughput against concurrency as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    checks = {(c.workload, c.label): c for c in plan.checks}
    shown = [r for r in found if r["median"] is not None and r["denominator"] is not None]
    colours = plt.get_cmap("tab10")
    peers = list(dict.fromkeys(checks[(r["workload"], r["label"])].peer for r in shown))
    height = max(4.0, 0.32 * len(shown) + 1.5)
    figure, (bars, lines) = plt.subplots(
        1, 2, figsize=(16, height), gridspec_kw={"width_ratios": [1.7, 1]}
    )
    labels: list[str] = []
    labelled: set[str] = set()
    for y, item in zip(_positions(shown), shown, strict=True):
        check = checks[(item["workload"], item["label"])]
        bars.barh(
            y,
            item["median"],
            0.8,
            color=colours(peers.index(check.peer) % 10),
            label=check.peer if check.peer not in labelled else None,
        )
        labelled.add(check.peer)
        if check.bar is not None:
            bars.plot([check.bar.value] * 2, [y - 0.45, y + 0.45], color="black", linewidth=2)
        verdict = "" if item["met"] is None else (" ok" if item["met"] else " MISSED")
        bars.text(item["median"], y, f" {number(item['median'])}{verdict}", va="center", fontsize=7)
        lower = " (lower is better)" if check.lower_is_better else ""
        labels.append(f"{item['workload']}  {item['label']}{lower}")
    bars.set_yticks(_positions(shown), labels, fontsize=7)
    bars.invert_yaxis()
    bars.set_xscale("log")
    bars.axvline(1.0, color="grey", linewidth=0.8, linestyle="--")
    bars.set_xlabel("ratio: median of the per-round ratios (log); black tick: the bar")
    bars.set_title("eventuality against each peer, per workload")
    if labelled:
        bars.legend(fontsize=7, loc="lower right")

    for sync, points in sweep_table.items():
        xs = [int(t) for t, v in points.items() if v is not None]
        ys = [v for v in points.values() if v is not None]
        if xs:
            lines.plot(xs, ys, marker="o", label=f"eventuality {sync}")
    for name, value in limits.items():
        lines.axhline(value, linestyle="--", linewidth=0.9, color="grey")
        lines.text(1, value, f" {name}", fontsize=7, va="bottom", color="dimgrey")
    lines.set_xscale("log")
    lines.set_yscale("log")
    lines.set_xlabel("concurrent tasks, each on its own todos (1 = W2)")
    lines.set_ylabel("commands/s (median)")
    lines.set_title("W6: throughput against concurrency")
    if any(v is not None for points in sweep_table.values() for v in points.values()):
        lines.legend(fontsize=8, loc="lower right")
    lines.grid(True, which="both", alpha=0.3)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)


def _positions(shown: list[dict[str, Any]]) -> list[float]:
    """One row per ratio, with a gap between workloads."""
    positions: list[float] = []
    y, previous = 0.0, None
    for item in shown:
        if previous is not None and item["workload"] != previous:
            y += 0.6
        previous = item["workload"]
        positions.append(y)
        y += 1
    return positions
