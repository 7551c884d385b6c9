"""Where a model's look-up answers go wrong: read its test predictions step by step.

    .venv/bin/python src/salmonn_o1_mini/scripts/lookup_reads.py runs/results/reasoning-sft.jsonl

Reads a prediction file of `python -m salmonn_o1_mini.results` (AVR-Synth test items) and,
per cross-modal family, counts the answers right, the sound's time found, the screen steps that
name the shape on screen at their own time, the first lists that are exact, and for the wrong
frame reads, how far (in scenes) the named shape is from the right one. The numbers of
salmonn_o1_mini/docs/notebook.md, "Look-ups by time", come from this script.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

from salmonn_o1.data.synthetic.dataset import generate_item
from salmonn_o1.data.synthetic.questions import read_screen_step, shape_order_step
from salmonn_o1.data.synthetic.timeline import scene_at, sounds_of
from salmonn_o1.reasoning import split_steps, strip_step_number

FAMILIES = ("cross_modal_alignment", "temporal_order", "cross_modal_counting")


def steps_of(reasoning: str | None) -> list[str]:
    return [strip_step_number(step) for step in split_steps(reasoning or "")]


def read(rows: list[dict]) -> tuple[dict[str, Counter], Counter]:
    stats: dict[str, Counter] = defaultdict(Counter)
    offsets: Counter = Counter()
    for row in rows:
        sample = generate_item("test", int(row["id"].rsplit("-", 1)[1]))
        item, timeline = sample.item, sample.timeline
        if item.category not in FAMILIES:
            continue
        steps = steps_of(row["reasoning"])
        counts = stats[item.category]
        counts["answers"] += 1
        counts["answers right"] += row["extracted"] == item.answer
        screens = [read for read in map(read_screen_step, steps) if read]
        counts["screen steps"] += len(screens)
        for t, named in screens:
            shown = scene_at(timeline, t)
            counts["screen steps right at their time"] += (shown.label if shown else None) == named
            labels = [s.label for s in timeline.scenes]
            if shown is not None and named != shown.label and named in labels:
                offsets[labels.index(named) - timeline.scenes.index(shown)] += 1
        if item.category == "cross_modal_counting":
            beeps = [s.start for s in sounds_of(timeline, "beep")]
            listed = [float(t) for t in re.findall(r"(\d+\.\d) s", steps[0])] if steps[0].startswith("Beeps") else None
            counts["beep list exact"] += listed == beeps
            continue
        kind = re.search(r"when the (.+) played|after the (.+) played", item.question).groups()
        (sound,) = sounds_of(timeline, kind[0] or kind[1])
        counts["first screen step at the sound's start"] += bool(screens) and screens[0][0] == sound.start
        if item.category == "temporal_order":
            counts["shape order list exact"] += steps[0] == shape_order_step(timeline)
    return stats, offsets


def main(path: str) -> None:
    stats, offsets = read([json.loads(line) for line in Path(path).read_text().splitlines()])
    for family, counts in sorted(stats.items()):
        print(family, dict(counts))
    print("wrong frame reads (alignment, temporal order, counting), named scene minus right scene:",
          dict(sorted(offsets.items())))


if __name__ == "__main__":
    main(sys.argv[1])
