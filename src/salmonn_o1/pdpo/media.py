"""Where a question's media comes from, written into every stage record so any
later stage (or the training engine) can rebuild the exact same features.

A reference is plain JSON: `{"synthetic": "train", "index": 3, "fps": 2.0,
"size": 32}` for an AVR-Synth clip rendered in memory, `{"path": "/abs/clip.mp4"}`
for a file, or None for a text-only question.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

from salmonn_o1.errors import DataError
from salmonn_o1.processor import MediaFeatures, SalmonnO1Processor

MediaRef = dict[str, Any] | None


def synthetic_ref(split: str, index: int, processor: SalmonnO1Processor) -> dict[str, Any]:
    """An AVR-Synth clip rendered at the model's frame rate and frame size (no mp4 round trip)."""
    return {"synthetic": split, "index": int(index), "fps": float(processor.config.frames_per_second),
            "size": int(processor.config.image_size)}


def path_ref(video: str | None, base: str | Path | None = None) -> MediaRef:
    if not video:
        return None
    path = Path(video)
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return {"path": str(path.resolve())}


def load_features(ref: MediaRef, processor: SalmonnO1Processor) -> MediaFeatures | None:
    """The model features of a media reference (decoding or rendering it)."""
    if ref is None:
        return None
    if "synthetic" in ref:
        from salmonn_o1.data.synthetic import generate_item, render_media

        sample = generate_item(ref["synthetic"], int(ref["index"]))
        return processor.media_features(render_media(sample, fps=ref.get("fps", 2.0), size=ref.get("size", 64)))
    if "path" in ref:
        if not Path(ref["path"]).is_file():
            raise DataError(f"{ref['path']}: media file not found (moved since the rollout stage?)")
        return processor.media_features(ref["path"])
    raise DataError(f"media reference {ref!r}: expected a 'synthetic' or 'path' key")


class FeatureCache:
    """A small LRU of features by reference: pairs of one question share its media."""

    def __init__(self, processor: SalmonnO1Processor, size: int = 32):
        self.processor = processor
        self.size = size
        self._items: OrderedDict[str, MediaFeatures | None] = OrderedDict()

    def __call__(self, ref: MediaRef) -> MediaFeatures | None:
        key = json.dumps(ref, sort_keys=True)
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        features = load_features(ref, self.processor)
        self._items[key] = features
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return features
