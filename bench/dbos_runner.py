"""One measured throughput run of the Python peer (DBOS Transact), in its queue mode.

Run by the driver with the peer's own virtualenv (``python -m bench.dbos_runner``, from the
repository root): it imports nothing of stepwise. The shape maps the Node peer's benchmark:

* enqueue = ``DBOSClient.enqueue_async`` of N runs onto queue ``bench`` with no worker up;
* worker = ``DBOS.launch()`` in this process, queue registered with ``worker_concurrency=C``
  (a setup child launches DBOS once to register the queue, because registering needs a
  launched DBOS, then exits);
* process time = just before ``launch`` until a COUNT poll (every 10 ms, own connection) sees
  all N succeeded. The driver reads the database side (first dequeue to last completion).

``--style sync`` uses plain ``def`` workflow and steps (the peer's fastest setting);
``--shape parallel`` runs the 4 steps with ``asyncio.gather`` (async only). SQL comes from the
driver (``--queries``, named queries of ``bench/queries.sql``). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

import psycopg
from dbos import DBOS, DBOSClient, DBOSConfig, EnqueueOptions

APP = "stepwise-bench"
QUEUE = "bench"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    p.add_argument("--mode", default="bench", choices=["bench", "setup"])
    p.add_argument("--url", required=True)
    p.add_argument("--queries", required=True, help="JSON: current_lsn, dbos_progress")
    p.add_argument("--shape", default="sequential", choices=["sequential", "parallel"])
    p.add_argument("--style", default="async", choices=["async", "sync"])
    p.add_argument("--poll", type=float, default=1.0, help="queue polling_interval_sec")
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=100)
    return p


ARGS = _parser().parse_args()
SQL: dict[str, str] = json.loads(ARGS.queries)


@DBOS.step(name="step-1")
async def astep1() -> None:
    return None


@DBOS.step(name="step-2")
async def astep2() -> None:
    return None


@DBOS.step(name="step-3")
async def astep3() -> None:
    return None


@DBOS.step(name="step-4")
async def astep4() -> None:
    return None


@DBOS.workflow(name="bench-async")
async def bench_async() -> dict[str, bool]:
    await astep1()
    await astep2()
    await astep3()
    await astep4()
    return {"completed": True}


@DBOS.workflow(name="bench-parallel")
async def bench_parallel() -> dict[str, bool]:
    await asyncio.gather(astep1(), astep2(), astep3(), astep4())
    return {"completed": True}


@DBOS.step(name="sstep-1")
def sstep1() -> None:
    return None


@DBOS.step(name="sstep-2")
def sstep2() -> None:
    return None


@DBOS.step(name="sstep-3")
def sstep3() -> None:
    return None


@DBOS.step(name="sstep-4")
def sstep4() -> None:
    return None


@DBOS.workflow(name="bench-sync")
def bench_sync() -> dict[str, bool]:
    sstep1()
    sstep2()
    sstep3()
    sstep4()
    return {"completed": True}


CONFIG: DBOSConfig = {
    "name": APP,
    "system_database_url": ARGS.url,
    "application_version": "bench-1",
    "log_level": "WARNING",
    # everything else at the peer's defaults (pool of 20, LISTEN/NOTIFY on)
}


def setup() -> None:
    DBOS(config=CONFIG)
    DBOS.launch()
    DBOS.register_queue(
        QUEUE,
        worker_concurrency=ARGS.concurrency,
        polling_interval_sec=ARGS.poll,
        on_conflict="always_update",
    )
    DBOS.destroy()


def _workflow_name() -> str:
    if ARGS.shape == "parallel":
        if ARGS.style != "async":
            raise SystemExit("--shape parallel needs --style async")
        return "bench-parallel"
    return "bench-async" if ARGS.style == "async" else "bench-sync"


def _completed(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(SQL["dbos_progress"], (QUEUE,)).fetchone()
    assert row is not None
    return int(row[0])


def _lsn(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute(SQL["current_lsn"]).fetchone()
    assert row is not None
    return str(row[0])


async def bench() -> dict[str, Any]:
    DBOS(config=CONFIG)
    client = DBOSClient(system_database_url=ARGS.url, application_name=APP)
    opts: EnqueueOptions = {"queue_name": QUEUE, "workflow_name": _workflow_name()}
    t0 = time.time()
    await asyncio.gather(*(client.enqueue_async(opts) for _ in range(ARGS.runs)))
    enqueue_s = time.time() - t0
    client.destroy()

    with psycopg.connect(ARGS.url, autocommit=True) as monitor:
        wal_start = _lsn(monitor)
        process_start = time.time()
        DBOS.launch()
        while _completed(monitor) < ARGS.runs:
            await asyncio.sleep(0.01)
        process_s = time.time() - process_start
        wal_end = _lsn(monitor)
    DBOS.destroy()
    return {
        "enqueue_ms": round(enqueue_s * 1000),
        "process_ms": round(process_s * 1000),
        "process_start_epoch": process_start,
        "wal_start": wal_start,
        "wal_end": wal_end,
        "pool_size": 20,
        "style": ARGS.style,
        "poll_s": ARGS.poll,
    }


def main() -> None:
    if ARGS.mode == "setup":
        setup()
        return
    subprocess.run(
        [sys.executable, "-m", "bench.dbos_runner", "--mode", "setup", *sys.argv[1:]],
        check=True,
        cwd=os.getcwd(),
    )
    print(json.dumps(asyncio.run(bench())), flush=True)


if __name__ == "__main__":
    main()
