"""Worker processes for robustness tests: spawn, kill, and wait on conditions (filled in below)."""

from __future__ import annotations
