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
