"""The decoding path's savings change no result: a shared prefix prefilled once, finished rows out of
the batch, only the next token's logits computed and a cache written in place, all decode what
row-by-row decoding does."""

import pytest
import torch
from transformers.cache_utils import DynamicLayer

from salmonn_o1.decoding import Decoder, SharedPrefix
from salmonn_o1.generation import SamplingConfig
from salmonn_o1.kv_cache import GrowingLayer
from salmonn_o1.prompts import format_question

from clips import colour_clip

QUESTIONS = ("What colour?", "Which colour shows first, then, and why?", "Any sound?", "Is it red or blue, or both?")


def decoder(model, tokenizer, share: bool = True, drop: bool = True) -> Decoder:
    ids = Decoder.from_tokenizer(model, tokenizer).ids
    # 4: the tiny prompt's text before the media is 14 tokens, shared by rows of any media.
    return Decoder(model, ids, min_shared_prefix=4 if share else 10**9, drop_finished=drop)


def encode(processor, questions, features):
    return [processor.encode(format_question(q, ["red", "blue"]), f).input_ids for q, f in zip(questions, features)]


class Forwards:
    """Records the (rows, positions) of every model forward and the shape of its logits."""

    def __init__(self, model):
        self.inputs, self.logits = [], []
        self.handle = model.register_forward_hook(self.hook, with_kwargs=True)

    def hook(self, module, args, kwargs, output):
        self.inputs.append(tuple(kwargs["inputs_embeds"].shape[:2]))
        self.logits.append(tuple(output.logits.shape))

    def close(self):
        self.handle.remove()


def cases(processor):
    one = processor.media_features(colour_clip(2.0))
    other = processor.media_features(colour_clip(3.5, colour=(0, 0, 255)))
    return {
        "questions on one video": [one] * 4,
        "different media and a text-only row": [one, other, None, one],
    }


@pytest.mark.parametrize("case", ["questions on one video", "different media and a text-only row"])
def test_shared_prefix_decodes_as_each_row_alone(model, processor, tokenizer, case):
    features = cases(processor)[case]
    rows = encode(processor, QUESTIONS, features)
    assert len({len(r) for r in rows}) > 1  # suffixes of unequal length
    shared = decoder(model, tokenizer)
    media = shared.encode_media(features)
    groups = shared.shared_prefixes(rows, media)
    # The rows of each video share its prefix, the whole media included; a row alone shares nothing.
    assert [members for members, _ in groups] == ([[0, 1, 2, 3]] if case == "questions on one video" else [[0, 3]])
    assert groups[0][1].media.shape[0] == media[0].shape[0]

    sampling = SamplingConfig(max_new_tokens=6)
    batch = shared.generate(rows, media, sampling)
    alone = decoder(model, tokenizer, share=False)
    for i, row in enumerate(rows):
        assert alone.generate([row], [media[i]], sampling).tokens[0] == batch.tokens[i]

    tail = shared.tail_logits(rows, media, keep=3)
    for i, row in enumerate(rows):
        torch.testing.assert_close(tail[i], alone.tail_logits([row], [media[i]], keep=3)[0], rtol=1e-9, atol=1e-9)

    # The answer turn over the shared-prefix cache equals the release's from-scratch turn 2.
    cached = shared.answer_turn(batch, SamplingConfig(max_new_tokens=4))
    scratch = alone.answer_turn_from_scratch(rows, batch, features, SamplingConfig(max_new_tokens=4))
    assert cached.tokens == scratch.tokens


def test_the_shared_prefix_is_prefilled_once_and_only_next_token_logits_are_computed(model, processor, tokenizer):
    features = cases(processor)["questions on one video"]
    rows = encode(processor, QUESTIONS, features)
    shared = decoder(model, tokenizer)
    media = shared.encode_media(features)
    [(_, prefix)] = shared.shared_prefixes(rows, media)
    forwards = Forwards(model)
    try:
        result = shared.generate(rows, media, SamplingConfig(max_new_tokens=3))
    finally:
        forwards.close()
    longest_rest = max(len(r) for r in rows) - prefix.length
    assert forwards.inputs[:2] == [(1, prefix.length), (4, longest_rest)]
    assert len(forwards.inputs) == result.forward_passes
    assert prefix.length > features[0].token_count  # the whole media went through the prefill once
    assert all(rows_ == 4 and positions == 1 for rows_, positions in forwards.inputs[2:])
    assert all(shape[1] == 1 for shape in forwards.logits)  # logits_to_keep=1 everywhere
    assert result.positions == prefix.length + 4 * longest_rest + 4 * (result.forward_passes - 2)


def test_rows_too_short_or_too_different_are_prefilled_whole(model, processor, tokenizer):
    shared = decoder(model, tokenizer)
    assert shared.shared_prefixes([[5, 6, 7, 8, 9, 10]], [None]) == []  # one row: nothing to share
    assert shared.shared_prefixes([[5, 6, 7, 8, 9], [5, 6, 7, 1, 9]], [None, None]) == []  # 3 < 4
    # Identical rows keep one position each for their own first logits.
    assert SharedPrefix.of([[5, 6, 7], [5, 6, 7]], [None, None], None).length == 2


def stop_tokens_that_end_rows_at_different_steps(decoder_, rows, media):
    free = decoder_.generate(rows, media, SamplingConfig(max_new_tokens=10), stop_ids={-1})
    stops = {free.tokens[0][2], free.tokens[1][6]}
    ends = [next((k for k, t in enumerate(tokens) if t in stops), None) for tokens in free.tokens]
    assert len(set(ends)) > 1 and any(e is not None and e < 9 for e in ends), ends
    return stops


@pytest.mark.parametrize("share", [True, False])
def test_dropping_finished_rows_decodes_the_same_and_restores_every_row(model, processor, tokenizer, share):
    features = cases(processor)["different media and a text-only row"]
    rows = encode(processor, QUESTIONS, features)
    dropping, feeding = decoder(model, tokenizer, share=share), decoder(model, tokenizer, share=share, drop=False)
    media = dropping.encode_media(features)
    stops = stop_tokens_that_end_rows_at_different_steps(feeding, rows, media)

    sampling = SamplingConfig(max_new_tokens=10)
    dropped = dropping.generate(rows, media, sampling, stop_ids=stops)
    fed = feeding.generate(rows, media, sampling, stop_ids=stops)
    assert dropped.tokens == fed.tokens and dropped.finished == fed.finished
    assert dropped.positions < fed.positions  # the finished rows were not fed
    assert dropped.state.attention_mask.shape == fed.state.attention_mask.shape
    assert torch.equal(dropped.state.attention_mask, fed.state.attention_mask)

    # Turn 2 over the restored state: as a from-scratch prefill of prompt + turn 1 + follow-up.
    answer = SamplingConfig(max_new_tokens=5)
    cached = dropping.answer_turn(dropped, answer)
    scratch = feeding.answer_turn_from_scratch(rows, dropped, features, answer)
    assert cached.tokens == scratch.tokens


def test_seeded_sampling_over_a_shared_prefix_repeats(model, processor, tokenizer):
    features = cases(processor)["questions on one video"]
    rows = encode(processor, QUESTIONS, features) + encode(processor, QUESTIONS[:1], features)
    features = features + features[:1]
    shared = decoder(model, tokenizer)
    media = shared.encode_media(features)
    sampling = SamplingConfig(max_new_tokens=8, do_sample=True, temperature=1.5, seed=3)
    runs = [shared.generate(rows, media, sampling) for _ in range(2)]
    assert runs[0].tokens == runs[1].tokens
    assert runs[0].tokens[0] != runs[0].tokens[4]  # the same question twice: two different samples
    answers = [shared.answer_turn(run, sampling).tokens for run in runs]
    assert answers[0] == answers[1]


@pytest.mark.parametrize("grow", [1, 3, 256])
def test_the_growing_cache_layer_holds_what_a_concatenating_one_does(grow, monkeypatch):
    monkeypatch.setattr(GrowingLayer, "GROW", grow)
    ours, theirs = GrowingLayer(), DynamicLayer()
    torch.manual_seed(0)

    def step(length: int, batch: int):
        k, v = torch.randn(batch, 2, length, 4), torch.randn(batch, 2, length, 4)
        for a, b in zip(ours.update(k, v), theirs.update(k, v)):
            assert torch.equal(a, b)

    step(5, 1)
    ours.batch_repeat_interleave(3)
    theirs.batch_repeat_interleave(3)
    for length in (1, 1, 4, 1):
        step(length, 3)
    index = torch.tensor([0, 2])
    ours.batch_select_indices(index)
    theirs.batch_select_indices(index)
    step(1, 2)
    ours.crop(-2)
    theirs.crop(-2)
    step(2, 2)
    assert ours.get_seq_length() == theirs.get_seq_length() == 13
    assert torch.equal(ours.keys, theirs.keys) and torch.equal(ours.values, theirs.values)


def test_a_long_prompt_is_prefilled_in_pieces_with_the_same_result(model, tokenizer, processor, monkeypatch):
    """Over PREFILL_CHUNK_TOKENS positions the prompt goes through the cache in pieces (peak memory of a
    long video's prompt stays one piece's), and the decode equals a one-forward prefill."""
    from salmonn_o1 import generation

    features = cases(processor)["different media and a text-only row"]
    rows = encode(processor, QUESTIONS, features)
    sampling = SamplingConfig(max_new_tokens=6)
    plain = decoder(model, tokenizer, share=False)
    monkeypatch.setattr(generation, "PREFILL_CHUNK_TOKENS", 10**9)
    whole = plain.generate(rows, plain.encode_media(features), sampling)
    chunk = 16
    monkeypatch.setattr(generation, "PREFILL_CHUNK_TOKENS", chunk)
    forwards = Forwards(model)
    try:
        pieces = plain.generate(rows, plain.encode_media(features), sampling)
    finally:
        forwards.close()
    longest = max(len(r) for r in rows)
    assert longest > 2 * chunk
    prefill = [shape for shape in forwards.inputs if shape[1] > 1]
    assert [n for _, n in prefill] == [chunk] * (longest // chunk) + ([longest % chunk] if longest % chunk else [])
    assert pieces.tokens == whole.tokens
    for a, b in zip(whole.state.cache.layers, pieces.state.cache.layers):
        torch.testing.assert_close(a.keys, b.keys)
    assert plain.answer_turn(pieces, sampling).tokens == plain.answer_turn(whole, sampling).tokens


def test_several_videos_share_a_prefix_each_in_one_batch(model, processor, tokenizer):
    """Two questions about each of two videos and a text-only row (a server's batch): each video's
    prefix is prefilled once, both in one forward, and every row decodes as it does alone."""
    one, other = cases(processor)["different media and a text-only row"][:2]
    features = [one, other, None, other, one]
    questions = (*QUESTIONS, "Which came last?")
    rows = encode(processor, questions, features)
    shared = decoder(model, tokenizer)
    media = shared.encode_media(features)
    groups = shared.shared_prefixes(rows, media)
    assert [members for members, _ in groups] == [[0, 4], [1, 3]]
    forwards = Forwards(model)
    try:
        batch = shared.generate(rows, media, SamplingConfig(max_new_tokens=5))
    finally:
        forwards.close()
    longest_prefix = max(prefix.length for _, prefix in groups)
    assert forwards.inputs[0] == (2, longest_prefix)  # the two prefixes, one left-padded forward
    alone = decoder(model, tokenizer, share=False)
    for i, row in enumerate(rows):
        assert alone.generate([row], [media[i]], SamplingConfig(max_new_tokens=5)).tokens[0] == batch.tokens[i]
    tail = shared.tail_logits(rows, media, keep=2)
    for i, row in enumerate(rows):
        torch.testing.assert_close(tail[i], alone.tail_logits([row], [media[i]], keep=2)[0], rtol=1e-9, atol=1e-9)
    answer = SamplingConfig(max_new_tokens=4)
    assert shared.answer_turn(batch, answer).tokens == alone.answer_turn_from_scratch(rows, batch, features, answer).tokens


def test_repeated_rows_are_prefilled_once_and_decode_as_each_row_alone(model, processor, tokenizer):
    """pDPO's N completions of a branch: identical rows (several per video, one text-only) get their
    rest after the video's shared prefix prefilled once, as a second level, and sample as alone."""
    one = processor.media_features(colour_clip(2.0))
    other = processor.media_features(colour_clip(3.5, colour=(0, 0, 255)))
    features = [one, one, one, one, other, other, None, None, one]
    questions = [QUESTIONS[1], QUESTIONS[1], QUESTIONS[3], QUESTIONS[1], QUESTIONS[0], QUESTIONS[0],
                 QUESTIONS[2], QUESTIONS[2], QUESTIONS[3]]
    rows = encode(processor, questions, features)
    shared = decoder(model, tokenizer)
    media = shared.encode_media(features)
    first, unit_of_row = shared.repeated_rows(rows, media)
    assert first == [0, 2, 4, 6] and unit_of_row == [0, 0, 1, 0, 2, 2, 3, 3, 1]
    sampling = SamplingConfig(max_new_tokens=6, do_sample=True, temperature=1.5)
    seeds = list(range(20, 29))
    forwards = Forwards(model)
    try:
        batch = shared.generate(rows, media, sampling, row_seeds=seeds)
    finally:
        forwards.close()
    # Level 1: one prefix per media group with two rows or more (the video's, the other video's, text);
    # level 2: one row per distinct sequence; then each row's last position.
    assert forwards.inputs[1][0] == len(first) and forwards.inputs[2] == (len(rows), 1)
    prefill = sum(r * p for r, p in forwards.inputs if p > 1)
    alone = decoder(model, tokenizer, share=False)
    answer = SamplingConfig(max_new_tokens=4, do_sample=True, temperature=1.5)
    answers = shared.answer_turn(batch, answer).tokens  # over the two-level cache, each row's stream
    for i, row in enumerate(rows):
        first = alone.generate([row], [media[i]], sampling, row_seeds=[seeds[i]])
        assert first.tokens[0] == batch.tokens[i]
        assert alone.answer_turn(first, answer).tokens[0] == answers[i]
    # One level only would feed every row's whole rest after its group's prefix (left-padded batch).
    length = [len(row) for row in rows]
    for members, prefix in shared.shared_prefixes(rows, media):
        for i in members:
            length[i] -= prefix.length
    one_level = forwards.inputs[0][0] * forwards.inputs[0][1] + len(rows) * max(length)
    assert prefill < 0.7 * one_level, (prefill, one_level)
    assert batch.positions - prefill == len(rows) * (batch.forward_passes - 2)
    # Teacher forcing over the two levels: the same logits as each row alone.
    tail = shared.tail_logits(rows, media, keep=2)
    for i, row in enumerate(rows):
        torch.testing.assert_close(tail[i], alone.tail_logits([row], [media[i]], keep=2)[0], rtol=1e-9, atol=1e-9)


def test_a_pinned_prefix_is_prefilled_once_for_every_later_call(model, processor, tokenizer):
    """pDPO's label stage pins each question's prompt: later calls start their rows of that video from
    its cache (beside groups prefilled as usual), and decode as each row alone."""
    features = cases(processor)["different media and a text-only row"] + [cases(processor)["questions on one video"][0]]
    rows = encode(processor, QUESTIONS + QUESTIONS[:1], features)
    shared = decoder(model, tokenizer)
    media = shared.encode_media(features)
    common = SharedPrefix.of([rows[0], rows[3], rows[4]], [media[0], media[3], media[4]], 3).length
    sampling = SamplingConfig(max_new_tokens=6, do_sample=True, temperature=1.5)
    seeds = [5, 6, 7, 8, 9]

    def prefilled(decoder_):
        forwards = Forwards(model)
        try:
            result = decoder_.generate(rows, media, sampling, row_seeds=seeds)
        finally:
            forwards.close()
        return result, sum(r * p for r, p in forwards.inputs if p > 1)

    plain, plain_prefill = prefilled(shared)
    shared.pin_prefix(rows[0][:common - 2], media[0])
    shared.pin_prefix(rows[0][:common - 5], media[0])  # the longest pin that fits is used
    shared.pin_prefix(rows[2][:10], media[1])  # not the prefix of any row of that media: unused
    pinned, pinned_prefill = prefilled(shared)
    assert pinned.tokens == plain.tokens
    assert pinned_prefill <= plain_prefill - (common - 2)
    alone = decoder(model, tokenizer, share=False)
    for i, row in enumerate(rows):
        assert alone.generate([row], [media[i]], sampling, row_seeds=[seeds[i]]).tokens[0] == pinned.tokens[i]
    tail = shared.tail_logits(rows, media, keep=2)
    for i, row in enumerate(rows):
        torch.testing.assert_close(tail[i], alone.tail_logits([row], [media[i]], keep=2)[0], rtol=1e-9, atol=1e-9)
    # Longer pins, prefilled in one batch over the pins they extend: rows start from them, same samples.
    shared.pin_prefixes([rows[0][:-1], rows[3][:-2]], [media[0], media[3]])
    assert [len(p.ids) for p in shared.pinned[-2:]] == [len(rows[0]) - 1, len(rows[3]) - 2]
    assert prefilled(shared)[0].tokens == plain.tokens
    shared.unpin()
    assert shared.pinned == [] and prefilled(shared)[1] == plain_prefill


def test_tail_logits_read_per_row_let_the_prefix_take_in_the_rest(model, processor, tokenizer):
    """Rows scored on tails of different lengths (pDPO's paths, pairs): with `need`, the prefix they
    share is not cut at the longest tail, and every row's needed logits are those of the row alone."""
    features = cases(processor)["questions on one video"]
    prompts = encode(processor, QUESTIONS[:1], features[:1]) * 3
    tails = [[7, 8, 9] * 8, [11, 12], [13, 14, 15, 16]]
    rows = [p + t for p, t in zip(prompts, tails)]
    shared = decoder(model, tokenizer)
    media = shared.encode_media(features[:3])
    keep = max(len(t) for t in tails) + 1
    need = [len(t) + 1 for t in tails]
    forwards = Forwards(model)
    try:
        cut = shared.tail_logits(rows, media, keep)
        read = shared.tail_logits(rows, media, keep, need)
    finally:
        forwards.close()
    (_, cut_prefix), (_, read_prefix) = forwards.inputs[0], forwards.inputs[2]
    assert read_prefix == len(prompts[0]) - 1 > cut_prefix  # the prompt but its last position (it predicts a tail)
    alone = decoder(model, tokenizer, share=False)
    for i, row in enumerate(rows):
        want = alone.tail_logits([row], [media[i]], need[i])[0]
        torch.testing.assert_close(read[i, keep - need[i]:], want, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(cut[i, keep - need[i]:], want, rtol=1e-9, atol=1e-9)
