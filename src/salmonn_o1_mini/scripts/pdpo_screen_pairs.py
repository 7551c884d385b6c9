"""Are pDPO's step pairs right about the frame? Check each look-up step pair against the timeline.

    .venv/bin/python src/salmonn_o1_mini/scripts/pdpo_screen_pairs.py runs/mini-pdpo/stages/pairs.jsonl

For every step pair whose chosen or rejected step reads the screen ("At 9.0 s the screen shows
the green square."), the clip is regenerated from the pair's media (AVR-Synth train items) and
both reads are checked. Step values come from a few rollouts each; this shows how often they
prefer the right read (salmonn_o1_mini/docs/notebook.md, "pDPO").
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from salmonn_o1.data.synthetic.dataset import generate_item
from salmonn_o1.data.synthetic.questions import read_screen_step
from salmonn_o1.data.synthetic.timeline import Timeline, scene_at


def read_is_right(timeline: Timeline, text: str) -> bool | None:
    """None when the step is not a screen read."""
    read = read_screen_step(text)
    if read is None:
        return None
    shown = scene_at(timeline, read[0])
    return (shown.label if shown else None) == read[1]


def main(path: str) -> None:
    counts: Counter = Counter()
    for line in Path(path).read_text().splitlines():
        pair = json.loads(line)
        if pair["kind"] != "step":
            counts["path pairs"] += 1
            continue
        media = pair["media"]
        split = media.get("split", media.get("synthetic"))  # the clip_ref component, or an older ref
        timeline = generate_item(split, media["index"]).timeline
        chosen, rejected = (read_is_right(timeline, pair[side]["text"]) for side in ("chosen", "rejected"))
        if chosen is None and rejected is None:
            counts["step pairs, not a screen read"] += 1
        else:
            counts[f"screen pairs: chosen read right {chosen}, rejected read right {rejected}"] += 1
    for name, count in sorted(counts.items()):
        print(f"{count:5d}  {name}")


if __name__ == "__main__":
    main(sys.argv[1])
