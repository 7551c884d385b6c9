"""A small benchmark with two systems' predictions, whose scores are known by hand.

Items: 4 alignment (A-D), 4 counting, 4 glitch (YES, YES, NO, NO).
System "sft": alignment 2/4, counting 1/4 (one unparsed, one missing), glitch 3/4 -> 6/12.
System "pdpo": alignment 4/4, counting 3/4, glitch 3/4 -> 10/12, and it is right on
every item "sft" gets right, so the discordant pairs are 0 vs 4: McNemar p = 2/16.
"""

from __future__ import annotations

import json

import pytest

from salmonn_o1.data.schema import Item, Prediction

OPTIONS = ["a red square", "a blue circle", "a green triangle", "a yellow cross"]
GLITCH = "Is this video manipulated? Answer YES or NO."


def make_items() -> list[Item]:
    items = [Item(f"align-{i}", f"videos/align-{i}.mp4", "What was on screen when the high tone played?",
                  OPTIONS, "ABCD"[i], ["The high tone plays."], "cross_modal_alignment", "avr-synth")
             for i in range(4)]
    items += [Item(f"count-{i}", None, "How many beeps played while the red square was visible?",
                   ["0", "1", "2", "3"], "DCBA"[i], None, "cross_modal_counting", "avr-synth") for i in range(4)]
    items += [Item(f"glitch-{i}", None, GLITCH, [], answer, None, "glitch_detection", "avr-synth")
              for i, answer in enumerate(["YES", "YES", "NO", "NO"])]
    return items


SFT = [
    Prediction("align-0", reasoning="1. ... 2. The answer is A.", answer="The answer is A."),  # right
    Prediction("align-1", reasoning="The answer is B.", answer="**B. a blue circle**"),  # right
    Prediction("align-2", reasoning="The answer is A.", answer="a red square"),  # wrong
    Prediction("align-3", reasoning="The answer is C.", answer="(C)"),  # wrong
    Prediction("count-0", answer="The answer is 3."),  # right (3 is D)
    Prediction("count-1", answer="hmm, hard to say"),  # unparsed
    Prediction("count-2", answer="A"),  # wrong
    # count-3 missing
    Prediction("glitch-0", answer="YES"),  # TP
    Prediction("glitch-1", answer="NO"),  # FN
    Prediction("glitch-2", answer="No, the video is not manipulated."),  # TN
    Prediction("glitch-3", answer="So the answer is NO."),  # TN
    Prediction("not-an-item", answer="A"),
]
PDPO = [
    Prediction("align-0", answer="A"),
    Prediction("align-1", answer="B"),
    Prediction("align-2", answer="C"),
    Prediction("align-3", answer="D"),
    Prediction("count-0", answer="D"),
    Prediction("count-1", answer="C"),
    Prediction("count-2", answer="B"),
    Prediction("count-3", error="decode failed"),
    Prediction("glitch-0", answer="YES"),
    Prediction("glitch-1", answer="NO"),
    Prediction("glitch-2", answer="NO"),
    Prediction("glitch-3", answer="NO"),
]


@pytest.fixture()
def items() -> list[Item]:
    return make_items()


@pytest.fixture()
def sft() -> dict[str, Prediction]:
    return {p.id: p for p in SFT}


@pytest.fixture()
def pdpo() -> dict[str, Prediction]:
    return {p.id: p for p in PDPO}


def _write_jsonl(path, records) -> str:
    """Records (dicts, or raw strings written as they are) one per line; returns the path."""
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write((record if isinstance(record, str) else json.dumps(record)) + "\n")
    return str(path)


@pytest.fixture()
def write_jsonl():
    return _write_jsonl


@pytest.fixture()
def files(tmp_path):
    """items.jsonl, sft.jsonl, pdpo.jsonl written the way any model would write them."""
    return {
        "items": _write_jsonl(tmp_path / "items.jsonl", [it.to_dict() for it in make_items()]),
        "sft": _write_jsonl(tmp_path / "sft.jsonl", [p.to_dict() for p in SFT]),
        "pdpo": _write_jsonl(tmp_path / "pdpo.jsonl", [p.to_dict() for p in PDPO]),
    }
