"""Code blocks of the docs as the files they name, so tests run the docs as written.

A python block under a line naming a file (`` `flows.py`: ``) starts that file; a python
block without one continues the last file named.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from harness.workers import child_env

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


PRINTS = re.compile(r"`python main\.py` prints:\n\n```(?:text)?\n(.*?)```", re.S)


def run_guide(guide: Path, files: set[str], folder: Path) -> tuple[str, str]:
    """Write ``guide``'s snippets (exactly ``files``) to ``folder`` and run its ``main.py``,
    which must succeed; the page's text and what the run printed."""
    text = guide.read_text()
    snippet_files = snippets(text)
    assert set(snippet_files) == files
    write(snippet_files, folder)
    done = subprocess.run(
        [sys.executable, "main.py"],
        cwd=folder,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return text, done.stdout


def assert_guide_runs(guide: Path, files: set[str], folder: Path) -> None:
    """``run_guide``, and check that it prints what the page says it prints."""
    text, stdout = run_guide(guide, files, folder)
    printed = PRINTS.search(text)
    assert printed is not None
    assert stdout == printed[1]
