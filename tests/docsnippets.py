"""Code blocks of the docs as the files they name, so tests run the docs as written.

A python block under a line naming a file (`` `flows.py`: ``) starts that file; a python
block without one continues the last file named.
"""

from __future__ import annotations

import re
from pathlib import Path

BLOCK = re.compile(r"(?:^`(?P<file>[\w.]+\.py)`:\n\n)?^```python\n(?P<code>.*?)^```", re.M | re.S)


def snippets(markdown: str) -> dict[str, str]:
    """File name -> its code, gathered from the python blocks of ``markdown``."""
    files: dict[str, str] = {}
    current: str | None = None
    for block in BLOCK.finditer(markdown):
        current = block["file"] or current
        if current is not None:
            files[current] = files.get(current, "") + block["code"] + "\n\n"
    return files


def write(files: dict[str, str], folder: Path) -> None:
    for name, code in files.items():
        (folder / name).write_text(code)
