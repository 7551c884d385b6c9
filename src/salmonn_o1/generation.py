"""Token-by-token decoding with a KV cache that outlives one turn.

`transformers.generate` cannot continue a conversation from its own cache
with new user tokens appended, which the two-turn reasoning protocol needs
("What is the final answer...?" after the reasoning) without re-encoding the
video. This loop can: a `DecodeState` keeps the cache, the attention mask
(holes where finished samples idled) and the last sampled token of each
sample, which is not in the cache yet. `salmonn_o1.decoding.Decoder` drives
it; it runs the model's own forward over embeddings (media already spliced).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from salmonn_o1.kv_cache import GrowingCache, SharedPrefixCache


@dataclass
class SamplingConfig:
    """Greedy when `do_sample` is False; otherwise temperature / top-k / top-p sampling, seeded."""

    max_new_tokens: int = 512
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        if self.do_sample and self.temperature <= 0:
            raise ValueError("temperature must be > 0 when sampling")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")


@dataclass
class DecodeState:
    """What a later turn needs to continue the same sequences."""

    cache: object
    attention_mask: torch.Tensor  # (B, cached length) 1 = real token
    pending: list[int | None]  # the last sampled token of each sample, not yet fed to the model
    tokens_fed: int = 0  # forward positions processed, for accounting

    def select(self, rows: list[int], keep: list[bool] | None = None, share: bool = False) -> DecodeState:
        """A state of len(rows) rows, row i a copy of this state's row rows[i] (in place on its cache);
        keep[i] False masks the copy out entirely (a row that shares none of these positions).
        share: row i continues row rows[i] without a copy of its keys and values (`kv_cache`:
        the model must run `kv_cache.ATTENTION`); a cache that already shares copies only its suffixes."""
        index = torch.tensor(rows, device=self.attention_mask.device)
        if share and not isinstance(self.cache, SharedPrefixCache):
            self.cache = SharedPrefixCache.share(self.cache, index)
        else:
            self.cache.batch_select_indices(index)
        mask = self.attention_mask[index]
        if keep is not None:
            mask = mask * torch.tensor(keep, device=mask.device, dtype=mask.dtype).unsqueeze(1)
        return DecodeState(self.cache, mask, [self.pending[r] for r in rows], self.tokens_fed)


@dataclass
class DecodeResult:
    tokens: list[list[int]]  # new tokens per sample, the stop token included when produced
    finished: list[bool]  # stopped on a stop token (vs ran out of max_new_tokens)
    state: DecodeState
    forward_passes: int = 0
    generated: int = field(default=0)
    positions: int = 0  # rows x positions the forwards of this call ran (a shared prefix counts once)
    generators: list[torch.Generator] | None = None  # per-row sampling streams, continued by a later turn


def next_token_probs(logits: torch.Tensor, sampling: SamplingConfig) -> torch.Tensor:
    """(B, V) logits -> (B, V) sampling probabilities after temperature, top-k and top-p (row by row)."""
    logits = logits.float() / sampling.temperature
    if sampling.top_k > 0:
        kth = torch.topk(logits, min(sampling.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if sampling.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = sorted_logits.softmax(-1)
        # Drop tokens once the mass before them already reaches top_p (the first token always stays).
        drop = probs.cumsum(-1) - probs >= sampling.top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits.softmax(-1)


def pick_next(logits: torch.Tensor, sampling: SamplingConfig,
              generator: torch.Generator | list[torch.Generator] | None) -> torch.Tensor:
    """(B, V) logits -> (B,) token ids.

    generator: one for the whole batch (rows drawn in order from one stream), or one per row: row j
    then draws from its own stream only, so its samples do not depend on the other rows of the batch.
    """
    if not sampling.do_sample:
        return logits.argmax(dim=-1)
    probs = next_token_probs(logits, sampling)
    if isinstance(generator, list):
        return torch.cat([torch.multinomial(probs[j:j + 1].to(g.device), 1, generator=g).to(logits.device)
                          for j, g in enumerate(generator)]).squeeze(1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(logits.device)


def row_generators(seeds: Sequence[int], device: torch.device) -> list[torch.Generator]:
    """One seeded generator per row, on the logits' device (no host copy of the probabilities per token;
    a GPU's streams differ from the CPU's, so seeded samples are per device type)."""
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]


# A prompt longer than this is prefilled in pieces of this many positions: the forward's activations
# (MLP, attention scores) then stay those of one piece, so a long video's prompt (thousands of audio
# tokens) does not raise peak memory; shorter prompts take one forward, as before.
PREFILL_CHUNK_TOKENS = 1024


def _forward(model: nn.Module, embeds: torch.Tensor, mask: torch.Tensor, cache, new_len: int,
             chunk: int | None = None):
    """Forward `new_len` new positions (the last of `mask`); only the last position's logits are computed
    (a prompt's full (B, L, V) logits would dwarf the model's activations at a 152k vocabulary).
    Over `chunk` positions, the prompt goes in pieces through the same cache (chunked prefill)."""
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -new_len:]
    past = mask.shape[1] - new_len
    cache = GrowingCache() if cache is None else cache
    chunk = PREFILL_CHUNK_TOKENS if chunk is None else chunk
    step = new_len if chunk < 1 or new_len <= chunk else chunk
    for start in range(0, new_len, step):
        end = min(start + step, new_len)
        out = model(inputs_embeds=embeds[:, start:end], attention_mask=mask[:, :past + end],
                    position_ids=positions[:, start:end], use_cache=True, logits_to_keep=1, **cache_kwargs(cache))
        cache = out.cache
    return out.logits[:, -1], cache


def cache_kwargs(cache) -> dict:
    """The forward's cache arguments: a `SharedPrefixCache` also goes to the attention (`shared_prefix`)."""
    return {"cache": cache, "shared_prefix": cache} if isinstance(cache, SharedPrefixCache) else {"cache": cache}


def prefill(model: nn.Module, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
            state: DecodeState | None = None) -> DecodeState:
    """Run positions into a cache without sampling: the state a shared prefix is expanded from.

    state: continue its cache (a second level of shared prefix after the first; its rows'
    pending tokens must be None: nothing was sampled), else a fresh cache.
    """
    mask = attention_mask.long()
    cache, fed = None, 0
    if state is not None:
        if any(p is not None for p in state.pending):
            raise ValueError("prefill continues a state with nothing pending (a prefilled prefix)")
        mask, cache, fed = torch.cat([state.attention_mask, mask], dim=1), state.cache, state.tokens_fed
    _, cache = _forward(model, inputs_embeds, mask, cache, inputs_embeds.shape[1])
    return DecodeState(cache=cache, attention_mask=mask, pending=[None] * mask.shape[0],
                       tokens_fed=fed + inputs_embeds.shape[1])


def pad_positions(t: torch.Tensor, length: int, left: bool) -> torch.Tensor:
    """A cache tensor (n, heads, L, D) or a mask (n, L) padded with zeros (holes) to `length` positions,
    before its positions (`left`) or after them."""
    missing = length - t.shape[-2 if t.dim() == 4 else -1]
    where = (missing, 0) if left else (0, missing)
    return nn.functional.pad(t, (0, 0, *where) if t.dim() == 4 else where)


class _Parked:
    """Rows dropped from the decode batch once they stopped: their cache rows and mask, until the turn ends.

    A finished row only idles (its positions are masked holes), so feeding it costs attention over its
    whole cache for nothing; parking it shrinks every later forward to the rows still generating.
    `restore` rebuilds the full batch in the original row order, the parked rows' missed steps as holes.
    """

    def __init__(self):
        self.rows: list[tuple[list[int], list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]] = []
        self.groups: list[torch.Tensor] = []  # with a `SharedPrefixCache`: the parked rows' prefixes

    def park(self, cache, mask: torch.Tensor, local: list[int], original: list[int]) -> None:
        index = torch.tensor(local, device=mask.device)
        layers = [(layer.keys[index], layer.values[index]) for layer in cache.layers]
        self.rows.append((original, layers, mask[index]))
        if isinstance(cache, SharedPrefixCache):
            self.groups.append(cache.group[index])

    def restore(self, cache, mask: torch.Tensor, active: list[int], batch: int) -> torch.Tensor:
        if not self.rows:
            return mask
        order = list(active) + [i for original, _, _ in self.rows for i in original]
        inverse = torch.empty(batch, dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(batch)
        inverse = inverse.to(mask.device)

        def pad(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
            return pad_positions(t, like.shape[-1] if like.dim() == 2 else like.shape[-2], left=False)

        for k, layer in enumerate(cache.layers):  # (a shared prefix's cache holds only the suffixes)
            layer.keys = torch.cat([layer.keys] + [pad(ls[k][0], layer.keys) for _, ls, _ in self.rows])[inverse]
            layer.values = torch.cat([layer.values] + [pad(ls[k][1], layer.values) for _, ls, _ in self.rows])[inverse]
        if isinstance(cache, SharedPrefixCache):
            cache.set_group(torch.cat([cache.group, *self.groups])[inverse])
        return torch.cat([mask] + [pad(m, mask) for _, _, m in self.rows])[inverse]


def decode(
    model: nn.Module,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    sampling: SamplingConfig,
    stop_token_ids: set[int],
    pad_token_id: int,
    state: DecodeState | None = None,
    on_token: Callable[[int, int], None] | None = None,
    drop_finished: bool = True,
    generators: list[torch.Generator] | None = None,
) -> DecodeResult:
    """Feed `inputs_embeds` (after `state`, if continuing) and generate until every sample stops.

    model: has `get_input_embeddings()` and a forward taking inputs_embeds, attention_mask,
    position_ids, cache, use_cache and logits_to_keep (`SalmonnO1ForConditionalGeneration` does).
    inputs_embeds: (B, L, H) new positions; attention_mask: (B, L) for them (holes and left padding allowed).
    on_token(sample_index, token_id) is called for every generated token (for streaming).
    drop_finished: rows that stopped leave the batch (their cache rows parked) and come back, their
    missed steps as holes, when the turn ends; False feeds them holes instead (same tokens, more work).
    generators: with sampling, one per row (`row_generators`): each row draws from its own stream, so
    its samples are the same whatever else is in the batch (batch size, other questions, dropped rows),
    and a later turn continues the same streams (`DecodeResult.generators`); without them one generator
    seeded by `sampling.seed` serves the batch, rows in order.
    Every row's last sampled token (its stop token, or the last one when out of tokens) is left
    pending in the returned state: a later turn feeds it first.
    """
    batch = inputs_embeds.shape[0]
    generator = None
    if generators is not None and len(generators) != batch:
        raise ValueError(f"{len(generators)} row generators for {batch} rows")
    if sampling.do_sample and generators is None:
        generator = torch.Generator().manual_seed(sampling.seed if sampling.seed is not None else 0)
    embed = model.get_input_embeddings()
    device = inputs_embeds.device
    cache = None
    mask = attention_mask.long()
    if state is not None:
        if any(p is not None for p in state.pending):
            pending = torch.tensor([p if p is not None else pad_token_id for p in state.pending], device=device)
            pending_mask = torch.tensor([[p is not None] for p in state.pending], device=device, dtype=torch.long)
            inputs_embeds = torch.cat([embed(pending).unsqueeze(1).to(inputs_embeds.dtype), inputs_embeds], dim=1)
            mask = torch.cat([pending_mask, mask], dim=1)
        mask = torch.cat([state.attention_mask, mask], dim=1)
        cache = state.cache
    new_len = inputs_embeds.shape[1]
    logits, cache = _forward(model, inputs_embeds, mask, cache, new_len)
    passes, fed, positions = 1, new_len, batch * new_len
    tokens: list[list[int]] = [[] for _ in range(batch)]
    stopped = [False] * batch
    pending: list[int | None] = [None] * batch
    active = list(range(batch))  # the original row of each row still in the batch
    parked = _Parked()
    for step in range(sampling.max_new_tokens):
        # Invariant: everything sampled before this step has been fed; `logits` predict this step
        # for the rows in `active` (with drop_finished off, stopped rows stay in the batch, unsampled).
        row_streams = None if generators is None else [generators[i] for i in active]
        next_ids = pick_next(logits, sampling, generator if row_streams is None else row_streams)
        for j, i in enumerate(active):
            if stopped[i]:
                continue
            token = int(next_ids[j])
            tokens[i].append(token)
            pending[i] = token
            if on_token is not None:
                on_token(i, token)
            stopped[i] = token in stop_token_ids
        if all(stopped) or step == sampling.max_new_tokens - 1:
            break
        if drop_finished and any(stopped[i] for i in active):
            keep = [j for j, i in enumerate(active) if not stopped[i]]
            gone = [j for j, i in enumerate(active) if stopped[i]]
            parked.park(cache, mask, gone, [active[j] for j in gone])
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            mask, next_ids = mask[index], next_ids[index]
            active = [active[j] for j in keep]
        feed = torch.tensor([not stopped[i] for i in active], device=device)
        last = torch.where(feed, next_ids, torch.full_like(next_ids, pad_token_id))
        mask = torch.cat([mask, feed.long().unsqueeze(1)], dim=1)
        logits, cache = _forward(model, embed(last).unsqueeze(1), mask, cache, 1)
        passes += 1
        fed += 1
        positions += len(active)
    mask = parked.restore(cache, mask, active, batch)
    result_state = DecodeState(cache=cache, attention_mask=mask, pending=pending,
                               tokens_fed=(state.tokens_fed if state else 0) + fed)
    return DecodeResult(tokens=tokens, finished=stopped, state=result_state, forward_passes=passes,
                        generated=sum(len(t) for t in tokens), positions=positions, generators=generators)
