"""Write the bundled sample clip (an AVR-Synth dev item with a cross-modal question).

    .venv/bin/python scripts/make_sample_clip.py

Writes src/salmonn_o1/assets/sample/{clip.mp4, item.json}; `make demo` asks its question.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from salmonn_o1.data.synthetic import generate_item, write_sample_mp4

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "src" / "salmonn_o1" / "assets" / "sample"


def main() -> None:
    index = next(i for i in range(1000) if generate_item("dev", i).item.category == "cross_modal_alignment")
    sample = generate_item("dev", index)
    SAMPLE_DIR.mkdir(parents=True, exist_ok=True)
    write_sample_mp4(sample, SAMPLE_DIR / "clip.mp4")
    item = dataclasses.replace(sample.item, video="clip.mp4")
    (SAMPLE_DIR / "item.json").write_text(json.dumps(dataclasses.asdict(item), indent=2) + "\n")
    print(f"dev item {index}: {item.question} {item.options} -> {item.answer}")


if __name__ == "__main__":
    main()
