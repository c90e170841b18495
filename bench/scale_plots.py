"""The scale suite's curves as PNGs for ``docs/performance.md``: one plot per curve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # after choosing the backend

PREFIX = "scale-"


def _save(fig: Any, images: Path, name: str) -> str:
    images.mkdir(parents=True, exist_ok=True)
    path = images / f"{PREFIX}{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def _queue(case: dict[str, Any], images: Path) -> str:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    runs = [p["runs"] for p in case["points"]]
    ax.plot(runs, [p["enqueue_runs_per_s"] for p in case["points"]], "o-", label="enqueue")
    ax.plot(runs, [p["drain_runs_per_s"] for p in case["points"]], "s-", label="drain")
    ax.plot(
        runs,
        [p["drain_last_10pct_runs_per_s"] for p in case["points"]],
        "^--",
        label="drain, last 10 %",
    )
    ax.set(xscale="log", yscale="log", xlabel="runs in the queue", ylabel="runs/s")
    ax.set_title("Queue depth: enqueue (start_many) and drain")
    ax.legend()
    return _save(fig, images, "queue-depth")


def _long(case: dict[str, Any], images: Path) -> str:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label in ("plain", "replaying"):
        windows = case[label]["windows"]
        name = label if label == "plain" else f"sleep(0) every {case[label]['sleep_every']} steps"
        ax.plot([w["step"] for w in windows], [w["ms_per_step"] for w in windows], label=name)
    ax.set(xlabel="step", ylabel=f"ms per step (mean of {case['window_steps']})", ylim=(0, None))
    ax.set_title(f"One run of {case['steps']:,} sequential steps")
    ax.legend()
    return _save(fig, images, "long-workflows")


def _payloads(case: dict[str, Any], images: Path) -> str:
    fig, left = plt.subplots(figsize=(6, 3.5))
    sizes = [p["result_bytes"] for p in case["points"]]
    left.plot(sizes, [p["steps_per_s"] for p in case["points"]], "o-", color="C0")
    left.set(xscale="log", yscale="log", xlabel="bytes per step result")
    left.set_ylabel("steps/s", color="C0")
    right = left.twinx()
    right.plot(sizes, [p["wal_bytes_per_step"] for p in case["points"]], "s--", color="C1")
    right.set_yscale("log")
    right.set_ylabel("WAL bytes per step", color="C1")
    left.set_title("Payloads: throughput and WAL per step")
    return _save(fig, images, "payloads")


def _workers(case: dict[str, Any], images: Path) -> str:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    points = case["points"]
    ax.plot([p["processes"] for p in points], [p["runs_per_s"] for p in points], "o-")
    ax.set(xlabel="worker processes", ylabel="runs/s", ylim=(0, None))
    ax.set_xticks([p["processes"] for p in points])
    ax.set_title("Worker processes on one Postgres (2 cores in all)")
    return _save(fig, images, "workers")


def draw(result: dict[str, Any], images: Path) -> list[str]:
    """Draw each curve ``result`` holds into ``images``; the file names written."""
    plots = {
        "queue_depth": _queue,
        "long_workflows": _long,
        "payloads": _payloads,
        "workers": _workers,
    }
    drawn = {name: case for name, case in result.items() if name in plots and "error" not in case}
    return [plots[name](case, images) for name, case in drawn.items()]
