"""The toolkit's error types: each names the input and what is wrong with it."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class SalmonnError(Exception):
    """Base class: a problem with user input that deserves a one-line message."""


class MediaError(SalmonnError):
    """A video, audio or image file that cannot be used (missing, corrupt, empty...)."""


class CheckpointError(SalmonnError):
    """A checkpoint whose keys, shapes or config do not fit the model."""


class DataError(SalmonnError):
    """A data file (JSONL items, predictions, recipes) with a malformed entry."""


class RecipeError(SalmonnError, ValueError):
    """A training recipe with an unknown key, a wrong type or a missing file."""


class SkipExample(SalmonnError):
    """A training example the engine should skip and count, not crash on (too long, no usable target).

    Datasets raise it from `__getitem__`; the trainer catches exactly this and the input
    errors above (`MediaError`, `DataError`), so any other exception, a bug, stops the run.
    """


class OutputError(SalmonnError):
    """An output path the run cannot write: a read-only folder, a full disk, a file where a folder belongs.

    Raised before work is lost where it can be (an output folder is probed before a run starts), and
    in place of the bare `OSError` traceback where a write fails midway.
    """


def os_reason(error: OSError) -> str:
    """The operating system's words for `error` ("Permission denied", "No space left on device")."""
    if error.errno in (errno.ENOTDIR, errno.EEXIST):
        return "a file stands where a folder is needed"
    return error.strerror or str(error)


@contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Turn an `OSError` raised while writing `path` into one `OutputError` line naming it.

    The file the system names (a shard inside an output folder, say) is reported when known.
    """
    try:
        yield
    except OSError as error:
        named = Path(error.filename) if isinstance(error.filename, (str, os.PathLike)) else None
        if named is not None and not _within(named, Path(path)):  # an input failed, not the output
            raise OutputError(f"{named}: {os_reason(error)}") from error
        raise OutputError(f"cannot write {named or path}: {os_reason(error)}") from error


def _within(path: Path, root: Path) -> bool:
    """Whether `path` is `root` or inside it, or one of the folders leading to it (compared as absolute paths)."""
    path, root = path.absolute(), root.absolute()
    return path == root or root in path.parents or path in root.parents


def ensure_writable_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Create `path` if needed and prove a file can be written in it, before a long run begins.

    A read-only folder or a file standing where the folder belongs then fails at once with one line,
    not after the first hour of work (or with a traceback).
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise OutputError(f"cannot write {what} {path}: {os_reason(error)}") from error
    return path
