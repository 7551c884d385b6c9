"""The miniature model's curriculum source (`salmonn_o1_mini.curriculum.CurriculumSource`): the
text, describe and options tasks, families, first_steps, loss_last_steps and the look-up steps,
each pinned on the examples SFT builds from it."""

from __future__ import annotations

import pytest

from salmonn_o1.chat import IGNORE_INDEX
from salmonn_o1.data.synthetic import generate_item, render_media
from salmonn_o1.errors import RecipeError
from salmonn_o1.processor import SalmonnO1Processor
from salmonn_o1.train.recipe import DataRecipe, DataSource
from salmonn_o1.train.sft_data import STEPS_TARGET, SFTExamples, sft_conversation
from salmonn_o1_mini.curriculum import CurriculumSource

CURRICULUM = "salmonn_o1_mini.curriculum.CurriculumSource"


def curriculum(**kwargs) -> DataSource:
    """A recipe's data source naming the curriculum component (train split unless given)."""
    return DataSource(component={"_component_": CURRICULUM, "split": "train", **kwargs})


@pytest.fixture()
def processor(tokenizer, tiny_config):
    return SalmonnO1Processor(tokenizer, tiny_config)


def test_the_text_task_asks_the_question_about_the_description_without_media(processor, tiny_config):
    from salmonn_o1.data.synthetic.describe import describe_steps, text_item

    source = CurriculumSource(processor, split="train", task="text", first_index=7, frame_size=32)
    item, original = source.item(0), generate_item("train", 7)
    assert source.media(0) is None
    assert describe_steps(original.timeline)[0] in item.question and item.question.endswith(original.item.question)
    assert (item.options, item.answer, item.steps) == (original.item.options, original.item.answer, original.item.steps)
    assert item == text_item("train", 7)
    encoded = processor.encode(sft_conversation(item, reasoning=True), None, add_generation_prompt=False)
    assert tiny_config.media_token_id not in encoded.input_ids


def test_curriculum_sources_pick_families_and_truncate_the_target(processor):
    source = CurriculumSource(processor, split="train", task="text", first_index=59,  # not a multiple of the 6 families
                              families=["temporal_order", "cross_modal_counting"], first_steps=1, frame_size=32)
    items = [source.item(i) for i in range(6)]
    assert [it.category for it in items] == ["cross_modal_counting", "temporal_order"] * 3
    assert len({it.id for it in items}) == 6 and all(it.extras["index"] >= 60 for it in items)
    for item in items:
        full = generate_item("train", item.extras["index"]).item
        assert item.steps == full.steps[:1]
        turns = sft_conversation(item, reasoning=True)
        # a prefix of the solution: one turn of numbered steps, no answer step and no answer turn
        assert [t["role"] for t in turns] == ["user", "assistant"]
        assert turns[1]["content"] == f"1. {full.steps[0]}<end_of_step>"
    for bad in (dict(families=["juggling"]), dict(families=[]), dict(first_steps=-1)):
        with pytest.raises(RecipeError):
            CurriculumSource(processor, split="train", frame_size=32, **bad)


def test_loss_last_steps_keeps_the_reasoning_as_context_and_learns_only_its_conclusion(tokenizer, processor):
    spec = curriculum(task="text", families=["temporal_order"], loss_last_steps=2)
    examples = SFTExamples(DataRecipe(sources=[spec]), processor, total=3, seed=0)
    full = SFTExamples(DataRecipe(sources=[curriculum(task="text", families=["temporal_order"])]),
                       processor, total=3, seed=0)
    for position in range(3):
        masked, plain = examples[position], full[position]
        item = examples.sources[0].item(examples.slots[position].index)
        assert masked.input_ids == plain.input_ids  # the earlier steps are still in the input
        learnt = tokenizer.decode([t for t, label in zip(masked.input_ids, masked.labels) if label != IGNORE_INDEX])
        last, conclusion = len(item.steps), f"The answer is {item.answer}."
        assert learnt.startswith(f"\n{last}. {item.steps[-1]}<end_of_step>\n{last + 1}. {conclusion}")
        assert learnt.endswith(f"{conclusion}<|im_end|>")  # the answer turn still carries the loss
        assert item.steps[0] not in learnt
        assert sum(label != IGNORE_INDEX for label in masked.labels) < sum(label != IGNORE_INDEX for label in plain.labels)


def test_the_lookup_step_format_rewrites_only_the_cross_modal_targets(processor):
    gold = CurriculumSource(processor, split="train", frame_size=32)
    lookup = CurriculumSource(processor, split="train", step_format="lookup", frame_size=32)
    for i in range(12):
        plain, rewritten = gold.item(i), lookup.item(i)
        if plain.category in ("cross_modal_alignment", "cross_modal_counting", "temporal_order"):
            assert rewritten.steps == plain.extras["lookup_steps"] != plain.steps
        else:
            assert rewritten.steps == plain.steps
        assert (rewritten.answer, rewritten.options) == (plain.answer, plain.options)
    with pytest.raises(RecipeError, match="step_format"):
        CurriculumSource(processor, split="train", step_format="lookups", frame_size=32)


def test_the_checks_step_format_rewrites_counting_and_glitch_and_keeps_the_other_look_ups(processor):
    gold = CurriculumSource(processor, split="train", frame_size=32)
    checks = CurriculumSource(processor, split="train", step_format="checks", frame_size=32)
    families = set()
    for i in range(24):
        plain, rewritten = gold.item(i), checks.item(i)
        families.add(plain.category)
        if plain.category in ("cross_modal_counting", "glitch_detection"):
            assert rewritten.steps == plain.extras["check_steps"] != plain.steps
        elif plain.category in ("cross_modal_alignment", "temporal_order"):
            assert rewritten.steps == plain.extras["lookup_steps"]
        else:
            assert rewritten.steps == plain.steps
        assert (rewritten.answer, rewritten.options) == (plain.answer, plain.options)
    assert {"cross_modal_counting", "glitch_detection", "cross_modal_alignment"} <= families


def test_a_lookup_example_targets_the_frame_at_the_sound_then_the_letter(processor):
    """recipes/mini-lookup.yaml's fifth clip (a cross-modal alignment question), word for word."""
    item = CurriculumSource(processor, split="train", first_index=650000, step_format="lookup").item(4)
    assert (item.id, item.category) == ("avr-train-650004", "cross_modal_alignment")
    turns = sft_conversation(item, reasoning=True)
    assert turns[0]["content"].startswith("What was on screen when the low tone played? Choose from:\n"
                                          "A. a blue triangle\nB. a green cross\nC. a purple cross\nD. a purple circle\n")
    assert turns[1]["content"] == ("1. The low tone plays from 8.5 s to 9.5 s.<end_of_step>\n"
                                   "2. At 8.5 s the screen shows the purple cross.<end_of_step>\n"
                                   "3. The purple cross is option C.<end_of_step>\n"
                                   "4. The answer is C.<end_of_step>")
    assert turns[3]["content"] == "The answer is C."


def test_an_options_example_is_the_letter_look_up_alone_without_media(tokenizer, processor):
    examples = SFTExamples(DataRecipe(sources=[curriculum(task="options")]), processor, total=8, seed=0)
    position = next(p for p, slot in enumerate(examples.slots) if slot.index == 3)
    sample = examples[position]
    assert sample.media is None
    learnt = tokenizer.decode([t for t, label in zip(sample.input_ids, sample.labels) if label != IGNORE_INDEX])
    assert learnt == ("1. The blue circle is option B.<end_of_step>\n2. The answer is B.<end_of_step><|im_end|>"
                      "The answer is B.<|im_end|>")
    prompt = tokenizer.decode(sample.input_ids)
    assert "Which option is the blue circle? Choose from:\nA. a red cross\nB. a blue circle\n" in prompt


def test_a_describe_example_is_one_turn_of_the_timeline_on_the_rendered_clip(processor, tiny_config):
    source = CurriculumSource(processor, split="train", task="describe", first_index=500000, frame_size=32)
    item = source.item(0)
    assert item.extras[STEPS_TARGET] and item.extras["task"] == "describe"
    turns = sft_conversation(item, reasoning=True)
    assert [t["role"] for t in turns] == ["user", "assistant"]
    assert turns[1]["content"].startswith("1. The purple triangle is visible from 0.0 s to 1.5 s.<end_of_step>\n"
                                          "2. The low tone plays from 0.0 s to 1.0 s.<end_of_step>\n")
    rendered = processor.media_features(render_media(generate_item("train", 500000),
                                                     fps=tiny_config.frames_per_second, size=32))
    assert (source.media(0).pixel_values == rendered.pixel_values).all()
    assert (source.media(0).input_features == rendered.input_features).all()



def test_glitch_kinds_alternate_the_planted_kinds_of_glitch_clips_only(processor):
    source = CurriculumSource(processor, split="train", first_index=910000, glitch_kinds=["none", "early_sound"],
                              step_format="checks", frame_size=32)
    items = [source.item(i) for i in range(8)]
    assert [it.extras["glitch"] for it in items] == [None, "early_sound"] * 4
    assert [it.answer for it in items] == ["NO", "YES"] * 4
    assert all(it.category == "glitch_detection" and it.extras["index"] >= 910000 for it in items)
    indices = [it.extras["index"] for it in items]
    assert len(set(indices)) == 8 and indices[0::2] == sorted(indices[0::2]) and indices[1::2] == sorted(indices[1::2])
    # the same index gives the same clip whatever was asked before (a fresh source, items in another order)
    again = CurriculumSource(processor, split="train", first_index=910000, glitch_kinds=["none", "early_sound"],
                             step_format="checks", frame_size=32)
    assert [again.item(i).id for i in reversed(range(8))] == [it.id for it in reversed(items)]
    for bad in (dict(glitch_kinds=["wobble"]), dict(glitch_kinds=[]),
                dict(glitch_kinds=["none"], families=["temporal_order"])):
        with pytest.raises(RecipeError, match="glitch_kinds"):
            CurriculumSource(processor, split="train", frame_size=32, **bad)
