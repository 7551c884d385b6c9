"""Option-letter items (the curriculum source's `task: options`): the look-up every AVR-Synth answer ends with, alone."""

from __future__ import annotations

from collections import Counter

import pytest

from salmonn_o1.data.synthetic.options import option_item
from salmonn_o1.errors import RecipeError
from salmonn_o1_mini.curriculum import CurriculumSource


def test_the_answer_letter_names_the_asked_entity_and_the_step_says_so():
    for index in range(200):
        item = option_item("train", index)
        asked = item.question.removeprefix("Which option is ").removesuffix("?").removeprefix("the ")
        chosen = item.options["ABCD".index(item.answer)].removeprefix("a ").removeprefix("the ")
        assert chosen == asked, item
        assert item.steps[0].lower() == f"{'the ' if not asked.isdigit() else ''}{asked} is option {item.answer}.".lower()
        assert len(set(item.options)) == 4 and item.video is None
    assert option_item("train", 7) == option_item("train", 7)
    assert option_item("train", 7) != option_item("dev", 7)


def test_shape_distractors_share_a_colour_or_a_shape_and_letters_are_balanced():
    shapes = [item for item in map(lambda i: option_item("train", i), range(300)) if item.extras["kind"] == "shape"]
    assert 120 < len(shapes) < 240
    for item in shapes:
        colour, shape = item.options["ABCD".index(item.answer)].split()[1:]
        near = [o for o in item.options if (o.split()[1] == colour) != (o.split()[2] == shape)]
        assert len(near) == 2, item.options
    letters = Counter(option_item("train", i).answer for i in range(400))
    assert min(letters.values()) > 60, letters


def test_counts_are_listed_in_order_as_the_counting_family_lists_them():
    counts = [item for item in map(lambda i: option_item("train", i), range(100)) if item.extras["kind"] == "count"]
    assert counts and all(item.options == ["0", "1", "2", "3"] for item in counts)


def test_an_options_source_has_no_media_and_refuses_families(tokenizer, tiny_config):
    from salmonn_o1.processor import SalmonnO1Processor

    processor = SalmonnO1Processor(tokenizer, tiny_config)
    source = CurriculumSource(processor, split="train", task="options", first_index=10, frame_size=32)
    assert source.item(0) == option_item("train", 10) and source.media(0) is None
    with pytest.raises(RecipeError, match="options"):
        CurriculumSource(processor, split="train", task="options", families=["visual_only"], frame_size=32)
    with pytest.raises(RecipeError, match="task must be"):
        CurriculumSource(processor, split="train", task="letters", frame_size=32)
