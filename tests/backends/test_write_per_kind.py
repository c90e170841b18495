"""Migration 0013 splits Postgres's ``stepwise_write`` into one function per kind of write; a
database upgraded from 0012 must write exactly as before.

Two schemas of one database are migrated to 0012. One is then upgraded to 0013 by opening a
backend on it; the other has 0013 recorded but not applied, so it keeps 0012's function. The
same batches, covering every kind of op, fenced and refused ones, a log cap and an error, go
to both; after each, the return values, the stored rows and the notifications must be equal.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from stepwise.backends import migrations
from stepwise.backends.base import (
    FinishRun,
    LogLine,
    NewRun,
    ReleaseRun,
    RetryRun,
    RunStatus,
    StepFinished,
    StepSleeping,
    StepStarted,
    StepStatus,
    SuspendRun,
    WriteOp,
)
from stepwise.backends.postgres.backend import PostgresBackend

pytestmark = pytest.mark.postgres

PACKAGE = "stepwise.backends.postgres.migrations"
SPLIT = 13
WF = "wf"
RUNS = ["a", "b", "c", "d", "e"]
AT = datetime(2026, 1, 1, tzinfo=UTC)
LATER = AT + timedelta(hours=1)
TABLES = {"runs": "id", "steps": "seq", "run_logs": "run_id, seq"}
# The runs' columns stamped with the database's clock or a fresh token: they differ between
# the schemas (every other column, of every table, must be equal).
CLOCK = {"created_at", "updated_at", "started_at", "finished_at", "available_at"}
CLOCK |= {"lease_token", "lease_expires_at", "progress_at_claim"}


class Side:
    """One schema: its backend, its runs' tokens, and what its channels said."""

    def __init__(self, backend: PostgresBackend, listener: asyncpg.Connection) -> None:
        self.backend, self.listener = backend, listener
        self.schema = backend.schema
        self.tokens: dict[str, str] = {}
        self.heard: list[tuple[str, str]] = []
        self.marks = 0

    def heard_until_mark(self) -> list[tuple[str, str]]:
        """What the channels said up to the last mark sent, marks left out."""
        return [(channel, payload) for channel, payload in self.heard if channel != "mark"]

    async def mark(self) -> None:
        """Wait until everything committed so far has been heard: the listener gets
        notifications in commit order, so once a mark sent now arrives, so has the rest."""
        self.marks += 1
        wanted = ("mark", str(self.marks))
        await self.listener.execute(f"NOTIFY \"{self.schema}.mark\", '{self.marks}'")
        async with asyncio.timeout(20):
            while wanted not in self.heard:
                await asyncio.sleep(0.01)


def run_id(label: str) -> str:
    return f"00000000-0000-0000-0000-00000000000{RUNS.index(label) + 1}"


@pytest.fixture
async def sides(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[Side]]:
    """The schema kept at 0012's function, and the one upgraded to 0013."""
    shipped = migrations.discover(PACKAGE)
    assert shipped[SPLIT - 1].version == SPLIT
    monkeypatch.setattr(migrations, "discover", lambda package: shipped[: SPLIT - 1])
    for schema in ("kept", "upgraded"):
        backend = PostgresBackend(postgres_url, schema=schema)
        await backend.open()
        await backend.close()
    monkeypatch.undo()
    conn = await asyncpg.connect(postgres_url)
    await conn.execute(
        "INSERT INTO kept.stepwise_migrations (version, name) VALUES ($1, $2)",
        SPLIT,
        shipped[SPLIT - 1].name,
    )
    opened: list[Side] = []
    try:
        for schema in ("kept", "upgraded"):
            backend = PostgresBackend(postgres_url, schema=schema)
            await backend.open()
            side = Side(backend, await asyncpg.connect(postgres_url))
            for kind in ("work", "runs", "mark"):
                await side.listener.add_listener(
                    f"{schema}.{kind}",
                    lambda _c, _p, channel, payload, side=side: side.heard.append(
                        (channel.rsplit(".", 1)[1], payload)
                    ),
                )
            opened.append(side)
        functions = await conn.fetch(
            "SELECT n.nspname, p.proname FROM pg_proc AS p JOIN pg_namespace AS n "
            "ON n.oid = p.pronamespace WHERE p.proname = 'stepwise_write_steps'"
        )
        assert [tuple(row) for row in functions] == [("upgraded", "stepwise_write_steps")]
        yield opened
    finally:
        for side in opened:
            await side.listener.close()
            await side.backend.close()
        await conn.close()


async def snapshot(side: Side) -> dict[str, list[dict[str, Any]]]:
    """Every stored row of the side's tables, in key order, its clock columns left out and
    its tokens named by their run."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for table, order in TABLES.items():
        found = await side.listener.fetch(f"SELECT * FROM {side.schema}.{table} ORDER BY {order}")
        skip = CLOCK if table == "runs" else set()
        rows[table] = [{k: v for k, v in row.items() if k not in skip} for row in found]
    return rows


async def write_both(sides: list[Side], batch: Any) -> list[Any]:
    """Apply ``batch(side)`` to each side and return, per side: the refused runs (or the
    error), the stored rows, and the notifications it caused."""
    outcomes: list[Any] = []
    for side in sides:
        side.heard.clear()
        ops: Sequence[WriteOp] = batch(side)
        try:
            result = await side.backend.write(ops)
        except Exception as exc:
            outcome: Any = (type(exc).__name__, str(exc))
        else:
            by_token = {token: label for label, token in side.tokens.items()}
            outcome = sorted(by_token.get(token, token) for token in result.rejected)
        await side.mark()
        outcomes.append((outcome, await snapshot(side), side.heard_until_mark()))
    return outcomes


def log(side: Side, label: str, n: int, key: str | None = None, cap: int = 3) -> LogLine:
    token = side.tokens[label]
    return LogLine(token, run_id(label), key, 1, n, 20, "app", f"line {n}", AT, cap)


def finished(side: Side, label: str, key: str, status: StepStatus, attempts: int) -> StepFinished:
    output, error = ('{"v": 1}', None) if status is StepStatus.COMPLETED else (None, '{"e": 1}')
    token = side.tokens[label]
    return StepFinished(token, run_id(label), key, status, output, error, attempts, AT, AT)


async def test_an_upgraded_database_writes_every_kind_as_before(sides: list[Side]) -> None:
    for side in sides:
        for label in RUNS:
            await side.backend.create_run(NewRun(run_id(label), WF, None, "{}"))
        claimed = await side.backend.claim_runs("w1", [WF], len(RUNS), 30.0)
        side.tokens = {RUNS[int(c.run.id[-1]) - 1]: c.lease_token for c in claimed}
        assert sorted(side.tokens) == RUNS

    # Steps: started, finished, failed and tried again, and sleeping, several on one step in
    # one batch (generations); log lines of the body and of a step, past the cap of 3.
    def steps_and_logs(side: Side) -> list[WriteOp]:
        a = side.tokens["a"]
        return [
            StepStarted(a, run_id("a"), "one", 1, AT),
            finished(side, "a", "one", StepStatus.COMPLETED, 1),
            StepStarted(a, run_id("a"), "two", 1, AT),
            finished(side, "a", "two", StepStatus.FAILED, 1),
            StepStarted(a, run_id("a"), "two", 2, LATER),
            StepSleeping(a, run_id("a"), "nap", LATER, AT),
            finished(side, "a", "one", StepStatus.FAILED, 2),  # completed is final
            *(log(side, "a", n) for n in range(5)),
            log(side, "a", 0, key="one"),
            StepStarted(side.tokens["d"], run_id("d"), "one", 1, AT),
            finished(side, "d", "one", StepStatus.FAILED, 1),
            finished(side, "d", "kept", StepStatus.COMPLETED, 1),
        ]

    # A replay's repeated body line stored once, the marker moving on; every lease-ending op;
    # ops after a lease ended, and ops under a token that holds nothing, refused.
    def lease_ends(side: Side) -> list[WriteOp]:
        t = side.tokens
        return [
            log(side, "a", 1),
            log(side, "a", 7),
            FinishRun(t["a"], run_id("a"), RunStatus.SUCCEEDED, '{"done": true}'),
            log(side, "a", 8),
            SuspendRun(t["b"], run_id("b"), LATER),
            ReleaseRun(t["c"], run_id("c")),
            StepStarted(t["c"], run_id("c"), "late", 1, AT),
            RetryRun(t["d"], run_id("d"), LATER, '{"why": "retry"}'),
            StepStarted("00000000-0000-0000-0000-0000000000ff", run_id("e"), "x", 1, AT),
            finished(side, "e", "one", StepStatus.COMPLETED, 1),
        ]

    # Nothing applies: every token refused (the batch returns before any write).
    def refused(side: Side) -> list[WriteOp]:
        return [StepStarted(side.tokens[label], run_id(label), "z", 1, AT) for label in "abcd"]

    # An error: a value Postgres cannot store fails the batch, the same way on both.
    def broken(side: Side) -> list[WriteOp]:
        token = side.tokens["e"]
        bad = StepFinished(
            token, run_id("e"), "bad", StepStatus.COMPLETED, "{not json", None, 1, AT, AT
        )
        return [StepStarted(token, run_id("e"), "bad", 1, AT), bad]

    def finish_e(side: Side) -> list[WriteOp]:
        return [FinishRun(side.tokens["e"], run_id("e"), RunStatus.FAILED, None, '{"e": 2}')]

    for batch in (steps_and_logs, lease_ends, refused, broken, finish_e):
        kept, upgraded = await write_both(sides, batch)
        assert upgraded == kept, batch.__name__
    # The scenario did what it meant to: each kind left its mark.
    (_, rows, heard) = kept
    assert heard == [("runs", run_id("e"))]
    statuses = {row["id"]: row["status"] for row in rows["runs"]}
    assert list(statuses.values()) == ["succeeded", "sleeping", "pending", "pending", "failed"]
    # 6 lines past a cap of 3, then one more (the repeated body line is not counted).
    assert [row["dropped"] for row in rows["run_logs"]][-1] == 4
    assert json.loads(rows["runs"][3]["error"]) == {"why": "retry"}
