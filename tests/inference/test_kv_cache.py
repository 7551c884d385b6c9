"""Rows that continue a shared prefix without copies of it (`kv_cache`) attend as rows holding
copies do: the attention against sdpa over copies, the block layout, and the decoder end to end."""

from types import SimpleNamespace

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from salmonn_o1 import kv_cache
from salmonn_o1.decoding import Decoder
from salmonn_o1.generation import SamplingConfig
from salmonn_o1.kv_cache import Layout, SharedPrefixCache, SharedPrefixLayer, shared_prefix_attention
from salmonn_o1.prompts import format_question

from clips import colour_clip

HEADS, KV_HEADS, DIM = 6, 2, 8


def shared_and_copied(group: list[int], prefix: int, suffix: int, q: int, holes: bool, seed: int = 0):
    """A shared cache of len(group) rows over max(group) + 1 prefixes, and the same keys copied per row."""
    g = torch.Generator().manual_seed(seed)
    groups = max(group) + 1
    rows = len(group)
    pk, pv = (torch.randn(groups, KV_HEADS, prefix, DIM, generator=g, dtype=torch.float64) for _ in range(2))
    sk, sv = (torch.randn(rows, KV_HEADS, suffix, DIM, generator=g, dtype=torch.float64) for _ in range(2))
    layer = SharedPrefixLayer(pk, pv, rows)
    layer.update(sk, sv)
    cache = SharedPrefixCache([layer], torch.tensor(group))
    index = torch.tensor(group)
    keys, values = torch.cat([pk[index], sk], dim=2), torch.cat([pv[index], sv], dim=2)
    query = torch.randn(rows, HEADS, q, DIM, generator=g, dtype=torch.float64)
    length = prefix + suffix
    mask = torch.ones((rows, 1, q, length), dtype=torch.bool).tril(length - q)
    if holes:  # left padding, holes inside the prefix, and one row whose prefix is all holes
        mask[0, ..., :3] = False
        mask[1, ..., prefix // 2] = False
        mask[-1, ..., :prefix] = False
    return cache, query, sk, sv, keys, values, mask


MODULE = SimpleNamespace(layer_idx=0, num_key_value_groups=HEADS // KV_HEADS, is_causal=True)


@pytest.mark.parametrize("group", [[0, 0, 0, 0, 1, 1, 1, 1],  # two full blocks, rows in order
                                   [2, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # uneven, out of order, a prefix unused
                                   [0, 1, 2, 3]])  # no row shares
@pytest.mark.parametrize("q", [1, 5])
@pytest.mark.parametrize("holes", [False, True])
@pytest.mark.parametrize("fused", [True, False])  # False: the plain-ops path other devices take
def test_attention_over_a_shared_prefix_is_sdpas_over_copies(group, q, holes, fused, monkeypatch):
    if not fused:
        monkeypatch.setattr(kv_cache, "_FUSED_CPU", None)
    cache, query, sk, sv, keys, values, mask = shared_and_copied(group, prefix=37, suffix=9, q=q, holes=holes)
    got, _ = shared_prefix_attention(MODULE, query, sk, sv, mask, scaling=DIM ** -0.5, shared_prefix=cache)
    want, _ = sdpa_attention_forward(MODULE, query, keys, values, mask, scaling=DIM ** -0.5)
    assert got.shape == want.shape == (len(group), q, HEADS, DIM)
    assert torch.isfinite(got).all()
    if holes:  # a query with nothing visible: sdpa's output there is undefined, ours a finite average
        visible = mask.any(dim=-1).view(len(group), q)
        got, want = got[visible], want[visible]
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_no_mask_means_causal_over_the_new_positions():
    cache, query, sk, sv, keys, values, mask = shared_and_copied([0, 0, 1], prefix=20, suffix=6, q=4, holes=False)
    got, _ = shared_prefix_attention(MODULE, query, sk, sv, None, scaling=DIM ** -0.5, shared_prefix=cache)
    want, _ = sdpa_attention_forward(MODULE, query, keys, values, mask, scaling=DIM ** -0.5)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_without_a_shared_prefix_the_attention_is_sdpas():
    _, query, _, _, keys, values, mask = shared_and_copied([0, 1], prefix=5, suffix=3, q=2, holes=True)
    got, _ = shared_prefix_attention(MODULE, query, keys, values, mask, scaling=DIM ** -0.5)
    want, _ = sdpa_attention_forward(MODULE, query, keys, values, mask, scaling=DIM ** -0.5)
    assert torch.equal(got, want)


def test_the_layout_packs_rows_in_blocks_of_one_prefix():
    # 24 rows of prefix 0, 8 of prefix 1, none of 2, 8 of 3: blocks of 8 (3 + 1 + 1), no slot wasted.
    group = torch.tensor([0] * 24 + [1] * 8 + [3] * 8)
    layout = Layout.of(group, groups=4)
    assert (layout.width, layout.blocks, layout.slots) == (8, 5, None)
    assert layout.prefix.tolist() == [0, 0, 0, 1, 3]
    # Out of order and uneven: every row gets its own slot in a block of its prefix.
    group = torch.tensor([1, 0, 1, 1, 0, 2])
    layout = Layout.of(group, groups=3)
    assert len(set(layout.slots.tolist())) == 6
    block_prefix = layout.prefix if layout.prefix is not None else torch.arange(layout.blocks)
    assert (block_prefix[layout.slots // layout.width] == group).all()
    rows = torch.randn(6, 2, 3, 4)
    assert torch.equal(layout.unstack(layout.stack(rows)), rows)


def test_selecting_rows_keeps_the_prefixes_shared():
    cache, *_ = shared_and_copied([0, 0, 1, 1], prefix=10, suffix=2, q=1, holes=False)
    prefix_keys = cache.layers[0].prefix_keys
    suffix = cache.layers[0].keys.clone()
    cache.batch_select_indices(torch.tensor([3, 0, 0]))
    assert cache.layers[0].prefix_keys is prefix_keys  # not copied
    assert cache.group.tolist() == [1, 0, 0]
    assert torch.equal(cache.layers[0].keys, suffix[[3, 0, 0]])
    assert cache.get_seq_length() == 12


# ---- the decoder, end to end ----


def test_the_decoder_shares_prefixes_and_decodes_what_copies_decode(model, processor, tokenizer):
    """Repeated rows (pDPO's N completions) over a pinned prompt, rows ending at different steps, then
    the answer turn: the same tokens with shared prefixes as with copies, and the shared cache holds
    each row's suffix only."""
    ids = Decoder.from_tokenizer(model, tokenizer).ids
    sharing = Decoder(model, ids, min_shared_prefix=4)
    copying = Decoder(model, ids, min_shared_prefix=4, share_prefixes=False)
    assert sharing.share_prefixes and not copying.share_prefixes
    features = [processor.media_features(colour_clip(2.0))] * 6
    prompt = processor.encode(format_question("What colour?", ["red", "blue"]), features[0]).input_ids
    other = processor.encode(format_question("Which colour shows first?", ["red", "blue"]), features[0]).input_ids
    rows = [prompt] * 3 + [other] * 3
    sampling = SamplingConfig(max_new_tokens=12, do_sample=True, temperature=1.5)
    seeds = [1, 2, 3, 4, 5, 6]
    free = copying.generate(rows, copying.encode_media(features), sampling, stop_ids={-1}, row_seeds=seeds)
    stops = {free.tokens[0][2], free.tokens[4][6]}  # rows end at different steps
    results = []
    for decoder_ in (sharing, copying):
        media = decoder_.encode_media(features)
        decoder_.pin_prefix(prompt[:-3], media[0])
        first = decoder_.generate(rows, media, sampling, stop_ids=stops, row_seeds=seeds)
        results.append((first, decoder_.answer_turn(first, SamplingConfig(max_new_tokens=4))))
    (shared_first, shared_answer), (copied_first, copied_answer) = results
    assert shared_first.tokens == copied_first.tokens
    assert len({len(t) for t in shared_first.tokens}) > 1  # rows stopped at different steps (parked)
    assert shared_answer.tokens == copied_answer.tokens
    cache = shared_answer.state.cache  # turn 1's, continued in place
    assert isinstance(cache, SharedPrefixCache)
    assert cache.layers[0].keys.shape[2] < shared_answer.state.attention_mask.shape[1] == cache.get_seq_length()
    assert not isinstance(copied_first.state.cache, SharedPrefixCache)


def test_a_model_on_another_attention_copies_prefixes(model, tokenizer):
    model.config.text_config._attn_implementation = "eager"
    try:
        assert not kv_cache.enable(model)
        assert not Decoder.from_tokenizer(model, tokenizer).share_prefixes
    finally:
        model.config.text_config._attn_implementation = "sdpa"
    assert kv_cache.enable(model) and model.config.text_config._attn_implementation == kv_cache.ATTENTION


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_stays_finite_and_close(dtype):
    """A query with nothing visible must not turn NaN in half precision (float32's mask floor rounds to
    -inf in bfloat16 and float16), and the rest stays within the dtype's rounding of sdpa over copies."""
    cache, query, sk, sv, keys, values, mask = shared_and_copied([0, 0, 1, 1, 1], prefix=30, suffix=6, q=1, holes=True)
    for layer in cache.layers:
        layer.prefix_keys, layer.prefix_values = layer.prefix_keys.to(dtype), layer.prefix_values.to(dtype)
    got, _ = shared_prefix_attention(MODULE, query.to(dtype), sk.to(dtype), sv.to(dtype), mask,
                                     scaling=DIM ** -0.5, shared_prefix=cache)
    want, _ = sdpa_attention_forward(MODULE, query.to(dtype), keys.to(dtype), values.to(dtype), mask,
                                     scaling=DIM ** -0.5)
    assert torch.isfinite(got).all()
    visible = mask.any(dim=-1).view(5, 1)
    torch.testing.assert_close(got[visible].float(), want[visible].float(), rtol=0.02, atol=0.02)
