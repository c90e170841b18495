"""A throwaway PostgreSQL server: Debian's server binaries, a cluster in a temp dir on a free
127.0.0.1 port, run as the ``postgres`` user when we are root.

Why a real server: the Postgres backend relies on advisory locks, ``SKIP LOCKED``,
LISTEN/NOTIFY and plpgsql, and nothing but Postgres behaves like Postgres. Durability settings
stay at their defaults (``fsync`` and ``synchronous_commit`` on) because the tests check
durability. Databases are cloned from a template: ``initdb`` costs seconds,
``CREATE DATABASE … TEMPLATE`` costs milliseconds.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from harness.processes import free_port

TEMPLATE_DB = "stepwise_template"
INSTALL_HINT = "run `bash scripts/ensure-postgres.sh` to install PostgreSQL's server binaries"
# Durability stays on (fsync, synchronous_commit). Frequent checkpoints and small shared buffers
# keep little dirty data around (and each test's database is dropped once the test ends), so a
# stop or restart in a test takes a fraction of a second, not a flush of the whole session.
_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "300",
    "shared_buffers": "64MB",
    "checkpoint_timeout": "'30s'",
    "log_min_messages": "warning",
    "log_line_prefix": "'%m [%p] '",
}


class PostgresMissing(RuntimeError):
    """Debian's PostgreSQL server binaries are not installed."""


def find_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise PostgresMissing(
            f"PostgreSQL server binaries not found under /usr/lib/postgresql: {INSTALL_HINT}"
        )
    return Path(found[-1]).parent


class PostgresServer:
    """One throwaway cluster; ``stop``/``start``/``restart`` let a test bounce it mid-load."""

    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir = bindir
        self.root = root
        self.datadir = root / "data"
        self.logfile = root / "postgres.log"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        self._dropping: list[subprocess.Popen[bytes]] = []

    # ---- lifecycle ----

    def init(self) -> None:
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._server_cmd(
            "initdb", "-D", str(self.datadir), "-U", "postgres", "--auth=trust",
            "-E", "UTF8", "--locale=C",
        )  # fmt: skip
        settings = dict(_SETTINGS, unix_socket_directories=f"'{self.root}'")
        with (self.datadir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# stepwise tests\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def start(self) -> None:
        """Start the server (no-op when running); waits until it accepts connections."""
        if self.running():
            return
        self._server_cmd(
            "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.datadir),
            "-l", str(self.logfile), "-o", f"-p {self.port}",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``mode`` is pg_ctl's (``fast`` or ``immediate`` for a crash)."""
        self._finish_drops()
        if self.running():
            self._server_cmd(
                "pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", str(self.datadir)
            )

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def running(self) -> bool:
        status = subprocess.run(
            self._wrap([str(self.bindir / "pg_ctl"), "status", "-D", str(self.datadir)]),
            capture_output=True,
            text=True,
            check=False,
        )
        return status.returncode == 0

    # ---- clients ----

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def psql(self, sql: str, db: str = "postgres") -> str:
        """Run ``sql`` (statements one by one, stop at the first error); return unaligned rows."""
        result = subprocess.run(
            [*self._psql_argv(db), "-f", "-"],
            input=sql,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        self.psql(f'CREATE DATABASE "{name}" TEMPLATE {TEMPLATE_DB}')
        return name

    def drop_database_soon(self, name: str) -> None:
        """Drop ``name`` in the background (connections left over are cut).

        Why bother: every database holds some 300 files whose fsync the next checkpoint owes,
        and a stop or restart pays for all of them at once (seconds, late in a session). A
        dropped database's pending fsyncs are forgotten. Why in the background: the drop itself
        forces a checkpoint, most of a second the next test need not wait for.
        """
        self._dropping = [proc for proc in self._dropping if proc.poll() is None]
        drop = subprocess.Popen(
            [*self._psql_argv("postgres"), "-c", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._dropping.append(drop)

    def _finish_drops(self) -> None:
        for proc in self._dropping:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._dropping.clear()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.logfile.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    # ---- helpers ----

    def _psql_argv(self, db: str) -> list[str]:
        return [
            str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
            "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db,
        ]  # fmt: skip

    def _wrap(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if self._as_postgres else argv

    def _server_cmd(self, program: str, *args: str) -> None:
        result = subprocess.run(
            self._wrap([str(self.bindir / program), *args]),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            cwd=self.root,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{program} {args[0] if args else ''} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}\n--- server log ---\n{self.log_tail()}"
            )
