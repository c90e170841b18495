"""The benchmark's own PostgreSQL: one throwaway server for a whole ``python -m bench``.

It is the test suite's server (``harness/postgres.py``), started the same way: Debian's
binaries run as the ``postgres`` user, a free 127.0.0.1 port, ``fsync`` and
``synchronous_commit`` on. ``shared_buffers`` goes back to Debian's packaged default (128MB) so
figures compare with a stock install. Every system gets its own database, re-created before
each measured run, so commit counters (``pg_stat_database``) belong to one system only.

Besides the lifecycle it answers what a measurement needs: commit and WAL counters, COMMIT
records between two WAL positions (``pg_waldump``), and the CPU the server spent.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncpg

from harness.postgres import PostgresServer, find_bindir
from stepwise.backends.sqlfiles import load_queries

Q = load_queries("bench")
_TICKS = os.sysconf("SC_CLK_TCK")
_BENCH_SETTINGS = {"shared_buffers": "128MB", "wal_keep_size": "4GB"}
"""wal_keep_size: a long run's WAL window must still be on disk when pg_waldump reads it after
the run (a checkpoint inside a 10,000-run window would otherwise recycle its first segments)."""
_COMMIT_LINE = re.compile(r"^Transaction/COMMIT\s+(\d+)", re.MULTILINE)
_TOTAL_LINE = re.compile(r"^Total\s+(\d+)\s.*?(\d+) \[100", re.MULTILINE)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True, slots=True)
class Counters:
    """Cumulative counters at one moment; subtract two to get what happened in between."""

    xact_commit: int
    tup_written: int
    wal_records: int
    wal_bytes: int
    wal_sync: int
    server_cpu_s: float

    def __sub__(self, other: Counters) -> Counters:
        return Counters(
            self.xact_commit - other.xact_commit,
            self.tup_written - other.tup_written,
            self.wal_records - other.wal_records,
            self.wal_bytes - other.wal_bytes,
            self.wal_sync - other.wal_sync,
            round(self.server_cpu_s - other.server_cpu_s, 2),
        )


class BenchServer:
    """``async with BenchServer() as pg:`` starts the server; leaving stops and deletes it."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="stepwise-bench-pg-"))
        self.server = PostgresServer(find_bindir(), self.root)
        self.bindir = self.server.bindir
        self._admin: asyncpg.Connection | None = None

    async def __aenter__(self) -> BenchServer:
        try:
            self.server.init()
            with (self.server.datadir / "postgresql.conf").open("a", encoding="utf-8") as conf:
                conf.write("# stepwise bench\n")
                conf.writelines(f"{key} = {value}\n" for key, value in _BENCH_SETTINGS.items())
            self.server.start()
            self._admin = await asyncpg.connect(self.url("postgres"))
        except BaseException:
            self._remove()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._admin is not None:
            await self._admin.close()
        self._remove()

    def _remove(self) -> None:
        try:
            self.server.stop("fast")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def admin(self) -> asyncpg.Connection:
        assert self._admin is not None, "server not started"
        return self._admin

    @property
    def port(self) -> int:
        return self.server.port

    def url(self, database: str) -> str:
        return self.server.url(database)

    # ---- databases ----
    async def fresh_database(self, name: str) -> str:
        """Drop and re-create ``name``; returns its URL."""
        await self.admin.execute(Q["drop_database"].format(database=quote_ident(name)))
        await self.admin.execute(Q["create_database"].format(database=quote_ident(name)))
        return self.url(name)

    async def checkpoint(self) -> None:
        await self.admin.execute(Q["checkpoint"])

    async def describe(self) -> dict[str, Any]:
        rows = await self.admin.fetch(Q["durability_settings"])
        settings = {r["name"]: r["setting"] for r in rows}
        return {"version": await self.admin.fetchval(Q["server_version"]), "settings": settings}

    # ---- counters ----
    async def counters(self, database: str) -> Counters:
        db = await self.admin.fetchrow(Q["database_counters"], database)
        wal = await self.admin.fetchrow(Q["wal_counters"])
        assert db is not None
        assert wal is not None
        return Counters(
            xact_commit=db["xact_commit"],
            tup_written=db["tup_inserted"] + db["tup_updated"] + db["tup_deleted"],
            wal_records=wal["wal_records"],
            wal_bytes=wal["wal_bytes"],
            wal_sync=wal["wal_sync"],
            server_cpu_s=self.cpu_seconds(),
        )

    def cpu_seconds(self) -> float:
        """CPU the whole server used so far: the postmaster, its live children, and (through
        the postmaster's ``cutime``) every backend that already exited."""
        pid = int((self.server.datadir / "postmaster.pid").read_text().split()[0])
        total = 0
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # fields[1] is the parent pid; 11..14 are utime, stime, cutime, cstime
            if int(proc.name) == pid:
                total += sum(int(f) for f in fields[11:15])
            elif int(fields[1]) == pid:
                total += int(fields[11]) + int(fields[12])
        return total / _TICKS

    def wal_between(self, start: str, end: str) -> dict[str, int]:
        """COMMIT records and WAL bytes between two LSNs (read by ``pg_waldump --stats``)."""
        result = subprocess.run(
            [
                str(self.bindir / "pg_waldump"),
                "--stats=record",
                "-p",
                str(self.server.datadir / "pg_wal"),
                "-s",
                start,
                "-e",
                end,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        commits = _COMMIT_LINE.search(result.stdout)
        total = _TOTAL_LINE.search(result.stdout)
        if commits is None or total is None:
            raise RuntimeError(f"pg_waldump {start}..{end} failed: {result.stderr.strip()}")
        return {
            "wal_commit_records": int(commits[1]),
            "wal_records": int(total[1]),
            "wal_bytes": int(total[2]),
        }
