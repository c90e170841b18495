"""The ``stepwise`` command, on Click: one module per command group.

The only package that reads the environment (the ``STEPWISE_*`` variables, tabled in
docs/configuration.md): each variable is its option's ``envvar``, checked by the option's own
type when a command that has the option runs.
"""

from __future__ import annotations

from stepwise.cli.root import main

__all__ = ["main"]
