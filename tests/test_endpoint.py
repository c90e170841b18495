"""One HTTP endpoint for the worker and the operator (``stepwise.endpoint``): ``/healthz``,
``/readyz`` and ``/metrics`` in the Prometheus text format, with the metric names the chart and
the docs promise."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from harness.processes import free_port
from harness.workers import Procs, wait_until
from stepwise import endpoint
from stepwise.operator import metrics as operator_metrics

FLOWS = Path(__file__).parent / "robustness" / "flows.py"
WORKER_METRICS = (
    "stepwise_runs_started_total",
    "stepwise_runs_finished_total",
    "stepwise_steps_total",
    "stepwise_steps_replayed_total",
    "stepwise_step_seconds_bucket",
    "stepwise_run_seconds_bucket",
    "stepwise_active_runs",
    # prometheus_client's process collector, read from /proc
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
    "python_info",
)


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_a_worker_serves_health_readiness_and_its_metrics(procs: Procs, tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'runs.db'}"
    port = free_port()
    worker = procs.worker(
        FLOWS,
        database,
        args=["--health-port", str(port), "--health-host", "127.0.0.1"],
        ready=True,
    )
    assert _get(port, "/healthz") == (200, "ok\n")
    wait_until(lambda: _get(port, "/readyz") == (200, "ready\n"), 30, "the worker to be ready")

    started = procs.cli("start", "robust-echo", "--input", "{}", "--database-url", database)
    assert started.returncode == 0, started.stderr
    finished = 'stepwise_runs_finished_total{outcome="succeeded",workflow="robust-echo"} 1.0'
    wait_until(lambda: finished in _get(port, "/metrics")[1], 30, "the run in /metrics")

    status, text = _get(port, "/metrics")
    assert status == 200
    for name in WORKER_METRICS:
        assert re.search(rf"^{name}[{{ ]", text, re.MULTILINE), f"{name} not in:\n{text}"
    assert 'stepwise_steps_total{result="ok",workflow="robust-echo"} 1.0' in text
    assert 'stepwise_step_seconds_count{workflow="robust-echo"} 1.0' in text
    assert _get(port, "/nowhere")[0] == 404
    worker.terminate()
    assert worker.wait(30) == 0


async def test_readyz_answers_503_while_not_ready_and_healthz_carries_details() -> None:
    ready = False
    registry = CollectorRegistry()
    Counter("demo_things", "Things.", registry=registry).inc(3)
    runner = await endpoint.serve(
        registry, "127.0.0.1", 0, ready=lambda: ready, details=lambda: {"mirror": {"tracked": 2}}
    )
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            async with session.get("/readyz") as answer:
                assert (answer.status, await answer.text()) == (503, "not ready\n")
            ready = True
            async with session.get("/readyz") as answer:
                assert (answer.status, await answer.text()) == (200, "ready\n")
            async with session.get("/healthz") as answer:
                assert await answer.json() == {"mirror": {"tracked": 2}}
            async with session.get("/metrics") as answer:
                assert answer.headers["Content-Type"].startswith("text/plain; version=")
                assert "demo_things_total 3.0\n" in await answer.text()
    finally:
        await runner.cleanup()


class _Mirror:
    """The counters a ``Mirror`` reports, without a cluster behind them."""

    def stats(self) -> dict[str, Any]:
        return {"tracked": 4, "refreshes": 9, "requests": {"status": 7, "event": 8}}


def test_the_operator_metrics_keep_their_names_and_values() -> None:
    registry = CollectorRegistry()
    registry.register(operator_metrics.MirrorCollector(_Mirror()))  # type: ignore[arg-type]
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
    }
    assert samples == {
        ("stepwise_operator_workflowruns", ()): 4,
        ("stepwise_operator_refreshes_total", ()): 9,
        ("stepwise_operator_api_requests_total", (("kind", "status"),)): 7,
        ("stepwise_operator_api_requests_total", (("kind", "event"),)): 8,
        ("stepwise_operator_api_requests_total", (("kind", "delete"),)): 0,
    }
