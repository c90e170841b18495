"""What this Postgres can commit: pgbench, one ~200-byte INSERT per transaction.

Run at the client count stepwise's Postgres backend uses (its pool size), so a system's
steps/s can be read as a fraction of the commits per second this server and disk allow. The
throughput suite does the division; this suite only measures.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.machine import load_average
from bench.pgserver import BenchServer
from stepwise.backends.postgres.backend import POOL_SIZE

SCRIPTS = Path(__file__).resolve().parent / "pgbench"
DATABASE = "bench_ceiling"
_TPS = re.compile(r"^tps = ([\d.]+)", re.MULTILINE)
_LATENCY = re.compile(r"^latency average = ([\d.]+) ms", re.MULTILINE)


async def _pgbench(pg: BenchServer, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        str(pg.bindir / "pgbench"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"pgbench {' '.join(args)} failed ({proc.returncode}):\n{text}")
    return text


async def measure(pg: BenchServer, clients: int, seconds: int) -> dict[str, Any]:
    await pg.fresh_database(DATABASE)
    pg.server.psql((SCRIPTS / "setup.sql").read_text(), db=DATABASE)
    await pg.checkpoint()
    load = load_average()
    out = await _pgbench(
        pg, "-n", "-M", "prepared", "-f", str(SCRIPTS / "insert.sql"),
        "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(seconds), DATABASE,
    )  # fmt: skip
    tps, latency = _TPS.search(out), _LATENCY.search(out)
    if tps is None or latency is None:
        raise RuntimeError(f"cannot read pgbench output:\n{out}")
    return {
        "clients": clients,
        "seconds": seconds,
        "tps": round(float(tps[1]), 1),
        "latency_avg_ms": float(latency[1]),
        "load_average": load,
    }


async def run(pg: BenchServer, seconds: int, *, log: Callable[[str], None]) -> dict[str, Any]:
    result = await measure(pg, POOL_SIZE, seconds)
    log(f"  pgbench 1 INSERT/transaction, -c {POOL_SIZE}: {result['tps']:.0f} tps")
    return {
        "script": "one ~200-byte INSERT per transaction (autocommit), -M prepared",
        "clients_why": "the stepwise Postgres backend's pool size",
        **result,
    }
