"""Per-row seeded sampling: a row's samples (both turns) depend on its seed only, not on the batch it is in.

pDPO's stages batch the paths of many questions and seed each by question and path; the same seed
must give the same path whatever the batch size, its neighbours, or which rows finished first.
"""

import pytest
import torch

from salmonn_o1.decoding import Decoder
from salmonn_o1.generation import SamplingConfig, pick_next
from salmonn_o1.pdpo.costs import Cost
from salmonn_o1.prompts import format_question

from clips import colour_clip

SAMPLING = SamplingConfig(max_new_tokens=12, do_sample=True, temperature=1.5, top_p=0.95)


def rows_and_media(processor, decoder):
    one = processor.media_features(colour_clip(2.0))
    other = processor.media_features(colour_clip(3.0, colour=(0, 0, 255)))
    features = [one, one, other, None, one]
    questions = ["What colour?", "Which colour first?", "Any sound?", "Red or blue?", "What colour?"]
    rows = [processor.encode(format_question(q, ["red", "blue"]), f).input_ids for q, f in zip(questions, features)]
    return rows, decoder.encode_media(features)


def two_turns(decoder, rows, media, seeds):
    first = decoder.generate(rows, media, SAMPLING, row_seeds=seeds)
    second = decoder.answer_turn(first, SamplingConfig(max_new_tokens=6, do_sample=True, temperature=1.5))
    return [(a, b) for a, b in zip(first.tokens, second.tokens)]


@pytest.mark.parametrize("drop", [True, False])
def test_a_rows_samples_do_not_depend_on_its_batch(model, tokenizer, processor, drop):
    ids = Decoder.from_tokenizer(model, tokenizer).ids
    decoder = Decoder(model, ids, min_shared_prefix=4, drop_finished=drop)
    rows, media = rows_and_media(processor, decoder)
    seeds = [11, 12, 13, 14, 15]
    batched = two_turns(decoder, rows, media, seeds)
    alone = [two_turns(decoder, [row], [m], [s])[0] for row, m, s in zip(rows, media, seeds)]
    assert batched == alone
    # In a different order and batch split, every row still gets its own samples.
    order = [4, 2, 0, 3, 1]
    shuffled = two_turns(decoder, [rows[i] for i in order[:3]], [media[i] for i in order[:3]],
                         [seeds[i] for i in order[:3]])
    assert shuffled == [batched[i] for i in order[:3]]
    # Rows 0 and 4 are the same question: different seeds sample different paths.
    assert batched[0] != batched[4]


def test_one_seed_per_row_is_checked(model, tokenizer, processor):
    decoder = Decoder.from_tokenizer(model, tokenizer)
    rows, media = rows_and_media(processor, decoder)
    with pytest.raises(ValueError, match="2 row generators for 5 rows"):
        decoder.generate(rows, media, SAMPLING, row_seeds=[1, 2])


def test_pick_next_draws_each_row_from_its_own_stream():
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    sampling = SamplingConfig(do_sample=True)
    streams = [torch.Generator().manual_seed(s) for s in (1, 2, 3)]
    together = pick_next(logits, sampling, streams)
    apart = [int(pick_next(logits[j:j + 1], sampling, [torch.Generator().manual_seed(s)]))
             for j, s in enumerate((1, 2, 3))]
    assert together.tolist() == apart


def test_cost_split_adds_up_and_follows_the_weights():
    cost = Cost(generated_tokens=101, forward_passes=7, forward_positions=1000, prefill_positions=333)
    parts = cost.split([1, 2, 3])
    for name in ("generated_tokens", "forward_passes", "forward_positions", "prefill_positions"):
        assert sum(getattr(p, name) for p in parts) == getattr(cost, name)
    assert [p.forward_positions for p in parts] == [167, 333, 500]
    assert parts[0].generated_tokens <= parts[1].generated_tokens <= parts[2].generated_tokens
    with pytest.raises(ValueError):
        cost.split([0, 0])
