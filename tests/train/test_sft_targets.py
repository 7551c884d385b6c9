"""The SFT targets: two turns like the released model is used; loss only on assistant tokens.
The sources: items files and recipe-named components behind one small protocol."""

from __future__ import annotations

import pytest

from salmonn_o1.chat import IGNORE_INDEX
from salmonn_o1.data.synthetic import generate_item, render_media
from salmonn_o1.data.synthetic.sft_source import SynthSource
from salmonn_o1.errors import RecipeError
from salmonn_o1.processor import SalmonnO1Processor
from salmonn_o1.prompts import FINAL_ANSWER_QUESTION
from salmonn_o1.train.recipe import DataRecipe, DataSource
from salmonn_o1.train.sft_data import STEPS_TARGET, ItemSource, SFTExamples, open_source, sft_conversation

SYNTH = "salmonn_o1.data.synthetic.sft_source.SynthSource"


def test_reasoning_and_direct_conversations():
    item = generate_item("train", 5).item
    turns = sft_conversation(item, reasoning=True)
    assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant"]
    assert turns[1]["content"].startswith("1. ") and f"The answer is {item.answer}." in turns[1]["content"]
    assert turns[2]["content"] == FINAL_ANSWER_QUESTION
    assert turns[3]["content"] == f"The answer is {item.answer}."
    direct = sft_conversation(item, reasoning=False)
    assert [t["role"] for t in direct] == ["user", "assistant"] and direct[1]["content"] == item.answer
    item.steps = None
    assert len(sft_conversation(item, reasoning=True)) == 2  # no steps: trains the direct answer


def test_label_mask_covers_exactly_the_assistant_tokens(tokenizer, tiny_config):
    processor = SalmonnO1Processor(tokenizer, tiny_config)
    sample = generate_item("train", 3)
    features = processor.media_features(render_media(sample, size=32))
    turns = sft_conversation(sample.item, reasoning=True)
    encoded = processor.encode(turns, features, add_generation_prompt=False)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    ids, labels = encoded.input_ids, encoded.labels
    # contiguous labelled runs, each must be one assistant turn + <|im_end|>
    runs, current = [], []
    for token, label in zip(ids, labels):
        if label == IGNORE_INDEX:
            if current:
                runs.append(current)
                current = []
        else:
            assert label == token
            current.append(token)
    if current:
        runs.append(current)
    assert len(runs) == 2
    for run, turn in zip(runs, (turns[1], turns[3])):
        assert run[-1] == im_end
        assert tokenizer.decode(run[:-1]) == turn["content"]
    media_id = tokenizer.convert_tokens_to_ids("<image>")
    assert all(label == IGNORE_INDEX for token, label in zip(ids, labels) if token == media_id)
    labelled = sum(label != IGNORE_INDEX for label in labels)
    assert labelled == sum(len(r) for r in runs) < len(ids) // 2


def test_a_steps_target_item_is_one_turn_of_numbered_steps():
    item = generate_item("train", 5).item
    item.extras[STEPS_TARGET] = True
    turns = sft_conversation(item, reasoning=True)
    assert [t["role"] for t in turns] == ["user", "assistant"] and turns[0]["content"] == item.question
    assert turns[1]["content"] == "\n".join(f"{i}. {s}<end_of_step>" for i, s in enumerate(item.steps, start=1))


def test_a_recipe_source_is_an_items_file_or_a_component_built_with_the_processor(tokenizer, tiny_config, synth_files):
    processor = SalmonnO1Processor(tokenizer, tiny_config)
    items_path, items = synth_files
    from_file = open_source(DataSource(path=str(items_path)), processor)
    assert isinstance(from_file, ItemSource) and from_file.size == len(items) and from_file.name == str(items_path)
    assert from_file.item(2) == items[2] and from_file.media(2).num_frames > 0
    spec = DataSource(component={"_component_": SYNTH, "split": "dev", "first_index": 4, "frame_size": 32})
    synth = open_source(spec, processor)
    assert isinstance(synth, SynthSource) and synth.size is None and synth.name == "avr-synth:dev"
    assert synth.item(1) == generate_item("dev", 5).item
    rendered = processor.media_features(render_media(generate_item("dev", 5), fps=tiny_config.frames_per_second, size=32))
    assert (synth.media(1).pixel_values == rendered.pixel_values).all()
    for bad, message in ((DataSource(), "exactly one of path or component"),
                         (DataSource(path=str(items_path), component={"_component_": SYNTH, "split": "train"}),
                          "exactly one"),
                         (DataSource(component={"_component_": SYNTH, "split": "train"}, weight=0), "weight"),
                         (DataSource(component={"_component_": SYNTH, "split": "valid"}), "unknown split"),
                         (DataSource(component={"_component_": "salmonn_o1.prompts.OPTION_LETTERS"}), "cannot build"),
                         (DataSource(component={"_component_": "collections.Counter"}), "not an item source")):
        with pytest.raises(RecipeError, match=message):
            open_source(bad, processor)


def test_the_plan_draws_sources_by_weight_and_shuffles_files_per_pass(tokenizer, tiny_config, synth_files):
    processor = SalmonnO1Processor(tokenizer, tiny_config)
    items_path, items = synth_files
    recipe = DataRecipe(sources=[DataSource(path=str(items_path), weight=3.0),
                                 DataSource(component={"_component_": SYNTH, "split": "train"})], direct_fraction=0.5)
    examples = SFTExamples(recipe, processor, total=40, seed=1)
    again = SFTExamples(recipe, processor, total=40, seed=1)
    assert examples.slots == again.slots  # fixed up front by the seed: a resumed run sees the same data
    from_file = [slot.index for slot in examples.slots if slot.source == 0]
    for start in range(0, len(from_file) - len(items) + 1, len(items)):  # every item once per pass
        assert sorted(from_file[start:start + len(items)]) == list(range(len(items)))
    streamed = [slot.index for slot in examples.slots if slot.source == 1]
    assert streamed == list(range(len(streamed)))  # an unbounded source is read in order
    assert 20 < len(from_file) < 40 and {slot.reasoning for slot in examples.slots} == {True, False}


def test_a_source_may_mask_labels_of_the_reasoning_examples(tokenizer, tiny_config):
    class LastTokenOnly(SynthSource):
        def mask_labels(self, input_ids, labels, reasoning):
            if not reasoning:
                return labels
            last = max(i for i, label in enumerate(labels) if label != IGNORE_INDEX)
            return [label if i == last else IGNORE_INDEX for i, label in enumerate(labels)]

    processor = SalmonnO1Processor(tokenizer, tiny_config)
    examples = SFTExamples(DataRecipe(sources=[DataSource(component={"_component_": SYNTH, "split": "train"})],
                                      direct_fraction=0.5), processor, total=6, seed=0)
    examples.sources[0] = LastTokenOnly(processor, split="train", frame_size=32)
    for position, slot in enumerate(examples.slots):
        labelled = sum(label != IGNORE_INDEX for label in examples[position].labels)
        assert (labelled == 1) == slot.reasoning
