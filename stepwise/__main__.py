"""``python -m stepwise`` is the ``stepwise`` command."""

from __future__ import annotations

import sys

from stepwise.cli import main

sys.exit(main())
