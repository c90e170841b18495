"""``make demo``: run a workflow on embedded SQLite, then crash a worker and watch the resume.

Everything happens in a temporary folder; nothing needs a server or a cluster.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from stepwise import Client, StepStatus

ROOT = Path(__file__).resolve().parent.parent
STEPWISE = [sys.executable, "-m", "stepwise"]


def banner(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def start_worker(url: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    app = str(ROOT / "examples" / "crash_recovery.py")
    cmd = [*STEPWISE, "worker", "--app", app, "--database-url", url, "--lease", "2"]
    return subprocess.Popen(cmd, env=env)


async def crash_and_resume(scratch: Path) -> None:
    url = f"sqlite:///{scratch / 'crash.db'}"
    log = scratch / "executions.log"
    env = os.environ | {"STEPWISE_DEMO_LOG": str(log)}
    async with Client.connect(url) as client:
        run = await client.start("crash-recovery", {"slowSeconds": 3})
        print(f"started run {run.id}: step-a, step-b and step-c run in parallel")
        first = start_worker(url, env)
        deadline = time.monotonic() + 30
        while True:
            steps = await client.steps(run.id)
            done = sorted(s.key for s in steps if s.status is StepStatus.COMPLETED)
            if len(done) >= 2:
                break
            if time.monotonic() > deadline:
                first.kill()
                raise SystemExit("the first worker did not complete two steps in time")
            await asyncio.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()
        print(f"completed: {', '.join(done)}; step-c still running -> worker SIGKILLed")
        print("starting a second worker; it takes the run over once the 2 s lease expires")
        second = start_worker(url, env)
        try:
            output = await client.wait(run.id, timeout=60)
        finally:
            second.terminate()
            second.wait()
    print(f"result: {output}")
    counts = Counter(log.read_text().split())
    for step in ("step-a", "step-b", "step-c"):
        print(f"  {step} function ran {counts[step]} time(s)")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="stepwise-demo-") as tmp:
        scratch = Path(tmp)
        banner("1. fetch-all-data on embedded SQLite (stepwise run)")
        url = f"sqlite:///{scratch / 'demo.db'}"
        subprocess.run(
            [
                *STEPWISE,
                "run",
                str(ROOT / "examples" / "fetch_all_data.py"),
                "fetch-all-data",
                "--input",
                '{"userId": 42, "subId": "sub_123"}',
                "--database-url",
                url,
            ],
            check=True,
        )
        banner("2. crash recovery: SIGKILL a worker mid-run, resume on another")
        asyncio.run(crash_and_resume(scratch))


if __name__ == "__main__":
    main()
