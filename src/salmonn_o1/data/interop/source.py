"""Raw records of another tool's dataset file: JSON list, JSONL, parquet, or a saved Hugging Face dataset.

JSON and JSONL are read here (so an error can name the line); parquet files and `save_to_disk`
folders go through Hugging Face `datasets` (`load_dataset("parquet")`, `load_from_disk`), imported
only when such an input is given, since it is an optional dependency.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from salmonn_o1.errors import DataError


def read_raw_records(source: Any) -> tuple[str, list[Any]]:
    """(name used in error messages, records) of a file path, a dataset folder, or a `datasets.Dataset`."""
    if not isinstance(source, (str, Path)):
        if hasattr(source, "to_list"):  # a datasets.Dataset already in memory
            return type(source).__name__, list(source.to_list())
        if type(source).__name__ == "DatasetDict":
            return _one_split(source, type(source).__name__)
        if isinstance(source, list):
            return "records", source
        raise DataError(f"cannot read records from a {type(source).__name__}; give a file path, a dataset "
                        "folder, a datasets.Dataset or a list of dicts")
    path = Path(source)
    if path.is_dir():
        return str(path), _load_from_disk(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return str(path), _load_dataset("parquet", path)
    if suffix == ".jsonl":
        return str(path), _jsonl(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return str(path), _jsonl(path)  # a .json file holding JSON lines
    if isinstance(data, dict):
        raise DataError(f"{path}: a JSON object; expected a list of records (or one record per line)")
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    return str(path), data


def _jsonl(path: Path) -> list[Any]:
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise DataError(f"{path} line {number}: invalid JSON ({error.msg})") from None
    return records


def _datasets():
    try:
        import datasets
    except ImportError:
        raise DataError("reading parquet files and saved datasets needs the `datasets` package "
                        "(pip install datasets); JSON and JSONL files do not") from None
    return datasets


def _load_dataset(kind: str, path: Path) -> list[Any]:
    datasets = _datasets()
    try:
        loaded = datasets.load_dataset(kind, data_files=str(path), split="train")
    except Exception as error:  # datasets raises many types for an unreadable file
        raise DataError(f"{path}: cannot be read as {kind} ({type(error).__name__}: {error})") from None
    return list(loaded.to_list())


def _load_from_disk(path: Path) -> list[Any]:
    datasets = _datasets()
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as error:
        raise DataError(f"{path}: not a dataset folder written by save_to_disk ({type(error).__name__}: "
                        f"{error})") from None
    if isinstance(loaded, datasets.DatasetDict):
        return _one_split(loaded, str(path))[1]
    return list(loaded.to_list())


def _one_split(splits: Any, name: str) -> tuple[str, list[Any]]:
    if len(splits) != 1:
        raise DataError(f"{name}: a DatasetDict with splits {sorted(splits)}; give one split (dataset['train'])")
    split = next(iter(splits))
    return f"{name}[{split!r}]", list(splits[split].to_list())
