"""One decoding object: from media features and token ids to the model's outputs.

`Decoder` (modelled on whisper's `DecodingTask`) owns the model and the token
ids of the released two-turn protocol, and is the one path every caller takes:
the inference pipeline (ask, batches, sampling, streaming), the pDPO rollout
policy (alternative steps, completions) and the contrastive KL step scores.

    encode_media(features)        each distinct media input once -> its (N, H) media sequence
    embed(rows, media)            left-pad the id rows, splice each row's media -> embeddings, mask
    generate(rows, media, ...)    prefill + decode one turn (the reasoning turn, a step, an answer)
    answer_turn(first, ...)       append the follow-up question to turn 1's KV cache, decode turn 2
    answer_turn_from_scratch(...) the release's turn 2: re-encode, prefill prompt + reasoning + follow-up
    tail_logits(rows, media, k)   teacher-forced logits of each row's last k positions
    shared_prefixes(rows, media)  the rows of each media input and the prefix they share, prefilled once
    repeated_rows(rows, media)    rows that are the same sequence (N rollouts of one prefix), prefilled once
    pin_prefixes(rows, media)     prefixes prefilled once and kept for later calls (pDPO's prompts, step prefixes)

Rows that begin alike (several questions about one video: the same system
prompt and media; pDPO completions of one prefix) share a prefix, per media
input: the prefixes are prefilled once, as one left-padded batch, each row continues its group's
KV cache without a copy of it (`kv_cache`, on sdpa models; a copy per row otherwise), and each
row's rest is fed after it (`SharedPrefix`); rows that repeat one sequence (pDPO's N completions of
a branch) have their rest prefilled once more, as a second level, copied per row (it is short).
Sampling is `generation.decode`'s loop: a seeded generator per call, so the same seed gives the
same samples, or one per row (`row_seeds`), so a row's samples do not depend on what else is in the
batch (pDPO's stages seed per question and path). The decoder calls only the model's own methods
(`encode_media`, `splice_media`, `get_input_embeddings`, and its forward over `inputs_embeds` with a
cache), never the language model inside it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from salmonn_o1 import kv_cache
from salmonn_o1.chat import follow_up_ids
from salmonn_o1.generation import (
    DecodeResult,
    DecodeState,
    SamplingConfig,
    cache_kwargs,
    decode,
    pad_positions,
    prefill,
    row_generators,
)
from salmonn_o1.kv_cache import GrowingCache, SharedPrefixCache
from salmonn_o1.model.media_batch import MediaBatch, MediaFeatures
from salmonn_o1.prompts import END_OF_STEP, FINAL_ANSWER_QUESTION, IM_END

Rows = Sequence[Sequence[int]]  # token ids per sample, unpadded
Media = Sequence[torch.Tensor | None]  # per row: an encoded media sequence (N, H), or None for text only


@dataclass(frozen=True)
class ProtocolIds:
    """The token ids the two-turn protocol needs (`from_tokenizer` reads them).

    A decoder that only encodes media or scores teacher-forced rows needs no more than `pad_id`.
    """

    pad_id: int = 0
    stop_ids: frozenset[int] = frozenset()  # end of a turn: <|im_end|>, and the tokenizer's eos
    im_end_id: int | None = None
    end_of_step_id: int | None = None
    follow_up: tuple[int, ...] = ()  # the user turn "What is the final answer...?" + the assistant head

    @classmethod
    def from_tokenizer(cls, tokenizer: PreTrainedTokenizerBase) -> ProtocolIds:
        im_end = tokenizer.convert_tokens_to_ids(IM_END)
        stop = {im_end} if tokenizer.eos_token_id is None else {im_end, tokenizer.eos_token_id}
        return cls(
            pad_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else im_end,
            stop_ids=frozenset(stop),
            im_end_id=im_end,
            end_of_step_id=tokenizer.convert_tokens_to_ids(END_OF_STEP),
            follow_up=tuple(follow_up_ids(tokenizer, FINAL_ANSWER_QUESTION)),
        )


@dataclass(frozen=True)
class SharedPrefix:
    """The first `length` positions every row has in common, and how the media splits around them.

    Rows share a position when their token ids agree there and, where it is a media placeholder,
    they splice the same media sequence (the same object: `Decoder.encode_media` gives rows of one
    input the same one). Rows with different media share only the text before the first placeholder.
    At least one position of every row is left to its suffix: the prefill of the suffixes gives
    each row's first logits.
    """

    length: int
    media: torch.Tensor | None  # the prefix's media tokens (a leading slice of the shared sequence)
    suffix_media: list[torch.Tensor | None]  # per row: the media tokens after the prefix

    @classmethod
    def of(cls, rows: Rows, media: Media, media_token_id: int | None, leave: int | Sequence[int] = 1) -> SharedPrefix:
        first = rows[0]
        limit = min(len(row) - n for row, n in zip(rows, _per_row(leave, len(rows))))
        length = 0
        while length < limit and all(row[length] == first[length] for row in rows):
            length += 1
        placeholders = sum(1 for t in first[:length] if t == media_token_id) if media_token_id is not None else 0
        if placeholders == 0:
            return cls(length, None, list(media))
        shared = media[0]
        if shared is None or any(m is not shared for m in media):
            return cls(list(first).index(media_token_id), None, list(media))
        rest = shared[placeholders:]
        return cls(length, shared[:placeholders], [rest if rest.shape[0] else None] * len(rows))


@dataclass(frozen=True)
class PinnedPrefix:
    """A prefix prefilled once for many calls (`Decoder.pin_prefix`): its ids, the media object its
    rows splice (and the part of it after the prefix), each layer's (keys, values), (1, heads, L, dim), and
    which of the L positions hold its tokens."""

    ids: tuple[int, ...]
    media: torch.Tensor | None
    suffix_media: torch.Tensor | None
    layers: list[tuple[torch.Tensor, torch.Tensor]]
    attention_mask: torch.Tensor  # (1, L): 1 where it holds a token


class Decoder:
    """Prefill -> reasoning turn -> follow-up -> answer turn, over one decode state (KV cache reused).

    min_shared_prefix: the fewest common positions worth a separate batch-1 prefill (below it,
    the rows are prefilled whole, as one left-padded batch).
    drop_finished: rows that stopped leave the decode batch until the turn ends (`generation.decode`).
    share_prefixes: rows continue a prefilled prefix without copies of its keys and values
    (`kv_cache`; switches an sdpa model to `kv_cache.ATTENTION`, which is sdpa for every
    other forward); False, or a model on another attention implementation, copies it to every row.
    """

    def __init__(self, model: nn.Module, ids: ProtocolIds | None = None, min_shared_prefix: int = 32,
                 drop_finished: bool = True, share_prefixes: bool = True):
        self.model = model
        self.share_prefixes = share_prefixes and kv_cache.enable(model)
        self.ids = ids if ids is not None else ProtocolIds()
        self.encoder_calls = 0  # media encodings run, for tests and benchmarks
        self.min_shared_prefix = min_shared_prefix
        self.drop_finished = drop_finished
        self.pinned: list[PinnedPrefix] = []  # prefixes prefilled once for many calls (`pin_prefix`)

    @classmethod
    def from_tokenizer(cls, model: nn.Module, tokenizer: PreTrainedTokenizerBase) -> Decoder:
        return cls(model, ProtocolIds.from_tokenizer(tokenizer))

    @property
    def device(self) -> torch.device:
        return self.model.device

    # ---- inputs ----
    @torch.no_grad()
    def encode_media(self, features: Sequence[MediaFeatures | None]) -> list[torch.Tensor | None]:
        """Each row's media sequence; a features object shared by several rows is encoded once."""
        encoded: dict[int, torch.Tensor | None] = {}
        for f in features:
            if f is None or id(f) in encoded:
                continue
            encoded[id(f)] = self.model.encode_media(MediaBatch.collate([f]).to(self.device))[0]
            self.encoder_calls += 1
        return [None if f is None else encoded[id(f)] for f in features]

    def embed(self, rows: Rows, media: Media) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded rows with each row's media spliced in: embeddings (B, L, H), attention mask (B, L)."""
        length = max(len(row) for row in rows)
        ids = torch.full((len(rows), length), self.ids.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, row in enumerate(rows):
            ids[i, length - len(row):] = torch.tensor(row)
            mask[i, length - len(row):] = 1
        return self.model.splice_media(ids.to(self.device), list(media)), mask.to(self.device)

    # ---- turns ----
    @torch.no_grad()
    def generate(self, rows: Rows, media: Media, sampling: SamplingConfig, stop_ids: set[int] | None = None,
                 on_token: Callable[[int, int], None] | None = None,
                 row_seeds: Sequence[int] | None = None,
                 generators: list[torch.Generator] | None = None) -> DecodeResult:
        """One turn from scratch: prefill the rows, then decode until each stops (or runs out of tokens).

        stop_ids defaults to the end of the turn; on_token(row, token) sees every sampled token;
        row_seeds (sampling only): a generator per row, so each row's samples do not depend on the batch
        (or `generators`, streams already started: a later turn of rows seeded so).
        """
        if row_seeds is not None:
            generators = row_generators(row_seeds, self.device)
        stop_ids = self.ids.stop_ids if stop_ids is None else stop_ids
        if not stop_ids:
            raise ValueError("no stop ids: build the Decoder with ProtocolIds.from_tokenizer(tokenizer)")
        state, rows, media, prefilled, passes = self._prefill_shared(rows, media)
        embeds, mask = self.embed(rows, media)
        result = decode(self.model, embeds, mask, sampling, stop_ids, self.ids.pad_id, state=state,
                        on_token=on_token, drop_finished=self.drop_finished,
                        generators=generators)
        result.positions += prefilled  # each shared prefix and repeated row, prefilled once
        result.forward_passes += passes
        return result

    @torch.no_grad()
    def pin_prefix(self, ids: Sequence[int], media: torch.Tensor | None) -> None:
        """Prefill `ids` (their media spliced in) once and keep the cache: every later row of that media
        input that begins with these ids (and goes on after them) starts from it instead of prefilling
        it again (the longest pin that fits). pDPO's label stage pins each question's prompt and each
        valued step's prefix for all their calls (alternatives, retries, completions); `unpin` frees them."""
        self.pin_prefixes([ids], [media])

    @torch.no_grad()
    def pin_prefixes(self, rows: Rows, media: Media) -> None:
        """`pin_prefix` of several rows in one batch (each over the longest pin it already extends)."""
        token = getattr(getattr(self.model, "config", None), "media_token_id", None)
        # (A model that names no media token: a pin holds its media whole.)
        counts = [sum(1 for t in ids if t == token) if token is not None else (0 if m is None else m.shape[0])
                  for ids, m in zip(rows, media)]
        # A prefix that stops inside the media splices the part it holds (the whole object otherwise,
        # so that it extends the pins of that object).
        held = [m if m is None or n == m.shape[0] else _media_slice(m, 0, n) for m, n in zip(media, counts)]
        state, rests, rest_media, _, _ = self._prefill_shared(rows, held)
        embeds, mask = self.embed(rests, rest_media)
        state = prefill(self.model, embeds, mask, state)
        for i, (ids, m, placeholders) in enumerate(zip(rows, media, counts)):
            # Kept without the batch's holes (masked positions weigh nothing; positions count real tokens),
            # so every row that starts from the pin attends over its tokens only.
            real = state.attention_mask[i].bool()
            layers = [(keys[:, :, real].clone(), values[:, :, real].clone())
                      for keys, values in row_layers(state.cache, i)]
            self.pinned.append(PinnedPrefix(tuple(ids), m, _media_slice(m, placeholders, None), layers,
                                            torch.ones((1, int(real.sum())), dtype=torch.long, device=real.device)))

    def unpin(self, keep: int = 0) -> None:
        """Free the pins, all but the first `keep` (a caller that pinned on a shared decoder frees its own)."""
        del self.pinned[keep:]

    def _pinned_groups(self, rows: Rows, media: Media,
                       leave: int | Sequence[int]) -> list[tuple[list[int], PinnedPrefix]]:
        """The rows that begin with a pinned prefix of their media, grouped by it (each row its longest)."""
        groups: dict[int, list[int]] = {}
        for i, (row, m, n) in enumerate(zip(rows, media, _per_row(leave, len(rows)))):
            fits = [k for k, p in enumerate(self.pinned)
                    if p.media is m and len(row) >= len(p.ids) + n and tuple(row[:len(p.ids)]) == p.ids]
            if fits:
                groups.setdefault(max(fits, key=lambda k: len(self.pinned[k].ids)), []).append(i)
        return [(members, self.pinned[k]) for k, members in groups.items()]

    def shared_prefixes(self, rows: Rows, media: Media,
                        leave: int | Sequence[int] = 1) -> list[tuple[list[int], SharedPrefix]]:
        """The groups of rows worth a prefix prefilled once: (row indices, their common prefix).

        Rows are grouped by their media input (the same encoded object; text-only rows form one
        group), so several questions about each of several videos (a server's batch, rollouts of
        many questions) share each video's prefix; a group needs two rows and >= min_shared_prefix
        common positions.
        """
        if len(rows) < 2:
            return []
        token = getattr(getattr(self.model, "config", None), "media_token_id", None)
        leaves = _per_row(leave, len(rows))
        groups: dict[int | None, list[int]] = {}
        for i, m in enumerate(media):
            groups.setdefault(None if m is None else id(m), []).append(i)
        shared = []
        for members in groups.values():
            if len(members) < 2:
                continue
            prefix = SharedPrefix.of([rows[i] for i in members], [media[i] for i in members], token,
                                     [leaves[i] for i in members])
            if prefix.length >= self.min_shared_prefix:
                shared.append((members, prefix))
        return shared

    def repeated_rows(self, rows: Rows, media: Media) -> tuple[list[int], list[int]]:
        """Rows that are the same sequence (the same ids and the same media object): the first row of
        each distinct sequence, and each row's index among those (pDPO's N rollouts of one branch)."""
        units: dict[tuple, int] = {}
        first, unit_of_row = [], []
        for i, (row, m) in enumerate(zip(rows, media)):
            key = (None if m is None else id(m), tuple(row))
            if key not in units:
                units[key] = len(first)
                first.append(i)
            unit_of_row.append(units[key])
        return first, unit_of_row

    def _prefill_shared(self, rows: Rows, media: Media,
                        leave: int | Sequence[int] = 1) -> tuple[DecodeState | None, Rows, Media, int, int]:
        """Prefill what rows share once and give every row its cache: (state, each row's rest, its media,
        rows x positions the prefills ran, prefill forwards).

        Two levels. First each media group's common prefix (`shared_prefixes`): one left-padded batch
        of prefixes. Then, when rows repeat (the same sequence several times), each distinct sequence's
        rest but its last `leave` positions, over its group's cache: one batch of those, each expanded to
        its copies. A row in no group gets a masked copy of the first prefix (holes only), so one batch
        holds all. Each level's rests are left-padded, so the padding becomes holes between levels;
        positions count real tokens only, so every row sees the positions of a full prefill.
        """
        leaves = _per_row(leave, len(rows))
        pins = self._pinned_groups(rows, media, leaves)
        pinned_rows = {i for members, _ in pins for i in members}
        others = [i for i in range(len(rows)) if i not in pinned_rows]
        groups = [([others[k] for k in members], prefix) for members, prefix in
                  self.shared_prefixes([rows[i] for i in others], [media[i] for i in others],
                                       [leaves[i] for i in others])]
        rests, rest_media = list(rows), list(media)
        group_of_row, in_group = [0] * len(rows), [False] * len(rows)
        for g, (members, prefix) in enumerate(groups):
            for k, i in enumerate(members):
                group_of_row[i], in_group[i] = g, True
                rests[i], rest_media[i] = rows[i][prefix.length:], prefix.suffix_media[k]
        for g, (members, pin) in enumerate(pins, start=len(groups)):
            for i in members:
                group_of_row[i], in_group[i] = g, True
                rests[i], rest_media[i] = rows[i][len(pin.ids):], pin.suffix_media
        first, unit_of_row = self.repeated_rows(rows, media)
        unit_leave = [0] * len(first)  # the most any copy of a unit leaves to its own prefill
        for n, unit in zip(leaves, unit_of_row):
            unit_leave[unit] = max(unit_leave[unit], n)
        middle = [max(len(rests[i]) - n, 0) for i, n in zip(first, unit_leave)]
        copies = [unit_of_row.count(u) for u in range(len(first))]
        repeated = sum(m * (c - 1) for m, c in zip(middle, copies)) >= max(self.min_shared_prefix, 1)
        if not groups and not pins and not repeated:
            return None, rows, media, 0, 0
        heads = first if repeated else list(range(len(rows)))  # the rows the first level's cache goes to
        state, prefilled, passes = None, 0, 0
        if groups:
            embeds, mask = self.embed([rows[members[0]][:prefix.length] for members, prefix in groups],
                                      [prefix.media for _, prefix in groups])
            state = prefill(self.model, embeds, mask)
            prefilled, passes = embeds.shape[0] * embeds.shape[1], 1
        if pins:
            state = _with_pinned(state, [pin for _, pin in pins])
        if state is not None:
            state = state.select([group_of_row[i] for i in heads], [in_group[i] for i in heads],
                                 share=self.share_prefixes)
        if repeated:
            token = getattr(getattr(self.model, "config", None), "media_token_id", None)
            middles, middle_media, tail_media = [], [], []
            for u, i in enumerate(first):
                ids = list(rests[i][:middle[u]])
                placeholders = sum(1 for t in ids if t == token) if token is not None else 0
                middles.append(ids)
                middle_media.append(_media_slice(rest_media[i], 0, placeholders))
                tail_media.append(_media_slice(rest_media[i], placeholders, None))
            embeds, mask = self.embed(middles, middle_media)
            state = prefill(self.model, embeds, mask, state).select(unit_of_row, share=self.share_prefixes)
            prefilled, passes = prefilled + embeds.shape[0] * embeds.shape[1], passes + 1
            rests = [rests[i][middle[u]:] for i, u in enumerate(unit_of_row)]
            rest_media = [tail_media[u] for u in unit_of_row]
        return state, rests, rest_media, prefilled, passes

    @torch.no_grad()
    def answer_turn(self, first: DecodeResult, sampling: SamplingConfig,
                    row_seeds: Sequence[int] | None = None) -> DecodeResult:
        """Turn 2 over turn 1's KV cache: feed the follow-up question after each reasoning, decode the answer.

        Each sequence's last sampled token (not yet in the cache) goes in first, so the
        cache holds exactly prompt + reasoning + follow-up, as a from-scratch prefill would.
        Rows seeded one by one in turn 1 continue their own streams (row_seeds starts new ones).
        """
        generators = first.generators if row_seeds is None else row_generators(row_seeds, self.device)
        follow = torch.tensor([self._follow_up()] * len(first.tokens), device=self.device)
        return decode(self.model, self.model.get_input_embeddings()(follow), torch.ones_like(follow), sampling,
                      self.ids.stop_ids, self.ids.pad_id, state=first.state, drop_finished=self.drop_finished,
                      generators=generators)

    @torch.no_grad()
    def answer_turn_from_scratch(self, rows: Rows, first: DecodeResult, features: Sequence[MediaFeatures | None],
                                 sampling: SamplingConfig, row_seeds: Sequence[int] | None = None) -> DecodeResult:
        """The release's turn 2: encode the media again and prefill prompt + reasoning + follow-up whole."""
        follow = self._follow_up()
        continued = [list(row) + tokens + follow for row, tokens in zip(rows, first.tokens)]
        return self.generate(continued, self.encode_media(features), sampling, row_seeds=row_seeds,
                             generators=first.generators if row_seeds is None else None)

    # ---- teacher forcing ----
    @torch.no_grad()
    def tail_logits(self, rows: Rows, media: Media, keep: int, need: Sequence[int] | None = None) -> torch.Tensor:
        """Logits of the last `keep` positions of each (left-padded) row: (B, keep, V).

        A prefix the rows share (a prompt scored with many continuations) runs once, as in `generate`.
        need[i] <= keep: only row i's last need[i] positions are read (its continuation, when rows of
        several lengths are scored together); the shared prefix may then take in the rest of its last
        `keep`, whose logits come back undefined.
        """
        state, rows, media, _, _ = self._prefill_shared(rows, media, leave=keep if need is None else need)
        embeds, mask = self.embed(rows, media)
        if state is None:
            return self.model(inputs_embeds=embeds, attention_mask=mask, logits_to_keep=keep).logits
        mask = torch.cat([state.attention_mask, mask], dim=1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -embeds.shape[1]:]
        logits = self.model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True,
                            logits_to_keep=keep, **cache_kwargs(state.cache)).logits
        if logits.shape[1] == keep:
            return logits
        # Rows' own parts shorter than `keep` (`need`): the positions the prefix took in are NaN.
        return nn.functional.pad(logits, (0, 0, keep - logits.shape[1], 0), value=float("nan"))

    def _follow_up(self) -> list[int]:
        if not self.ids.follow_up:
            raise ValueError("no follow-up ids: build the Decoder with ProtocolIds.from_tokenizer(tokenizer)")
        return list(self.ids.follow_up)


def turn_text(tokenizer: PreTrainedTokenizerBase, tokens: Sequence[int], stop_ids: set[int] | frozenset[int]) -> str:
    """A turn's generated tokens as text: stop tokens dropped, other special tokens kept (a step's
    `<end_of_step>` is part of the reasoning). Callers strip or clean it as their record needs."""
    return tokenizer.decode([t for t in tokens if t not in stop_ids], skip_special_tokens=False)


def _per_row(leave: int | Sequence[int], rows: int) -> list[int]:
    """`leave` (positions left to each row's own prefill) as one number per row."""
    return [leave] * rows if isinstance(leave, int) else list(leave)


def _media_slice(media: torch.Tensor | None, start: int, end: int | None) -> torch.Tensor | None:
    """media[start:end] (a row's media tokens split where its ids are split), None when empty."""
    if media is None:
        return None
    part = media[start:end]
    return part if part.shape[0] else None


def row_layers(cache, row: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Row `row`'s (keys, values) per layer over the cache's whole length, (1, heads, L, D) each."""
    if isinstance(cache, SharedPrefixCache):
        group = int(cache.group[row])
        return [layer.full_row(row, group) for layer in cache.layers]
    return [(layer.keys[row:row + 1], layer.values[row:row + 1]) for layer in cache.layers]


def _with_pinned(state: DecodeState | None, pins: list[PinnedPrefix]) -> DecodeState:
    """The prefilled groups' state with the pinned prefixes as more rows, all left-padded (holes) to one length."""
    parts = [] if state is None else [([(layer.keys, layer.values) for layer in state.cache.layers],
                                        state.attention_mask)]
    for pin in pins:
        parts.append((pin.layers, pin.attention_mask))
    length = max(mask.shape[1] for _, mask in parts)

    def left(t: torch.Tensor) -> torch.Tensor:
        return pad_positions(t, length, left=True)

    cache = GrowingCache()
    for k in range(len(parts[0][0])):
        cache.update(torch.cat([left(layers[k][0]) for layers, _ in parts]),
                     torch.cat([left(layers[k][1]) for layers, _ in parts]), k)
    mask = torch.cat([left(mask) for _, mask in parts])
    return DecodeState(cache=cache, attention_mask=mask, pending=[None] * mask.shape[0], tokens_fed=length)
