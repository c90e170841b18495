"""The scale suite at its smallest (``scale.TINY``: 50 runs, 50 steps), so it cannot rot: it
runs end to end on its own Postgres, measures every case and draws every plot. It asserts what
was measured, never how fast."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import scale
from bench.pgserver import BenchServer

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.mark.timeout(600)
async def test_the_scale_suite_runs_at_a_tiny_size(tmp_path: Path) -> None:
    lines: list[str] = []
    async with BenchServer() as pg:
        result = await scale.run(pg, scale.TINY, log=lines.append, images=tmp_path)
    (queue,) = result["queue_depth"]["points"]
    assert queue["runs"] == 50
    assert queue["enqueue_runs_per_s"] > 0
    assert queue["drain_runs_per_s"] > 0
    for label, replays in (("plain", 0), ("replaying", 4)):
        case = result["long_workflows"][label]
        assert case["replays"] == replays
        assert case["windows"][-1]["step"] == 50
    points = result["payloads"]["points"]
    assert [p["result_bytes"] for p in points] == [1_024, 102_400]
    # Each step stores its result once: at least that much WAL, whatever else is written.
    assert all(p["wal_bytes_per_step"] >= p["result_bytes"] for p in points)
    assert [p["processes"] for p in result["workers"]["points"]] == [1, 2]
    assert all(p["load_average"] for p in points)
    assert "kubernetes" not in result  # TINY skips it
    assert sorted(result["images"]) == sorted(p.name for p in tmp_path.glob("*.png"))
    assert len(result["images"]) == 4
    assert any("queue 50" in line for line in lines)
