"""The look-up step format of the cross-modal families (the curriculum source's `step_format: lookup`).

Each screen step must name what the clip's timeline shows at that time, and the conclusion must
follow from the steps alone, so a model that reads the frames right gets the answer right.
"""

from __future__ import annotations

import re

import pytest

from salmonn_o1.data.synthetic import generate_item
from salmonn_o1.data.synthetic.questions import LOOKUP_STEPS
from salmonn_o1.data.synthetic.timeline import scene_at, sounds_of
from salmonn_o1.prompts import OPTION_LETTERS

CROSS_MODAL = ("cross_modal_alignment", "cross_modal_counting", "temporal_order")
SCREEN = re.compile(r"At (\d+\.\d) s the screen shows (?:the (\w+ \w+)|nothing)\.")


@pytest.fixture(scope="module")
def samples():
    return [generate_item("dev", i) for i in range(300)]


def screen_steps(steps: list[str]) -> list[tuple[float, str | None]]:
    return [(float(m[1]), m[2]) for m in map(SCREEN.fullmatch, steps) if m]


def option_entity(item) -> str:
    return item.options[OPTION_LETTERS.index(item.answer)]


def test_only_the_cross_modal_families_carry_look_up_steps(samples):
    for sample in samples:
        assert (LOOKUP_STEPS in sample.item.extras) == (sample.item.category in CROSS_MODAL)


def test_every_screen_step_names_the_shape_on_screen_at_its_time(samples):
    checked = 0
    for sample in samples:
        for t, label in screen_steps(sample.item.extras.get(LOOKUP_STEPS, [])):
            scene = scene_at(sample.timeline, t)
            assert label == (scene.label if scene else None), (sample.item.id, t)
            checked += 1
    assert checked > 300


def test_alignment_reads_the_frame_at_the_sound_and_concludes_the_answer(samples):
    for sample in (s for s in samples if s.item.category == "cross_modal_alignment"):
        steps = sample.item.extras[LOOKUP_STEPS]
        ((t, label),) = screen_steps(steps)
        kind = sample.item.question.removeprefix("What was on screen when the ").removesuffix(" played?")
        (sound,) = sounds_of(sample.timeline, kind)
        assert t == sound.start and f"a {label}" == option_entity(sample.item)
        assert steps[-1] == f"The {label} is option {sample.item.answer}."


def test_temporal_order_looks_the_next_shape_up_in_the_listed_order(samples):
    for sample in (s for s in samples if s.item.category == "temporal_order"):
        order, _, screen, after, last = sample.item.extras[LOOKUP_STEPS]
        ((_, current),) = screen_steps([screen])
        listed = order.removeprefix("The shapes appear in this order: ").rstrip(".").split(", ")
        following = listed[listed.index(f"the {current}") + 1]
        assert after == f"After the {current}, {following} appears."
        assert f"a {following.removeprefix('the ')}" == option_entity(sample.item)


def test_counting_lists_every_beep_and_the_count_is_the_matching_screen_steps(samples):
    for sample in (s for s in samples if s.item.category == "cross_modal_counting"):
        steps = sample.item.extras[LOOKUP_STEPS]
        asked = sample.item.question.removeprefix("How many beeps played while the ").removesuffix(" was visible?")
        screens = screen_steps(steps)
        assert [t for t, _ in screens] == [s.start for s in sounds_of(sample.timeline, "beep")]
        assert sum(label == asked for _, label in screens) == int(option_entity(sample.item))
