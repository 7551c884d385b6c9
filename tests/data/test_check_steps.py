"""The check step format of counting and glitch detection (the curriculum source's `step_format: checks`).

Each looked-up fact must be what the clip's timeline shows, the running count must count the
asked shape's beeps, and the conclusion must follow from the steps alone.
"""

from __future__ import annotations

import re

import pytest

from salmonn_o1.data.synthetic import generate_item
from salmonn_o1.data.synthetic.questions import CHECK_STEPS, THUD_LOOKBACK
from salmonn_o1.data.synthetic.timeline import find_anomalies, scene_at, sounds_of
from salmonn_o1.prompts import OPTION_LETTERS

READ = re.compile(r"At (\d+\.\d) s the screen shows (?:the (\w+ \w+)|nothing)(?:: that makes (\d+))?\.")


@pytest.fixture(scope="module")
def samples():
    return [generate_item("dev", i) for i in range(400)]


def of(samples, family):
    found = [s for s in samples if s.item.category == family]
    assert len(found) > 40
    return found


def test_only_counting_and_glitch_detection_carry_check_steps(samples):
    for sample in samples:
        has = CHECK_STEPS in sample.item.extras
        assert has == (sample.item.category in ("cross_modal_counting", "glitch_detection"))


def test_counting_reads_every_beep_and_keeps_a_running_count_of_the_asked_shape(samples):
    for sample in of(samples, "cross_modal_counting"):
        steps = sample.item.extras[CHECK_STEPS]
        asked = sample.item.question.removeprefix("How many beeps played while the ").removesuffix(" was visible?")
        reads = [READ.fullmatch(step) for step in steps[1:-2]]
        assert all(reads), sample.item.id
        beeps = sounds_of(sample.timeline, "beep")
        assert [float(m[1]) for m in reads] == [b.start for b in beeps]
        tally = 0
        for m in reads:
            scene = scene_at(sample.timeline, float(m[1]))
            assert m[2] == (scene.label if scene else None)
            if m[2] == asked:
                tally += 1
                assert int(m[3]) == tally  # each matching read adds one to the last count written
            else:
                assert m[3] is None
        answer = sample.item.options[OPTION_LETTERS.index(sample.item.answer)]
        assert int(answer) == tally and steps[-2].startswith(f"So {tally} beep")
        assert steps[-1] == f"{tally} is option {sample.item.answer}."


def test_glitch_checks_read_the_frames_at_the_thud_and_before_it(samples):
    seen = set()
    for sample in of(samples, "glitch_detection"):
        steps = sample.item.extras[CHECK_STEPS]
        (thud,) = sounds_of(sample.timeline, "thud")
        drop = next(s for s in sample.timeline.scenes if s.impact is not None)
        assert steps[0] == f"The thud plays at {thud.start:.1f} s."
        at_thud, before = READ.fullmatch(steps[1]), READ.fullmatch(steps[2])
        assert at_thud and float(at_thud[1]) == thud.start and at_thud[2] == drop.label
        kinds = {kind for kind, _, _ in find_anomalies(sample.timeline)}
        if before is None:  # the clip starts less than 1.5 s before the thud: only an early thud does that
            assert steps[2] == f"The clip starts less than {THUD_LOOKBACK} s before the thud." and "early_sound" in kinds
        else:
            shown = scene_at(sample.timeline, float(before[1]))
            assert float(before[1]) == thud.start - THUD_LOOKBACK and before[2] == (shown.label if shown else None)
            # the two reads alone tell an early thud: the falling shape is not yet on screen before it
            assert (before[2] != drop.label) == ("early_sound" in kinds)
        assert (f"The {drop.label} is not on the screen" in steps[3]) == ("early_sound" in kinds)
        assert steps[-1] == ("So the video is manipulated." if kinds else
                             "Nothing impossible happens, so the video is not manipulated.")
        assert (sample.item.answer == "YES") == bool(kinds)
        seen.add(sample.item.extras["glitch"])
    assert seen == {None, "teleport", "colour_change", "early_sound"}


def test_glitch_checks_name_the_jump_or_colour_change_at_its_time(samples):
    for sample in of(samples, "glitch_detection"):
        kinds = {kind: (scene, when) for kind, scene, when in find_anomalies(sample.timeline)}
        text = " ".join(sample.item.extras[CHECK_STEPS])
        for kind, phrase in (("teleport", "jumps to another place"), ("colour_change", "turns")):
            if kind in kinds:
                scene, when = kinds[kind]
                assert f"At {when:.1f} s the {scene.label} {phrase}" in text
