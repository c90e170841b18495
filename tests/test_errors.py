"""``errors.py`` draws the exception tree in its docstring; the drawing and the code agree."""

from __future__ import annotations

import builtins
import inspect
import re

from stepwise import errors
from stepwise.core import replay

BRANCH = re.compile(r"^(?P<indent>[ │]*)[├└]── (?P<name>\w+)")


def drawn_tree() -> dict[str, str]:
    """Each drawn class name → the name drawn as its parent."""
    doc = errors.__doc__ or ""
    parents: dict[int, str] = {0: "StepwiseError"}
    tree: dict[str, str] = {}
    for line in doc.splitlines():
        match = BRANCH.match(line.removeprefix("    "))
        if match is None:
            continue
        depth = len(match["indent"]) // 4
        tree[match["name"]] = parents[depth]
        parents[depth + 1] = match["name"]
    return tree


def test_every_drawn_class_exists_under_its_drawn_parent() -> None:
    tree = drawn_tree()
    assert len(tree) >= 15
    for name, parent in tree.items():
        cls = getattr(errors, name, None)
        assert inspect.isclass(cls), f"errors.py draws {name}, which it does not define"
        assert getattr(errors, parent) in cls.__bases__, f"{name} is drawn under {parent}"


def test_every_class_the_docstring_names_exists() -> None:
    named = set(re.findall(r"``([A-Z]\w+)``", errors.__doc__ or ""))
    assert named
    for name in named:
        assert any(hasattr(module, name) for module in (errors, replay, builtins)), name


def test_every_defined_error_is_drawn() -> None:
    defined = {
        name
        for name, obj in vars(errors).items()
        if inspect.isclass(obj) and issubclass(obj, errors.StepwiseError)
    }
    assert defined - {"StepwiseError"} == set(drawn_tree())


def test_the_reasons_the_engine_fails_a_run_are_stepwise_errors() -> None:
    """A run's error document names a class; for the engine's own reasons it is one of ours."""
    assert replay.DeadlineExceeded is errors.DeadlineExceeded
    assert replay.StepAttemptsExceeded is errors.StepAttemptsExceeded
    assert issubclass(errors.DeadlineExceeded, errors.StepwiseError)
    assert issubclass(errors.StepAttemptsExceeded, errors.StepwiseError)
