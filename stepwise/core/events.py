"""Hooks for watching an execution: the CLI prints them, the worker counts them as metrics."""

from __future__ import annotations


class ExecutionListener:
    """Override what you need; every hook is a no-op by default and must not block."""

    def run_started(self, run_id: str, workflow: str, claims: int) -> None:
        """A worker began (or, with ``claims`` > 1, resumed) executing a run."""

    def step_started(self, run_id: str, key: str, attempt: int) -> None:
        pass

    def step_replayed(self, run_id: str, key: str) -> None:
        """A completed step returned its stored result without running."""

    def step_finished(
        self, run_id: str, key: str, *, ok: bool, seconds: float, error: str | None, retrying: bool
    ) -> None:
        pass

    def run_diverged(self, run_id: str, workflow: str, missing: list[str], new: list[str]) -> None:
        """A replay left its stored history (``core.divergence``): completed steps ``missing``
        were not requested, ``new`` ones were."""

    def run_finished(self, run_id: str, outcome: str) -> None:
        """``outcome``: succeeded, failed, canceled, sleeping, released, retrying or abandoned."""
