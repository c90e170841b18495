"""Process control for the servers the harness starts: spawn them with their output in a log,
tie their lifetime to ours, stop them (also from another process), and poll for readiness.

Servers run in their own session so that Ctrl-C in the terminal reaches the test runner, not
them; the runner then stops them in order.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TypeVar

from harness.errors import ControlPlaneError

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout: float = 30.0,
    interval: float = 0.2,
    what: str = "condition",
) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``.

    Exceptions from ``check`` count as "not yet" (the last one is reported on timeout), so a
    check may simply call kubectl and index into the answer.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` of a log, for error messages."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def _set_parent_death_signal() -> None:
    """In the child: die with the parent, so a SIGKILLed test run leaves no orphans.

    SIGKILL, not SIGTERM: a kube-apiserver whose etcd went away at the same moment hangs in
    its graceful shutdown, and nothing here needs one (all state is throwaway).
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def spawn(
    argv: Sequence[str],
    log: Path,
    *,
    cwd: Path,
    die_with_parent: bool,
    pass_fds: Sequence[int] = (),
) -> subprocess.Popen[bytes]:
    """Start a server process with its output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,  # Ctrl-C in the terminal reaches the runner, not them
            preexec_fn=_set_parent_death_signal if die_with_parent else None,
            pass_fds=pass_fds,
        )


def stop(popen: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM a child we started, SIGKILL it if it is still up after ``timeout``; reaped."""
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            popen.terminate()
        try:
            popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(timeout=timeout)


def wait_http(
    popen: subprocess.Popen[bytes],
    name: str,
    log: Path,
    url: str,
    context: ssl.SSLContext | None,
    accept: Callable[[str], bool],
    timeout: float,
) -> None:
    """Until the health endpoint ``url`` of a server we started answers what ``accept`` likes;
    ControlPlaneError (quoting the end of its ``log``) if it exits first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise ControlPlaneError(
                f"{name} exited with {popen.returncode} while starting; "
                f"the end of {log}:\n{tail(log)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=5, context=context) as response:
                body = response.read().decode("utf-8", "replace")
            if accept(body):
                return
            last = body[:500]
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read().decode('utf-8', 'replace')[:2000]}"
            exc.close()
        except (OSError, ValueError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise ControlPlaneError(
        f"{name} not ready at {url} after {timeout:.0f}s ({last}); the end of {log}:\n{tail(log)}"
    )


def insecure() -> ssl.SSLContext:
    """For the components' self-signed /healthz endpoints only."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def is_ok(body: str) -> bool:
    return body.strip() == "ok"


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def pid_runs(pid: int, executable: str) -> bool:
    """Whether ``pid`` still runs ``executable`` (guards against a recycled pid)."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
    except OSError:
        return False
    return _pid_alive(pid) and Path(argv0).name == Path(executable).name


def stop_pids(pids: Sequence[tuple[int, str]], timeout: float = 10.0) -> None:
    """SIGTERM each ``(pid, executable)`` in order, SIGKILL what is still up after ``timeout``.

    Works for processes this Python did not start (``dev_cluster.py down``); a pid that now
    runs something else is left alone.
    """
    for pid, executable in pids:
        if not pid_runs(pid, executable):
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into SystemExit while servers run, so their teardown still happens."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.getsignal(signal.SIGTERM)
        install = previous == signal.SIG_DFL
        if install:
            signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        install = False
    try:
        yield
    finally:
        if install:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
