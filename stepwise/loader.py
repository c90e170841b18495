"""Loading the user's workflow modules (``--app``), so their ``@workflow`` definitions register.

Three traps this module avoids, each of which once bit a user:

- ``--app myapp.flows`` from the project folder must import as ``python -m`` would, although the
  ``stepwise`` script's own folder, not the current one, heads ``sys.path``;
- two workflow files with the same name in different folders (``a/flows.py``, ``b/flows.py``)
  are two modules: the name under which a file is imported comes from its whole path;
- loading leaves ``sys.path`` as it found it: the folders made importable for the import are
  taken off again, so one app's folder never shadows another's modules later.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stepwise.errors import DefinitionError


def load_app(spec: str) -> None:
    """Import a workflow module given as a file path (``flows/orders.py``) or a dotted module
    name (``myapp.flows``, found from the current folder too), so its ``@workflow``
    definitions register themselves. Loading the same file or module again does nothing."""
    path = Path(spec)
    if spec.endswith(".py") or path.is_file():
        _load_file(spec, path)
        return
    with _importable(os.getcwd()):
        try:
            importlib.import_module(spec)
        except ModuleNotFoundError as exc:
            raise DefinitionError(f"cannot import workflow module {spec!r}: {exc}") from None


def _load_file(spec: str, path: Path) -> None:
    if not path.is_file():
        raise DefinitionError(f"workflow file {spec!r} does not exist")
    resolved = path.resolve()
    module_name = _module_name(resolved)
    if module_name in sys.modules:
        return
    module_spec = importlib.util.spec_from_file_location(module_name, resolved)
    if module_spec is None or module_spec.loader is None:
        raise DefinitionError(f"cannot load workflow file {spec!r}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    # The file imports its siblings, as `python file.py` would let it.
    with _importable(str(resolved.parent)):
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise


def _module_name(resolved: Path) -> str:
    """The module name of the workflow file at ``resolved``: its stem, for tracebacks and logs,
    and a digest of its whole path, so that files of the same name never share a module."""
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    stem = "".join(c if c.isalnum() else "_" for c in resolved.stem)
    return f"stepwise_app_{stem}_{digest}"


@contextmanager
def _importable(folder: str) -> Iterator[None]:
    """``folder`` first on ``sys.path`` for the duration, unless it is there already."""
    if folder in sys.path:
        yield
        return
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
