"""Recipe components: a recipe names a class or function by import path, the library builds it.

This is torchtune's `_component_` idea: a research device (a curriculum data
source, an extra loss, an initialisation step) lives in its own package and a
recipe asks for it by name, so adding an idea never adds a field or a branch to
the core library, and the core never imports research code.

A component spec is a mapping `{"_component_": "package.module.Name", **kwargs}`;
`build(spec)` imports `package.module`, takes `Name` and calls it with the kwargs.
`package.module:Name` is accepted too.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from salmonn_o1.errors import RecipeError

COMPONENT_KEY = "_component_"


def resolve(path: str, where: str = "component") -> Any:
    """The object named by `package.module.Name` (or `package.module:Name`)."""
    if not isinstance(path, str) or not path.strip():
        raise RecipeError(f"{where}: expected an import path like 'package.module.Name', got {path!r}")
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise RecipeError(f"{where}: {path!r} is not an import path like 'package.module.Name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise RecipeError(f"{where}: cannot import {module_name!r} for {path!r} ({error})") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise RecipeError(f"{where}: module {module_name!r} has no {attr!r}") from None


def build(spec: Mapping[str, Any], where: str = "component", **extra: Any) -> Any:
    """Call the spec's `_component_` with the spec's other keys (and `extra`) as keyword arguments."""
    if not isinstance(spec, Mapping) or COMPONENT_KEY not in spec:
        raise RecipeError(f"{where}: a component is a mapping with a {COMPONENT_KEY!r} key, got {spec!r}")
    factory = resolve(spec[COMPONENT_KEY], where)
    kwargs = {k: v for k, v in spec.items() if k != COMPONENT_KEY}
    try:
        return factory(**kwargs, **extra)
    except TypeError as error:
        raise RecipeError(f"{where}: cannot build {spec[COMPONENT_KEY]} with {sorted(kwargs)}: {error}") from None
