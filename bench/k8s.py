"""Kubernetes: N WorkflowRuns created at once -> the time until every one shows Succeeded.

On the test control plane (``harness/controlplane.py``: a real etcd and kube-apiserver on
127.0.0.1, no nodes), with the CRD from ``crds/``, one ``stepwise operator`` process and one
``stepwise worker`` process (concurrency 100) on the benchmark's Postgres. The runs are
POSTed by 16 concurrent requests (so the creating client does not pace the figure), and the clock
stops when a LIST shows every one with ``status.phase: Succeeded``.

Also measured: API requests per run made by the operator (the apiserver's
``apiserver_request_total`` for WorkflowRuns and Events, minus this benchmark's own creates
and LISTs) and the operator's peak RSS (``VmHWM``). Then whether its memory grows with
finished runs: its RSS (``VmRSS``) and the WorkflowRuns its mirror keeps (``/healthz``) when
idle, once the N have Succeeded, and again after each of two more waves of N/4.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg

from bench.machine import load_average
from bench.pgserver import BenchServer, Q, quote_ident
from bench.throughput import REPO
from harness.controlplane import ControlPlane
from harness.processes import free_port
from stepwise.operator import models

DATABASE = "bench_k8s"
WORKFLOW = "bench-sequential"
TIMEOUT = 600.0
CREATORS = 16
PROBE_WAVES = 2
"""After the N runs, this many waves of N/4 more, the operator's memory measured after each."""
_REQUEST = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>[\d.e+]+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def _requests(plane: ControlPlane) -> Counter[tuple[str, str, str]]:
    """Requests so far for WorkflowRuns and Events, by (resource, subresource, verb)."""
    text = plane.kubectl("get", "--raw", "/metrics").stdout
    counts: Counter[tuple[str, str, str]] = Counter()
    for line in text.splitlines():
        match = _REQUEST.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        if labels.get("resource") in ("workflowruns", "events"):
            key = (labels["resource"], labels.get("subresource", ""), labels["verb"])
            counts[key] += int(float(match["value"]))
    return counts


def _cpu_seconds(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)
    return None


def _peak_rss_mib(pid: int) -> float | None:
    return _rss_mib(pid, "VmHWM")


def _rss_mib(pid: int, field: str = "VmRSS") -> float | None:
    """The process's current (``VmRSS``) or peak (``VmHWM``) resident set, in MiB."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


@contextlib.asynccontextmanager
async def _process(
    argv: list[str], env: dict[str, str], log_path: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=REPO, env=env, stdout=log_file, stderr=asyncio.subprocess.STDOUT
        )
        try:
            yield proc
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


def _collection(namespace: str) -> str:
    return f"/apis/{models.GROUP}/{models.VERSION}/namespaces/{namespace}/{models.PLURAL}"


async def _create_all(
    plane: ControlPlane, namespace: str, runs: int, prefix: str = "bench"
) -> None:
    """POST every WorkflowRun, CREATORS at a time: "applied at once", not paced by a client."""
    gate = asyncio.Semaphore(CREATORS)

    async def create(i: int) -> None:
        body = {
            "apiVersion": models.API_VERSION,
            "kind": models.KIND,
            "metadata": {"name": f"{prefix}-{i:04d}", "namespace": namespace},
            "spec": {"workflow": WORKFLOW, "input": {"i": i}},
        }
        async with gate:
            await asyncio.to_thread(plane.api.request, "POST", _collection(namespace), body)

    await asyncio.gather(*(create(i) for i in range(runs)))


def _growth_per_1000(first: dict[str, Any], last: dict[str, Any]) -> float | None:
    """MiB of RSS per 1,000 more finished runs, from one settled point to a later one."""
    if first["rss_mib"] is None or last["rss_mib"] is None:
        return None
    more = int(last["finished_runs"]) - int(first["finished_runs"])
    return round((float(last["rss_mib"]) - float(first["rss_mib"])) * 1000 / more, 2)


def _phases(plane: ControlPlane, namespace: str) -> Counter[str]:
    answer = plane.api.request("GET", _collection(namespace))
    return Counter((item.get("status") or {}).get("phase") or "-" for item in answer["items"])


async def _healthz(port: int) -> dict[str, Any] | None:
    """The ``/healthz`` answer of the process on ``port``: its JSON, ``{}`` for a plain ``ok``,
    None unless a 200."""
    with contextlib.suppress(OSError):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.0\r\n\r\n")
        answer = await reader.read()
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            return None
        try:
            health: dict[str, Any] = json.loads(body)
        except ValueError:
            return {}  # a worker's plain "ok"
        return health
    return None


async def _wait_healthy(port: int, proc: asyncio.subprocess.Process, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting")
        if await _healthz(port) is not None:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{what} not healthy on port {port} within 60s")


async def _wait_succeeded(
    plane: ControlPlane, namespace: str, runs: int, t0: float, procs: dict[str, Any]
) -> int:
    """Poll (LIST) until ``runs`` WorkflowRuns show Succeeded; the LISTs it took."""
    lists = 0
    phases: Counter[str] = Counter()
    while phases["Succeeded"] < runs:
        if time.perf_counter() - t0 > TIMEOUT:
            raise RuntimeError(f"not all Succeeded after {TIMEOUT:.0f}s: {dict(phases)}")
        for what, proc in procs.items():
            if proc.returncode is not None:
                raise RuntimeError(f"the {what} exited with {proc.returncode}")
        await asyncio.sleep(0.25)
        phases = await asyncio.to_thread(_phases, plane, namespace)
        lists += 1
    return lists


async def _settled_memory(port: int, pid: int) -> dict[str, Any]:
    """The operator's memory once its mirror has let go of the finished runs (or after 60 s):
    RSS now and at its peak, and the WorkflowRuns still kept."""
    deadline = time.monotonic() + 60
    kept = None
    while time.monotonic() < deadline:
        health = await _healthz(port)
        kept = None if health is None else health.get("mirror", {}).get("tracked")
        if kept == 0:
            break
        await asyncio.sleep(0.25)
    return {"rss_mib": _rss_mib(pid), "peak_rss_mib": _peak_rss_mib(pid), "kept": kept}


async def _timeline(url: str, epoch0: float) -> dict[str, float]:
    """Seconds after the first POST at which the operator had started the first and the last
    run in the database, and at which the worker finished the last one."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(Q["stepwise_timeline"].format(schema=quote_ident("stepwise")))
    finally:
        await conn.close()
    assert row is not None
    return {
        "runs_in_database": row[0],
        "first_run_started_by_operator": round(row[1] - epoch0, 2),
        "last_run_started_by_operator": round(row[2] - epoch0, 2),
        "last_run_finished": round(row[3] - epoch0, 2),
    }


async def run(pg: BenchServer, runs: int, *, log: Callable[[str], None]) -> dict[str, Any]:
    plane = ControlPlane(controllers=False, scheduler=False)
    await asyncio.to_thread(plane.start)
    try:
        return await _measure(pg, plane, runs, log)
    finally:
        await asyncio.to_thread(plane.stop)


async def _measure(
    pg: BenchServer, plane: ControlPlane, runs: int, log: Callable[[str], None]
) -> dict[str, Any]:
    await asyncio.to_thread(plane.kubectl, "apply", "-f", str(REPO / "crds"))
    crd = f"crd/{models.PLURAL}.{models.GROUP}"
    await asyncio.to_thread(
        plane.kubectl, "wait", "--for=condition=Established", crd, "--timeout=60s"
    )
    namespace = await asyncio.to_thread(plane.api.create_namespace, "bench")
    url = await pg.fresh_database(DATABASE)
    env = plane.env()
    operator_port, worker_port = free_port(), free_port()
    python = [sys.executable, "-m", "stepwise", "--log-level", "WARNING"]
    operator_argv = [
        *python, "operator", "--database-url", url, "--namespace", namespace,
        "--health-port", str(operator_port), "--health-host", "127.0.0.1",
    ]  # fmt: skip
    worker_argv = [
        *python, "worker", "--app", "bench.flows", "--database-url", url,
        "--concurrency", "100", "--health-port", str(worker_port), "--health-host", "127.0.0.1",
    ]  # fmt: skip
    logs = plane.root / "logs"
    async with (
        _process(worker_argv, env, logs / "bench-worker.log") as worker,
        _process(operator_argv, env, logs / "bench-operator.log") as operator,
    ):
        await _wait_healthy(worker_port, worker, "stepwise worker")
        await _wait_healthy(operator_port, operator, "stepwise operator")
        idle = await _settled_memory(operator_port, operator.pid)
        before = await asyncio.to_thread(_requests, plane)
        load = load_average()
        t0, epoch0 = time.perf_counter(), time.time()
        await _create_all(plane, namespace, runs)
        created_s = time.perf_counter() - t0
        procs = {"operator": operator, "worker": worker}
        lists = await _wait_succeeded(plane, namespace, runs, t0, procs)
        all_succeeded_s = time.perf_counter() - t0
        # Let the operator finish what it does after the last status (events, bookkeeping).
        await asyncio.sleep(2.0)
        after = await asyncio.to_thread(_requests, plane)
        peak_rss = _peak_rss_mib(operator.pid)
        cpu = {"operator": _cpu_seconds(operator.pid), "worker": _cpu_seconds(worker.pid)}
        timeline = await _timeline(url, epoch0)
        # Does the operator's memory grow with finished runs? Look, then twice N/4 more.
        points = [{"finished_runs": 0, **idle}]
        points.append({"finished_runs": runs, **await _settled_memory(operator_port, operator.pid)})
        more = max(runs // 4, 1)
        for wave in range(PROBE_WAVES):
            t1, probe_load = time.perf_counter(), load_average()
            await _create_all(plane, namespace, more, prefix=f"probe{wave}")
            finished = runs + (wave + 1) * more
            await _wait_succeeded(plane, namespace, finished, t1, procs)
            settled = await _settled_memory(operator_port, operator.pid)
            points.append({"finished_runs": finished, "load_average": probe_load, **settled})
    delta = after - before
    ours = Counter({("workflowruns", "", "POST"): runs, ("workflowruns", "", "LIST"): lists})
    operator_requests = delta - ours
    total = sum(operator_requests.values())
    growth = _growth_per_1000(points[1], points[-1])
    series = ", ".join(f"{p['rss_mib']} MiB at {p['finished_runs']}" for p in points)
    log(
        f"  {runs} WorkflowRuns: all Succeeded after {all_succeeded_s:.1f}s"
        f" ({total / runs:.2f} operator API requests per run, peak RSS {peak_rss} MiB);"
        f" RSS {series} finished runs ({growth} MiB per 1,000 after the first {runs};"
        f" kept: {', '.join(str(p['kept']) for p in points)})"
    )
    return {
        "workflow_runs": runs,
        "workflow": WORKFLOW,
        "worker_concurrency": 100,
        "load_average": load,
        "create_seconds": round(created_s, 2),
        "all_succeeded_seconds": round(all_succeeded_s, 2),
        "runs_per_second": round(runs / all_succeeded_s, 1),
        "operator_api_requests": total,
        "operator_api_requests_per_run": round(total / runs, 2),
        "operator_api_requests_by_kind": {
            f"{verb} {resource}{'/' + sub if sub else ''}": n
            for (resource, sub, verb), n in sorted(operator_requests.items())
        },
        "operator_peak_rss_mib": peak_rss,
        "operator_memory": {
            "points": points,
            "rss_growth_mib_per_1000_finished_runs": growth,
        },
        "database_timeline_seconds": timeline,
        "cpu_seconds": cpu,
        "summary": (
            f"{runs} WorkflowRuns Succeeded in {all_succeeded_s:.1f}s, "
            f"{total / runs:.2f} API requests/run, operator peak RSS {peak_rss} MiB, "
            f"RSS growth {growth} MiB per 1,000 finished runs"
        ),
    }
