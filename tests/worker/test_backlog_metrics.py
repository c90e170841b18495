"""The backlog gauges (``stepwise.backlog``) track a real backlog: runs started with no worker
up show as pending (and due) under their workflow, a worker that starts drains them to 0; a run
delayed to later is pending but not due; a workflow nobody knows counts under ``_other``. The
database is read at most once per interval, however many scrapes come, and a worker started with
``--backlog-metrics`` serves the same gauges. On both backends."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from harness.postgres import PostgresServer
from harness.processes import free_port
from harness.workers import Procs, async_wait_until, wait_until
from stepwise import Client, endpoint
from stepwise.backlog import OTHER, BacklogCollector

FLOWS = Path(__file__).parents[1] / "robustness" / "flows.py"
ECHO = "robust-echo"
RUNS = 5

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    """Every sample of ``/metrics``: (name, sorted labels) → value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def runs(samples: Samples, workflow: str, status: str) -> float | None:
    return samples.get(("stepwise_runs", (("status", status), ("workflow", workflow))))


def backlog(samples: Samples, workflow: str) -> float | None:
    return samples.get(("stepwise_backlog", (("workflow", workflow),)))


@contextlib.asynccontextmanager
async def serving(collector: BacklogCollector) -> AsyncIterator[int]:
    """The collector behind a real ``/metrics`` endpoint; yields its port."""
    registry = CollectorRegistry()
    registry.register(collector)
    runner: web.AppRunner = await endpoint.serve(
        registry, "127.0.0.1", 0, refresh=collector.refresh
    )
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def _scrape(port: int) -> Samples:
    return await asyncio.to_thread(scrape, port)


async def test_the_gauges_track_a_real_backlog(backend_url: str, procs: Procs) -> None:
    async with Client.connect(backend_url) as client:
        for _ in range(RUNS):
            await client.start(ECHO, {})
        await client.start(ECHO, {}, delay=3600)
        await client.start("nobody-serves-this", {})
        # The serving process knows ECHO (as a worker knows its registry); "nobody-serves-this"
        # is no one's.
        collector = BacklogCollector(client.backend, [ECHO], interval=0)
        async with serving(collector) as port:
            before = await _scrape(port)
            assert runs(before, ECHO, "pending") == RUNS + 1
            assert backlog(before, ECHO) == RUNS  # the delayed run is not due
            assert runs(before, ECHO, "running") == 0
            assert runs(before, ECHO, "sleeping") == 0
            assert runs(before, OTHER, "pending") == 1
            assert backlog(before, OTHER) == 1
            assert not [key for key in before if ("workflow", "nobody-serves-this") in key[1]]

            worker = procs.worker(FLOWS, backend_url, ready=True)

            async def drained() -> bool:
                samples = await _scrape(port)
                pending, due = runs(samples, ECHO, "pending"), backlog(samples, ECHO)
                return (pending, due, runs(samples, ECHO, "running")) == (1, 0, 0)

            await async_wait_until(drained, 60, "the worker to run the backlog to the end")
            after = await _scrape(port)
            assert runs(after, OTHER, "pending") == 1  # still waiting for a worker
            assert after[("stepwise_backlog_read_failures_total", ())] == 0
            worker.terminate()
            assert worker.wait(30) == 0


async def test_a_workflow_a_worker_registered_gets_its_own_label(
    backend_url: str, procs: Procs
) -> None:
    """The operator knows no workflow itself: the names come from the workers' registrations,
    and stay once the worker is gone (a crashed worker's row stays; a worker that stops
    removes it, and its workflow's runs count under ``_other`` again)."""
    async with Client.connect(backend_url) as client:
        await client.start(ECHO, {}, delay=3600)
        collector = BacklogCollector(client.backend, interval=0)
        async with serving(collector) as port:
            assert runs(await _scrape(port), OTHER, "pending") == 1
            assert runs(await _scrape(port), ECHO, "pending") is None
            worker = procs.worker(FLOWS, backend_url, ready=True)
            samples = await _scrape(port)
            assert runs(samples, ECHO, "pending") == 1
            assert runs(samples, OTHER, "pending") == 0
            assert runs(samples, "robust-sleep", "pending") == 0  # every registered name
            worker.kill()
            assert runs(await _scrape(port), ECHO, "pending") == 1


async def test_one_read_per_interval_however_many_scrapes(tmp_path: Path) -> None:
    async with Client.connect(f"sqlite:///{tmp_path / 'runs.db'}") as client:
        await client.start(ECHO, {})
        collector = BacklogCollector(client.backend, [ECHO], interval=3600)
        async with serving(collector) as port:
            scrapes = await asyncio.gather(*(_scrape(port) for _ in range(8)))
            assert {backlog(samples, ECHO) for samples in scrapes} == {1}
            await client.start(ECHO, {})
            assert backlog(await _scrape(port), ECHO) == 1  # within the interval: as read
            assert (await _scrape(port))[("stepwise_backlog_reads_total", ())] == 1
        collector.interval = 0
        await collector.refresh()
        assert collector.reads == 2


@pytest.mark.postgres
async def test_a_failed_read_yields_no_gauges_and_the_next_good_one_brings_them_back(
    postgres_url: str, pg_server: PostgresServer
) -> None:
    async with Client.connect(postgres_url) as client:
        collector = BacklogCollector(client.backend, [ECHO], interval=0)
        await collector.refresh()
        assert "stepwise_backlog" in {metric.name for metric in collector.collect()}
        await asyncio.to_thread(pg_server.stop)
        try:
            await collector.refresh()
        finally:
            await asyncio.to_thread(pg_server.start)
        names = {metric.name for metric in collector.collect()}
        assert names == {"stepwise_backlog_reads", "stepwise_backlog_read_failures"}
        assert collector.failures == 1

        async def back() -> bool:
            await collector.refresh()
            return "stepwise_backlog" in {metric.name for metric in collector.collect()}

        await async_wait_until(back, 30, "the gauges back after the restart")


def test_a_worker_serves_the_gauges_with_backlog_metrics(backend_url: str, procs: Procs) -> None:
    port = free_port()
    args = ["--health-port", str(port), "--health-host", "127.0.0.1", "--backlog-metrics"]
    worker = procs.worker(FLOWS, backend_url, args=args, ready=True)
    done = procs.cli("start", ECHO, "--input", "{}", "--wait", "--database-url", backend_url)
    assert done.returncode == 0, done.stderr
    wait_until(lambda: runs(scrape(port), ECHO, "pending") == 0, 30, "the gauges in /metrics")
    samples = scrape(port)
    assert backlog(samples, ECHO) == 0
    assert samples[("stepwise_runs_finished_total", (("outcome", "succeeded"), ("workflow", ECHO)))]
    worker.terminate()
    assert worker.wait(30) == 0


def test_backlog_metrics_needs_the_health_port(procs: Procs, tmp_path: Path) -> None:
    result = procs.cli(
        "worker", "--app", str(FLOWS), "--database-url", f"sqlite:///{tmp_path / 'runs.db'}",
        "--backlog-metrics",
    )  # fmt: skip
    assert result.returncode != 0
    assert "--backlog-metrics needs --health-port" in result.stderr
