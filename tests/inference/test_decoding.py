"""The Decoder: distinct media encoded once, the answer turn over the cache equal to a from-scratch
prefill, and teacher-forced tail logits equal to a full forward pass."""

import pytest
import torch

from salmonn_o1.decoding import Decoder, ProtocolIds
from salmonn_o1.generation import SamplingConfig
from salmonn_o1.processor import SalmonnO1Processor
from salmonn_o1.prompts import format_question

from clips import colour_clip


@pytest.fixture()
def setup(tiny_model, tiny_config, tokenizer):
    model = tiny_model.double()  # float64: a random model's near-ties must not flip greedy choices
    processor = SalmonnO1Processor(tokenizer, tiny_config)
    return Decoder.from_tokenizer(model, tokenizer), processor


def test_distinct_media_is_encoded_once(setup):
    decoder, processor = setup
    clip = processor.media_features(colour_clip())
    media = decoder.encode_media([clip, None, clip])
    assert decoder.encoder_calls == 1 and media[0] is media[2] and media[1] is None


def test_the_answer_turn_over_the_cache_equals_a_prefill_from_scratch(setup):
    decoder, processor = setup
    features = [processor.media_features(colour_clip(2.0)), None, processor.media_features(colour_clip(3.5))]
    rows = [processor.encode(format_question(q, ["red", "blue"]), f).input_ids
            for q, f in zip(("What colour?", "Any media?", "Which colour shows first, then?"), features)]
    first = decoder.generate(rows, decoder.encode_media(features), SamplingConfig(max_new_tokens=5))
    cached = decoder.answer_turn(first, SamplingConfig(max_new_tokens=4))
    scratch = decoder.answer_turn_from_scratch(rows, first, features, SamplingConfig(max_new_tokens=4))
    assert cached.tokens == scratch.tokens
    assert decoder.encoder_calls == 4  # the from-scratch turn encodes the two clips again


def test_tail_logits_are_the_last_positions_of_a_full_forward(setup):
    decoder, _ = setup
    rows = [[5, 6, 7, 8, 9], [10, 11]]
    tail = decoder.tail_logits(rows, [None, None], keep=2)
    with torch.no_grad():
        for row, logits in zip(rows, tail):
            full = decoder.model(input_ids=torch.tensor([row]), attention_mask=torch.ones(1, len(row))).logits[0]
            torch.testing.assert_close(logits, full[-2:], rtol=1e-9, atol=1e-9)


def test_a_decoder_without_a_tokenizer_only_scores():
    decoder = Decoder(torch.nn.Linear(1, 1), ProtocolIds(pad_id=0))
    with pytest.raises(ValueError, match="stop ids"):
        decoder.generate([[1]], [None], SamplingConfig())
