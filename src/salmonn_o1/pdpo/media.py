"""Where a question's media comes from, written into every stage record so any
later stage (or the training engine) can rebuild the exact same features.

A reference is plain JSON: `{"path": "/abs/clip.mp4"}` for a file, None for a
text-only question, or a component that renders the media itself,
`{"_component_": "package.module.loader", **kwargs}`, called as
`loader(**kwargs, processor=processor)` and returning the model features (a
question source that generates its clips writes these, so the stages never
import the generator).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

from salmonn_o1 import components
from salmonn_o1.errors import DataError
from salmonn_o1.processor import MediaFeatures, SalmonnO1Processor

MediaRef = dict[str, Any] | None

# Stage folders written before references named their loader: {"<kind>": split, "index", "fps", "size"}.
LEGACY_RENDERED = ("synthetic", "salmonn_o1.data.synthetic.pdpo_questions.render_clip")


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
    if components.COMPONENT_KEY in ref:
        return components.build(ref, "media reference", processor=processor)
    if "path" in ref:
        if not Path(ref["path"]).is_file():
            raise DataError(f"{ref['path']}: media file not found (moved since the rollout stage?)")
        return processor.media_features(ref["path"])
    legacy_key, loader = LEGACY_RENDERED
    if legacy_key in ref:
        spec = {components.COMPONENT_KEY: loader, "split": ref[legacy_key], "index": int(ref["index"]),
                "fps": ref.get("fps", 2.0), "size": ref.get("size", 64)}
        return components.build(spec, "media reference", processor=processor)
    raise DataError(f"media reference {ref!r}: expected a 'path' or {components.COMPONENT_KEY!r} key")


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
