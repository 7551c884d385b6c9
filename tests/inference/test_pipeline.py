import pytest
import torch

from salmonn_o1.chat import follow_up_ids
from salmonn_o1.inference import Question, SalmonnO1Pipeline
from salmonn_o1.processor import SalmonnO1Processor
from salmonn_o1.prompts import FINAL_ANSWER_QUESTION, format_question

from clips import colour_clip

GREEDY = {"max_new_tokens": 6, "answer_max_new_tokens": 4}


@pytest.fixture()
def pipeline(tiny_model, tiny_config, tokenizer):
    return SalmonnO1Pipeline(tiny_model, SalmonnO1Processor(tokenizer, tiny_config))


def count_calls(module: torch.nn.Module) -> list[int]:
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_ask_returns_a_well_formed_result(pipeline):
    result = pipeline.ask(colour_clip(), "What colour is the screen?", ["red", "blue"], **GREEDY)
    assert isinstance(result.reasoning, str) and isinstance(result.answer_text, str)
    assert 1 <= result.tokens["reasoning"] <= 6 and 1 <= result.tokens["answer"] <= 4
    assert result.raw_text.startswith("Reasoning: ") and "\nAnswer: " in result.raw_text
    assert set(result.timings) == {"encode_s", "reasoning_s", "answer_s", "total_s"}
    assert result.tokens["prompt"] > 20


def test_second_turn_continues_the_first_with_the_generated_steps(pipeline, tiny_model):
    """Turn 2 from the cache == HF generate over [prompt, reasoning tokens, follow-up] from scratch."""
    clip = colour_clip()
    result = pipeline.ask(clip, "Which colour?", ["red", "blue"], max_new_tokens=5, answer_max_new_tokens=3)
    processor = pipeline.processor
    features = processor.media_features(clip)
    prompt = processor.encode(format_question("Which colour?", ["red", "blue"]), features)
    reasoning_ids = processor.tokenizer(result.reasoning, add_special_tokens=False)["input_ids"]
    ids = prompt.input_ids + reasoning_ids + follow_up_ids(processor.tokenizer, FINAL_ANSWER_QUESTION)
    batch = processor.collate([processor.encode(format_question("Which colour?", ["red", "blue"]), features)])
    full = torch.tensor([ids])
    new = tiny_model.generate(full, torch.ones_like(full), media=batch["media"], max_new_tokens=3, do_sample=False,
                              eos_token_id=pipeline.im_end_id, pad_token_id=pipeline.pad_id)
    expected = processor.tokenizer.decode([t for t in new[0].tolist() if t != pipeline.im_end_id]).strip()
    assert result.answer_text == expected


def test_batched_equals_sequential_under_greedy(pipeline):
    questions = [
        Question(colour_clip(2.0, (255, 0, 0), 440.0), "What colour?", ["red", "blue"]),
        Question(colour_clip(4.0, (0, 0, 255), 880.0), "Which tone plays?", ["low tone", "high tone", "beep"]),
        Question(None, "Is this a question without media?", None, reasoning=False),
    ]
    batched = pipeline.ask_batch(questions, **GREEDY)
    for question, together in zip(questions, batched):
        alone = pipeline.ask_batch([question], **GREEDY)[0]
        assert alone.reasoning == together.reasoning
        assert alone.answer_text == together.answer_text


def test_many_questions_about_one_video_encode_it_once(pipeline, tiny_model):
    vision_calls, audio_calls = count_calls(tiny_model.vision_tower), count_calls(tiny_model.audio_encoder)
    results = pipeline.ask_many(colour_clip(), [("What colour?", ["red", "blue"]), ("Which tone?", None),
                                                ("How many shapes?", ["1", "2", "3"])], **GREEDY)
    assert len(results) == 3
    assert vision_calls[0] == 1 and audio_calls[0] == 1 and pipeline.encoder_calls == 1


def test_the_answer_turn_does_not_rerun_the_encoders(pipeline, tiny_model):
    vision_calls, audio_calls = count_calls(tiny_model.vision_tower), count_calls(tiny_model.audio_encoder)
    result = pipeline.ask(colour_clip(), "What colour?", ["red", "blue"], **GREEDY)
    assert result.tokens["answer"] > 0
    assert vision_calls[0] == 1 and audio_calls[0] == 1


def test_sampling_is_seeded_and_returns_several_paths(pipeline):
    first = pipeline.sample(colour_clip(), "What colour?", ["red", "blue"], num_return_sequences=3,
                            temperature=1.5, seed=7, **GREEDY)
    again = pipeline.sample(colour_clip(), "What colour?", ["red", "blue"], num_return_sequences=3,
                            temperature=1.5, seed=7, **GREEDY)
    assert [r.reasoning for r in first] == [r.reasoning for r in again]
    assert len({r.reasoning for r in first}) > 1, "different paths for one question"


def test_streaming_receives_the_reasoning_text(pipeline):
    pieces: list[str] = []
    result = pipeline.ask(colour_clip(), "What colour?", ["red", "blue"], stream=pieces.append, **GREEDY)
    assert "".join(pieces).strip() == result.reasoning


def test_on_token_sees_every_row_of_a_batch(pipeline):
    """The per-row hook a server streams from: each row's turn-1 tokens, in order, whatever the batch."""
    questions = [Question(colour_clip(2.0), "What colour?", ["red", "blue"]),
                 Question(None, "Is this a question without media?", None, reasoning=False)]
    seen: dict[int, list[int]] = {0: [], 1: []}
    results = pipeline.ask_batch(questions, on_token=lambda row, token: seen[row].append(token), **GREEDY)
    for row, result in enumerate(results):
        assert len(seen[row]) == result.tokens["reasoning"] > 0
        text = pipeline.processor.tokenizer.decode([t for t in seen[row] if t not in pipeline.stop_ids])
        assert text.strip() == (result.reasoning if row == 0 else result.answer_text)
    with pytest.raises(ValueError, match="not both"):
        pipeline.ask_batch(questions[:1], stream=print, on_token=print, **GREEDY)
