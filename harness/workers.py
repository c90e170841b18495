"""The ``stepwise`` processes a test spawns (workers, the CLI): signal them, SIGKILL them,
wait on conditions, quote their logs when something fails.

Why real processes: the guarantees under test (no completed step runs twice, every run
finishes) are about what survives a SIGKILL, a SIGSTOP past the lease or a SIGTERM, and only
an operating-system process dies the way production workers die. Every process writes its
output to a log file; failure messages quote the tails.

``wait_until`` / ``async_wait_until`` poll a condition until it holds or a timeout passes
(never a fixed sleep) and fail the test with a message that says what was awaited; unlike
``harness.processes.wait_until`` an exception in the condition fails at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TypeVar

import pytest

_T = TypeVar("_T")

Message = str | Callable[[], str]
"""What a failed wait reports; a callable is evaluated only on failure (e.g. to quote logs)."""

POLL_INTERVAL = 0.05
LOG_TAIL_LINES = 40
READY_TEXT = " serving "
"""What a worker logs (at INFO) once it is registered and claiming."""


def _render(message: Message) -> str:
    return message() if callable(message) else message


def wait_until(
    predicate: Callable[[], _T | None],
    timeout: float,
    message: Message,
    *,
    interval: float = POLL_INTERVAL,
) -> _T:
    """Poll ``predicate`` until it returns a truthy value (returned), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting until {_render(message)}")
        time.sleep(interval)


async def async_wait_until(
    predicate: Callable[[], Awaitable[_T | None]],
    timeout: float,
    message: Message,
    *,
    interval: float = POLL_INTERVAL,
) -> _T:
    """``wait_until`` for event-loop code: ``predicate`` is a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting until {_render(message)}")
        await asyncio.sleep(interval)


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a child gets: ours without ``STEPWISE_*`` (the tests say what they mean
    with flags), unbuffered output, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("STEPWISE_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class Proc:
    """One child process whose stdout and stderr go to ``log_path``."""

    def __init__(
        self, name: str, argv: Sequence[str], log_path: Path, popen: subprocess.Popen[bytes]
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.popen = popen

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        text = "\n".join(self.log().splitlines()[-lines:])
        head = f"--- {self.name} (pid {self.pid}, exit {self.returncode}) {self.log_path} ---"
        return f"{head}\n{text}"

    def signal(self, sig: signal.Signals) -> None:
        if self.alive:
            self.popen.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL, and reap: the process is gone when this returns."""
        self.signal(signal.SIGKILL)
        self.popen.wait(timeout=30)

    def terminate(self) -> None:
        """SIGTERM: ask for a graceful shutdown (does not wait)."""
        self.signal(signal.SIGTERM)

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def wait(self, timeout: float) -> int:
        """The exit code, once the process has exited within ``timeout`` seconds."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name} did not exit within {timeout:g}s\n{self.tail()}")

    def wait_for_log(self, text: str, timeout: float) -> None:
        """Until ``text`` appears in the log; fails early if the process exits first."""

        def seen() -> bool:
            if text in self.log():
                return True
            if not self.alive:
                pytest.fail(f"{self.name} exited before logging {text!r}\n{self.tail()}")
            return False

        wait_until(seen, timeout, lambda: f"{self.name} logs {text!r}\n{self.tail()}")


class Procs:
    """Spawns processes for one test and kills the survivors at its end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: list[Proc] = []
        self._logs: list[IO[bytes]] = []

    def spawn(
        self,
        argv: Sequence[str],
        *,
        name: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Proc:
        log_path = self.root / f"{len(self.procs):03d}-{name}.log"
        log = log_path.open("wb")
        self._logs.append(log)
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env(env),
            cwd=cwd or self.root,
            start_new_session=True,  # terminal signals (Ctrl-C on pytest) are ours to send
        )
        proc = Proc(name, argv, log_path, popen)
        self.procs.append(proc)
        return proc

    def worker(
        self,
        app: Path,
        database_url: str,
        *,
        lease: float = 1.0,
        concurrency: int = 10,
        name: str = "worker",
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        ready: bool = False,
        ready_timeout: float = 30.0,
    ) -> Proc:
        """``python -m stepwise worker`` serving ``app``; with ``ready``, returns once it is
        registered and claiming."""
        argv = [
            sys.executable, "-m", "stepwise", "--log-level", "INFO", "worker",
            "--app", str(app), "--database-url", database_url,
            "--lease", f"{lease:g}", "--concurrency", str(concurrency), *args,
        ]  # fmt: skip
        proc = self.spawn(argv, name=name, env=env)
        if ready:
            proc.wait_for_log(READY_TEXT, ready_timeout)
        return proc

    def cli(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """``python -m stepwise ARGS…`` to completion, output captured."""
        argv = [sys.executable, "-m", "stepwise", *args]
        try:
            return subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                env=child_env(env),
                cwd=cwd or self.root,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"`stepwise {' '.join(args)}` did not finish within {timeout:g}s: {exc}")

    def tails(self) -> str:
        """The log tails of every process spawned so far: for failure messages."""
        return "\n".join(proc.tail() for proc in self.procs)

    def close(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.kill()  # SIGKILL ends a stopped (SIGSTOP) process too
        for log in self._logs:
            log.close()
