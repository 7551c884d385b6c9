"""Write the bundled sample clips: AVR-Synth dev items, two cross-modal questions and a sound-order one.

    .venv/bin/python scripts/make_sample_clip.py

Writes into src/salmonn_o1/assets/sample/ (`make demo` asks all three):
- {clip.mp4, item.json}: the second dev item of the cross-modal alignment family, the question the
  issue asks the demo to show;
- {clip-miss.mp4, clip-miss.json}: the first dev item of that family. It was the bundled clip until
  2026-11-30; the shipped models find its tone at the right time (10.0 s) but read the shape of
  the scene before (the purple circle), so they answer C for A. That is why the second item
  became clip.mp4 (it is answered right); the first stays, so the demo shows a harder item too (the
  first model shipped on 2026-12-04 answered it right from a mistimed step, the tone written at
  9.0 s; the second writes every gold step);
- {sound-order.mp4, sound-order.json}: the first dev item of the audio-only family.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

from salmonn_o1.data.synthetic import generate_item, write_sample_mp4

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "src" / "salmonn_o1" / "assets" / "sample"
SAMPLES = {"item": ("cross_modal_alignment", 1, "clip.mp4"), "clip-miss": ("cross_modal_alignment", 0, "clip-miss.mp4"),
           "sound-order": ("audio_only", 0, "sound-order.mp4")}


def write_sample(name: str, family: str, ordinal: int, video: str) -> None:
    """Write the `ordinal`-th (from 0) dev item of `family` as `video` and `name`.json."""
    matches = (i for i in range(1000) if generate_item("dev", i).item.category == family)
    index = next(itertools.islice(matches, ordinal, None))  # stops at the item it needs
    sample = generate_item("dev", index)
    write_sample_mp4(sample, SAMPLE_DIR / video)
    item = dataclasses.replace(sample.item, video=video)
    (SAMPLE_DIR / f"{name}.json").write_text(json.dumps(dataclasses.asdict(item), indent=2) + "\n")
    print(f"{name}: dev item {index}: {item.question} {item.options} -> {item.answer}")


def main() -> None:
    SAMPLE_DIR.mkdir(parents=True, exist_ok=True)
    for name, (family, ordinal, video) in SAMPLES.items():
        write_sample(name, family, ordinal, video)


if __name__ == "__main__":
    main()
