"""The toolkit's error types: each names the input and what is wrong with it."""


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
