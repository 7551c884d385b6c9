"""Every benchmark format by name: what `infer --items-format` and `eval --items-format` choose from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from salmonn_o1.data import loaders, omni_loaders
from salmonn_o1.data.schema import Item
from salmonn_o1.errors import DataError

LOADERS = {**loaders.LOADERS, **omni_loaders.LOADERS}
FORMATS = tuple(LOADERS)


def load_benchmark(path: str | Path, fmt: str = "items", **kwargs: Any) -> list[Item]:
    """Items from any supported format by name (see LOADERS)."""
    if fmt not in LOADERS:
        raise DataError(f"{path}: unknown format {fmt!r}; choose from {', '.join(LOADERS)}")
    return LOADERS[fmt](path, **kwargs)
