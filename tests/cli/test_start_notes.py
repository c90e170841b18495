"""``stepwise start`` says why the run it started will not run at once, in words that fit
what it waits for: a worker that serves it, a slot of its concurrency group, its start time."""

from __future__ import annotations

from harness.workers import Procs
from stepwise.backends import open_backend
from stepwise.backends.base import ConcurrencyLimit, WorkerInfo

LIMITED = "limited-start"
ACME = '{"customer": "acme"}'


async def test_start_notes_say_what_the_run_waits_for(procs: Procs, backend_url: str) -> None:
    backend = open_backend(backend_url)
    await backend.open()
    try:
        await backend.register_worker(
            WorkerInfo("w1", "host", [LIMITED], 10, {LIMITED: ConcurrencyLimit(1, "customer")})
        )

        def start(*args: str) -> str:
            done = procs.cli("start", *args, "--database-url", backend_url)
            assert done.returncode == 0, done.stderr
            return done.stderr

        first = start(LIMITED, "--input", ACME)
        assert "note:" not in first  # a worker serves it and its group has a free slot
        (claimed,) = await backend.claim_runs("w1", [LIMITED], 1, 60.0)
        assert claimed.run.workflow == LIMITED

        queued = start(LIMITED, "--input", ACME)
        assert (
            f"note: waiting for a concurrency slot: 1 of 1 runs of workflow {LIMITED!r} with "
            "customer='acme' are running; the run waits until one of them ends\n"
        ) in queued
        assert "one starts" not in queued

        later = start(LIMITED, "--input", ACME, "--delay", "10m")
        assert "note: the run starts at " in later
        assert "concurrency slot" not in later  # who runs now says nothing about then
        assert later.count("note:") == 1, later

        unserved = start("unserved-start")
        assert (
            "note: no live worker serves workflow 'unserved-start'; "
            "the run waits until one starts\n"
        ) in unserved
        unserved_later = start("unserved-start", "--delay", "10m")
        assert "note: the run starts at " in unserved_later
        assert (
            "note: no live worker serves workflow 'unserved-start' now; "
            "if none does by then, the run waits until one starts\n"
        ) in unserved_later
    finally:
        await backend.close()
