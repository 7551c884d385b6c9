"""Where a model's check-step answers go wrong: counting and glitch detection, step by step.

    .venv/bin/python src/salmonn_o1_mini/scripts/check_reads.py runs/results/checks-sft.jsonl [--split test]

Reads a prediction file of `python -m salmonn_o1_mini.results` (AVR-Synth items of --split) whose
model writes the check steps of `step_format: checks` (recipes/mini-checks.yaml) and counts, for
counting: the beep list exact, screen steps right at their own time, running counts that follow
from the model's own reads, the conclusion equal to the last count it wrote and to the true count;
for glitch detection, per kind of planted glitch: the thud's time right, the frame reads at the thud
and 1.5 s before it right at the times the model wrote, and verdicts that follow from the model's own
reads (the falling shape "not on the screen" 1.5 s before exactly when the two reads differ).
The numbers of salmonn_o1_mini/docs/notebook.md, "Checks", come from this script.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

from salmonn_o1.data.synthetic.dataset import generate_item
from salmonn_o1.data.synthetic.questions import THUD_LOOKBACK
from salmonn_o1.data.synthetic.timeline import scene_at, sounds_of
from salmonn_o1_mini.scripts.lookup_reads import steps_of

READ = re.compile(r"At (\d+\.\d) s the screen shows (?:the (\w+ \w+)|nothing)(?:: that makes (\d+))?\.")
THUD = re.compile(r"The thud plays at (\d+\.\d) s\.")


def shown_label(timeline, t: float) -> str | None:
    """The label of the shape on screen at t, None for an empty screen (as a read step writes it)."""
    scene = scene_at(timeline, t)
    return scene.label if scene else None


def counting(counts: Counter, steps: list[str], sample) -> None:
    timeline, item = sample.timeline, sample.item
    asked = item.question.removeprefix("How many beeps played while the ").removesuffix(" was visible?")
    beeps = [s.start for s in sounds_of(timeline, "beep")]
    listed = [float(t) for t in re.findall(r"(\d+\.\d) s", steps[0])] if steps[0].startswith("Beeps") else None
    counts["beep list exact"] += listed == beeps
    reads = [m for m in map(READ.fullmatch, steps) if m]
    tally, consistent = 0, True
    for m in reads:
        counts["screen steps"] += 1
        counts["screen steps right at their time"] += shown_label(timeline, float(m[1])) == m[2]
        if m[2] == asked:
            tally += 1
            consistent &= m[3] is not None and int(m[3]) == tally
        else:
            consistent &= m[3] is None
    counts["running counts follow the own reads"] += consistent
    concluded = re.search(r"So (\d+) beep", " ".join(steps))
    made = [int(m[3]) for m in reads if m[3]]
    if concluded:
        counts["conclusion = last count written"] += int(concluded[1]) == (made[-1] if made else 0)
        counts["conclusion = true count"] += int(concluded[1]) == sum(shown_label(timeline, t) == asked
                                                                       for t in beeps)


def glitch(counts: Counter, steps: list[str], sample) -> None:
    timeline = sample.timeline
    (thud,) = sounds_of(timeline, "thud")
    drop = next(s for s in timeline.scenes if s.impact is not None)
    said = THUD.fullmatch(steps[0]) if steps else None
    counts["thud time right"] += bool(said) and float(said[1]) == thud.start
    reads = [READ.fullmatch(step) for step in steps[1:3]]
    if len(reads) == 2 and all(reads):
        counts["both frames read"] += 1
        counts["thud frame names the falling shape"] += reads[0][2] == drop.label
        counts["reads right at their own time"] += sum(shown_label(timeline, float(m[1])) == m[2] for m in reads)
        counts["earlier frame 1.5 s before the written thud"] += \
            float(reads[1][1]) == float(reads[0][1]) - THUD_LOOKBACK
        differ = reads[0][2] != reads[1][2]
        counts["verdict follows the own reads"] += ("is not on the screen" in " ".join(steps)) == differ


def read(rows: list[dict], split: str) -> dict[str, Counter]:
    stats: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        sample = generate_item(split, int(row["id"].rsplit("-", 1)[1]))
        item = sample.item
        if item.category == "cross_modal_counting":
            group, check = item.category, counting
        elif item.category == "glitch_detection":
            group, check = f"glitch: {item.extras.get('glitch') or 'none'}", glitch
        else:
            continue
        counts = stats[group]
        counts["answers"] += 1
        counts["answers right"] += row.get("extracted") == item.answer
        check(counts, steps_of(row.get("reasoning")), sample)
    return stats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("predictions")
    parser.add_argument("--split", default="test")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in Path(args.predictions).read_text().splitlines() if line.strip()]
    for group, counts in sorted(read(rows, args.split).items()):
        print(group, dict(counts))


if __name__ == "__main__":
    main()
