"""What the harness raises when a server, a tool or the Kubernetes API says no."""

from __future__ import annotations

import subprocess
from typing import Any


class ControlPlaneError(RuntimeError):
    """The control plane (or the node) is missing binaries or could not start."""


class ApiError(RuntimeError):
    """A non-2xx answer from the API server; ``status`` and the decoded ``body`` say why."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        message = body.get("message", body) if isinstance(body, dict) else body
        super().__init__(f"{method} {path}: HTTP {status}: {message}")
        self.status = status
        self.body = body


class ToolError(subprocess.CalledProcessError):
    """kubectl or helm failed; unlike CalledProcessError its message carries stderr."""

    def __str__(self) -> str:
        cmd = " ".join(str(part) for part in self.cmd)
        return f"`{cmd}` exited with {self.returncode}:\n{self.stderr or self.stdout}".rstrip()
