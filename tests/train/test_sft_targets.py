"""The SFT targets: two turns like the released model is used; loss only on assistant tokens."""

from __future__ import annotations

from salmonn_o1.chat import IGNORE_INDEX
from salmonn_o1.data.synthetic import generate_item, render_media
from salmonn_o1.processor import SalmonnO1Processor
from salmonn_o1.prompts import FINAL_ANSWER_QUESTION
from salmonn_o1.train.sft_data import sft_conversation


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


def test_the_text_task_asks_the_question_about_the_description_without_media(tokenizer, tiny_config):
    from salmonn_o1.data.synthetic.describe import describe_steps, text_item
    from salmonn_o1.train.recipe import DataSource
    from salmonn_o1.train.sft_data import ItemSource

    processor = SalmonnO1Processor(tokenizer, tiny_config)
    source = ItemSource(DataSource(synthetic="train", task="text", first_index=7), processor, synthetic_size=32)
    item, original = source.item(0), generate_item("train", 7)
    assert source.media(0) is None
    assert describe_steps(original.timeline)[0] in item.question and item.question.endswith(original.item.question)
    assert (item.options, item.answer, item.steps) == (original.item.options, original.item.answer, original.item.steps)
    assert item == text_item("train", 7)
    encoded = processor.encode(sft_conversation(item, reasoning=True), None, add_generation_prompt=False)
    assert tiny_config.media_token_id not in encoded.input_ids


def test_curriculum_sources_pick_families_and_truncate_the_target(tokenizer, tiny_config):
    import pytest

    from salmonn_o1.errors import RecipeError
    from salmonn_o1.train.recipe import DataSource
    from salmonn_o1.train.sft_data import ItemSource

    processor = SalmonnO1Processor(tokenizer, tiny_config)
    spec = DataSource(synthetic="train", task="text", first_index=59,  # not a multiple of the 6 families
                      families=["temporal_order", "cross_modal_counting"], first_steps=1)
    source = ItemSource(spec, processor, synthetic_size=32)
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
            ItemSource(DataSource(synthetic="train", **bad), processor, synthetic_size=32)


def test_loss_last_steps_keeps_the_reasoning_as_context_and_learns_only_its_conclusion(tokenizer, tiny_config):
    from salmonn_o1.train.recipe import DataRecipe, DataSource
    from salmonn_o1.train.sft_data import SFTExamples

    processor = SalmonnO1Processor(tokenizer, tiny_config)
    spec = DataSource(synthetic="train", task="text", families=["temporal_order"], loss_last_steps=2)
    examples = SFTExamples(DataRecipe(sources=[spec]), processor, total=3, seed=0)
    full = SFTExamples(DataRecipe(sources=[DataSource(synthetic="train", task="text", families=["temporal_order"])]),
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


def test_option_letter_weight_adds_the_weighted_loss_of_exactly_the_option_letters(tokenizer, tiny_config, tiny_model):
    import torch

    from salmonn_o1.train.recipe import DataRecipe, DataSource
    from salmonn_o1.train.sft_data import SFTExamples, SFTObjective

    processor = SalmonnO1Processor(tokenizer, tiny_config)
    spec = DataSource(synthetic="train", task="text", families=["visual_only", "audio_only"])
    examples = SFTExamples(DataRecipe(sources=[spec]), processor, total=4, seed=0)
    plain, weighted = SFTObjective(processor), SFTObjective(processor, option_letter_weight=3.0)
    batch = plain.collate([examples[i] for i in range(4)])
    letters = weighted.option_letters(batch["input_ids"], batch["labels"])
    items = [examples.sources[0].item(examples.slots[i].index) for i in range(4)]
    for row, item in enumerate(items):  # one "is option X." per reasoning turn
        assert tokenizer.decode(batch["input_ids"][row][letters[row]]).strip() == item.answer
    tiny_model.eval()
    with torch.no_grad():
        base, _ = plain.loss(tiny_model, batch)
        total, logged = weighted.loss(tiny_model, batch)
        logits = tiny_model(**{k: v for k, v in batch.items() if k not in ("labels", "num_tokens")}).logits
    log_probs = torch.log_softmax(logits[:, :-1].float(), -1)
    shifted = letters[:, 1:]
    letter_loss = -log_probs[shifted].gather(-1, batch["labels"][:, 1:][shifted][:, None]).mean()
    assert abs(logged["loss"] - float(base)) < 1e-4  # the plain part is the model's own loss
    assert abs(float(total) - float(base) - 3.0 * float(letter_loss)) < 1e-4


def test_the_lookup_step_format_rewrites_only_the_cross_modal_targets(tokenizer, tiny_config):
    import pytest

    from salmonn_o1.errors import RecipeError
    from salmonn_o1.train.recipe import DataSource
    from salmonn_o1.train.sft_data import ItemSource

    processor = SalmonnO1Processor(tokenizer, tiny_config)
    gold = ItemSource(DataSource(synthetic="train"), processor, synthetic_size=32)
    lookup = ItemSource(DataSource(synthetic="train", step_format="lookup"), processor, synthetic_size=32)
    for i in range(12):
        plain, rewritten = gold.item(i), lookup.item(i)
        if plain.category in ("cross_modal_alignment", "cross_modal_counting", "temporal_order"):
            assert rewritten.steps == plain.extras["lookup_steps"] != plain.steps
        else:
            assert rewritten.steps == plain.steps
        assert (rewritten.answer, rewritten.options) == (plain.answer, plain.options)
    with pytest.raises(RecipeError, match="step_format"):
        ItemSource(DataSource(synthetic="train", step_format="lookups"), processor, synthetic_size=32)
