"""The decoder's KV caches: one written in place, and one whose rows share prefixes without copies,
with the attention that reads the second.

`GrowingCache` keeps each layer's keys and values in a buffer with room to spare (below).

Many rows of one decode batch begin with the same long prefix: pDPO's N completions of a branch
(prompt, video and the steps so far), a question's P sampled paths, several questions about one
video. Copying the prefix's keys and values to every row (`DecodeState.select` on a plain cache)
makes each decode step read B copies of it; on a CPU that reading is most of a small model's step
(16 rows over a ~1,000-position prompt: the attention takes over half the forward). Here the
prefixes are kept once, as a (G, heads, Lp, dim) tensor per layer, each row names its prefix
(`group`), and only what a row adds after it (its suffix) is stored per row.

The attention over such a cache ("cascade" attention in serving engines' terms) attends each
row's query over its prefix and over its own suffix separately and merges the two by their
log-sum-exps, as flash attention merges its tiles. The prefix half runs per block of rows of one
prefix, the block's rows stacked as extra query positions, so a prefix is read once per block and
step, whatever the number of rows continuing it. On a CPU each half is one call of torch's fused
attention kernel (the one sdpa runs, which also returns the log-sum-exp); elsewhere plain torch
ops. No maintained library offers this through transformers' attention interface (vLLM and
FlashInfer do it in CUDA kernels inside their own engines), so it is written here.

It plugs in as an attention implementation (`ATTENTION`, registered with transformers'
`AttentionInterface` and, for masks, `AttentionMaskInterface` as sdpa's): a forward given a
`SharedPrefixCache` as `shared_prefix=` runs the shared attention; every other forward (training,
a cache of copies, the vision and audio towers) runs sdpa's exactly, so `enable` may switch a model
once and for good. Positions, masks and `get_seq_length` count the prefix as part of every row,
so callers see a cache of the full length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import accumulate

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

ATTENTION = "sdpa_shared_prefix"


class GrowingLayer(DynamicLayer):
    """A `DynamicLayer` whose keys and values live in a buffer with room to spare.

    `DynamicLayer.update` concatenates, copying the layer's whole cache on every decode step; on
    CPU that copy (into freshly allocated memory) costs more than the step's attention and grows
    with the batch. Here a step writes into the buffer's spare room, and the buffer grows by
    `GROW` positions only when full. `keys` / `values` are views of the filled part, so the
    layer's other methods (batch selection and repetition, crop) work unchanged: assigning them
    replaces the buffer with the assigned tensor.
    """

    GROW = 256  # spare positions added when the buffer fills (memory kept over a concatenating cache)

    def __init__(self, **kwargs):
        self._buffers: dict[str, torch.Tensor | None] = {"keys": None, "values": None}
        self._filled = {"keys": 0, "values": 0}  # each buffer its own: a method assigns one, then reads the other
        super().__init__(**kwargs)

    def _view(self, name: str) -> torch.Tensor | None:
        buffer = self._buffers[name]
        return buffer if buffer is None or buffer.dim() != 4 else buffer[:, :, :self._filled[name]]

    def _assign(self, name: str, value: torch.Tensor | None) -> None:
        self._buffers[name] = value
        self._filled[name] = value.shape[-2] if value is not None and value.dim() == 4 else 0

    keys = property(lambda self: self._view("keys"), lambda self, value: self._assign("keys", value))
    values = property(lambda self: self._view("values"), lambda self, value: self._assign("values", value))

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        for name, new in (("keys", key_states), ("values", value_states)):
            buffer, filled, length = self._buffers[name], self._filled[name], new.shape[-2]
            if buffer.dim() != 4 or filled + length > buffer.shape[-2] or buffer.shape[0] != new.shape[0]:
                grown = new.new_empty((*new.shape[:2], filled + length + self.GROW, new.shape[-1]))
                if filled:
                    grown[:, :, :filled] = buffer[:, :, :filled]
                buffer = self._buffers[name] = grown
            buffer[:, :, filled:filled + length] = new
            self._filled[name] = filled + length
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self._filled["keys"] if self.is_initialized else 0


class GrowingCache(DynamicCache):
    """A `DynamicCache` of `GrowingLayer`s (layers added as the model first writes them)."""

    def __init__(self):
        Cache.__init__(self, layer_class_to_replicate=GrowingLayer)


class SharedPrefixLayer(GrowingLayer):
    """One layer: the prefixes (G, heads, Lp, D) its rows continue, and each row's suffix.

    `keys` / `values` are the suffixes (B, heads, Ls, D): what `update` appends to (in place, as
    `GrowingLayer`) and what batch selection, parking and the attention's own part read; which
    prefix a row continues is the cache's `group`.
    """

    def __init__(self, prefix_keys: torch.Tensor, prefix_values: torch.Tensor, rows: int):
        super().__init__()
        self.prefix_keys, self.prefix_values = prefix_keys, prefix_values
        self.dtype, self.device, self.is_initialized = prefix_keys.dtype, prefix_keys.device, True
        no_suffix = (rows, prefix_keys.shape[1], 0, prefix_keys.shape[-1])  # the first update makes room
        self.keys, self.values = prefix_keys.new_empty(no_suffix), prefix_values.new_empty(no_suffix)

    def get_seq_length(self) -> int:
        return self.prefix_keys.shape[-2] + super().get_seq_length()

    def full_row(self, row: int, group: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Row `row`'s keys and values over the whole length (1, heads, Lp + Ls, D): a copy."""
        return (torch.cat([self.prefix_keys[group:group + 1], self.keys[row:row + 1]], dim=2),
                torch.cat([self.prefix_values[group:group + 1], self.values[row:row + 1]], dim=2))


@dataclass
class Layout:
    """The rows stacked by prefix for the prefix half of the attention: blocks of `width` rows that
    continue one prefix (a prefix with more rows takes several blocks, so the blocks waste few slots).

    slots: row i is position slots[i] of the (blocks * width) stack (None: the rows already are the
    stack, in order); prefix: each block's prefix (None: block k reads prefix k, all of them).
    """

    slots: torch.Tensor | None
    width: int
    blocks: int
    prefix: torch.Tensor | None
    prefixes: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # per layer, per block

    @classmethod
    def of(cls, group: torch.Tensor, groups: int) -> Layout:
        counts = torch.bincount(group, minlength=groups).tolist()
        present = [c for c in counts if c]
        # The width that fills the fewest slots, a block counted as two slots (it reads its prefix once).
        width = min(set(present), key=lambda w: sum(-(-c // w) * (w + 2) for c in present))
        first_block, prefix, blocks = [], [], 0
        for g, c in enumerate(counts):
            first_block.append(blocks)
            prefix += [g] * -(-c // width)
            blocks += -(-c // width)
        order = torch.argsort(group, stable=True)
        starts = torch.tensor([0, *accumulate(counts[:-1])], device=group.device)  # each prefix's first sorted row
        rank = torch.empty_like(group)
        rank[order] = torch.arange(len(group), device=group.device) - starts[group[order]]
        slots = torch.tensor(first_block, device=group.device)[group] * width + rank
        in_order = len(group) == blocks * width and bool((slots == torch.arange(len(group), device=slots.device)).all())
        return cls(None if in_order else slots, width, blocks, None if prefix == list(range(groups)) else
                   torch.tensor(prefix, device=group.device))

    def prefix_of(self, layer: SharedPrefixLayer, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer's prefix keys and values per block (a copy only when blocks repeat or skip prefixes)."""
        if self.prefix is None:
            return layer.prefix_keys, layer.prefix_values
        if index not in self.prefixes:
            self.prefixes[index] = (layer.prefix_keys[self.prefix], layer.prefix_values[self.prefix])
        return self.prefixes[index]

    def stack(self, rows: torch.Tensor) -> torch.Tensor:
        """(B, heads, M, X) rows -> (blocks, heads, width * M, X): a block's rows as one matmul's rows."""
        if self.slots is not None:
            stacked = rows.new_zeros((self.blocks * self.width, *rows.shape[1:]))
            stacked[self.slots] = rows
            rows = stacked
        heads, m, x = rows.shape[1:]
        return rows.reshape(self.blocks, self.width, heads, m, x).transpose(1, 2).reshape(
            self.blocks, heads, self.width * m, x)

    def unstack(self, stacked: torch.Tensor) -> torch.Tensor:
        """The inverse of `stack`: (blocks, heads, width * M, X) -> (B, heads, M, X)."""
        blocks, heads, wm, x = stacked.shape
        m = wm // self.width
        rows = stacked.reshape(blocks, heads, self.width, m, x).transpose(1, 2).reshape(blocks * self.width, heads, m, x)
        return rows if self.slots is None else rows[self.slots]


class SharedPrefixCache(Cache):
    """A cache of `SharedPrefixLayer`s; `group[i]` is row i's prefix. Built by `share`."""

    def __init__(self, layers: list[SharedPrefixLayer], group: torch.Tensor):
        super().__init__(layers=layers)
        self.group = group
        self._layout: Layout | None = None
        self._bias: tuple[object, tuple, torch.Tensor, torch.Tensor] | None = None

    @classmethod
    def share(cls, cache: Cache, rows: torch.Tensor) -> SharedPrefixCache:
        """`cache`'s rows as the prefixes of len(rows) new rows (row i continues prefix rows[i])."""
        return cls([SharedPrefixLayer(layer.keys, layer.values, len(rows)) for layer in cache.layers], rows)

    @property
    def prefix_length(self) -> int:
        return self.layers[0].prefix_keys.shape[-2]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep (or repeat) rows: their suffixes are copied, their prefixes stay shared."""
        for layer in self.layers:
            layer.keys, layer.values = layer.keys[indices], layer.values[indices]
        self.set_group(self.group[indices])

    def set_group(self, group: torch.Tensor) -> None:
        self.group, self._layout, self._bias = group, None, None

    def layout(self) -> Layout:
        if self._layout is None:
            self._layout = Layout.of(self.group, self.layers[0].prefix_keys.shape[0])
        return self._layout

    def mask_bias(self, attention_mask: torch.Tensor | None, q: int, suffix: int,
                  repeat: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The additive float32 masks of the prefix half (stacked by block) and of the suffix half,
        (blocks, 1, width * repeat * q, Lp) and (B, 1, repeat * q, Ls), from the forward's boolean mask
        (None: causal, no holes). Made once per forward: every layer gets the same mask object (held
        here, so no later mask can be mistaken for it)."""
        shape = (q, suffix, repeat)
        if self._bias is None or self._bias[0] is not attention_mask or self._bias[1] != shape:
            batch, prefix = len(self.group), self.prefix_length
            length = prefix + suffix
            if attention_mask is None:
                visible = torch.ones((q, length), dtype=torch.bool, device=self.group.device).tril(length - q)
                visible = visible.expand(batch, 1, q, length)
            else:
                visible = attention_mask.expand(batch, 1, q, length)
            visible = visible.unsqueeze(2).expand(batch, 1, repeat, q, length).reshape(batch, 1, repeat * q, length)
            # A finite floor, not -inf: a query with nothing visible (padding) gets a finite average
            # instead of NaN, which would reach other rows through its keys and values.
            bias = torch.zeros(visible.shape, dtype=torch.float32, device=visible.device)
            bias.masked_fill_(~visible, torch.finfo(torch.float32).min)
            self._bias = (attention_mask, shape, self.layout().stack(bias[..., :prefix]),
                          bias[..., prefix:].contiguous())
        return self._bias[2], self._bias[3]


def _attend(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
            bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention over one part of the keys (queries already scaled): (output, log-sum-exp of
    the scores, (N, heads, M, 1)), the second for merging parts. On a CPU, torch's fused kernel."""
    precision = torch.promote_types(queries.dtype, torch.float32)  # merged in float32 at least
    if queries.device.type == "cpu" and _FUSED_CPU is not None:
        floor = torch.finfo(queries.dtype).min
        if floor > torch.finfo(bias.dtype).min:  # half precision: float32's floor would round to -inf (NaN rows)
            bias = bias.clamp(min=floor)
        out, lse = _FUSED_CPU(queries, keys, values, 0.0, False, attn_mask=bias.to(queries.dtype), scale=1.0)
        return out.to(precision), lse.to(precision).unsqueeze(-1)
    scores = torch.matmul(queries, keys.transpose(-1, -2)).to(precision) + bias
    lse = torch.logsumexp(scores, dim=-1, keepdim=True)
    return torch.matmul(torch.exp(scores - lse).to(values.dtype), values).to(precision), lse


# sdpa's CPU kernel, which returns the log-sum-exp with the output (a private op: None if absent).
_FUSED_CPU = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


def shared_prefix_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                            attention_mask: torch.Tensor | None, dropout: float = 0.0,
                            scaling: float | None = None, shared_prefix: SharedPrefixCache | None = None,
                            **kwargs) -> tuple[torch.Tensor, None]:
    """sdpa's attention, or, given `shared_prefix`, attention over its prefixes and the rows' suffixes.

    query (B, heads, q, D); key / value: the suffixes (B, kv heads, Ls, D), the new positions last;
    attention_mask: sdpa's boolean (B, 1, q, Lp + Ls) over prefix and suffix, or None (causal, no holes).
    Each half is a softmax of its own (the prefix half with a block's rows as one call's queries);
    they are merged by their log-sum-exps, as flash attention merges its tiles.
    """
    if shared_prefix is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    layout = shared_prefix.layout()
    prefix_keys, prefix_values = layout.prefix_of(shared_prefix.layers[module.layer_idx], module.layer_idx)
    batch, heads, q, dim = query.shape
    repeat = heads // prefix_keys.shape[1]
    scale = scaling if scaling is not None else dim ** -0.5
    # Query head h reads key head h // repeat: a key head's queries become one call's queries.
    queries = query.reshape(batch, heads // repeat, repeat * q, dim) * scale
    prefix_bias, suffix_bias = shared_prefix.mask_bias(attention_mask, q, key.shape[2], repeat)
    prefix_out, prefix_lse = (layout.unstack(t) for t in _attend(layout.stack(queries), prefix_keys,
                                                                 prefix_values, prefix_bias))
    suffix_out, suffix_lse = _attend(queries, key, value, suffix_bias)
    top = torch.maximum(prefix_lse, suffix_lse)
    prefix_weight, suffix_weight = torch.exp(prefix_lse - top), torch.exp(suffix_lse - top)
    out = (prefix_out * prefix_weight + suffix_out * suffix_weight) / (prefix_weight + suffix_weight)
    return out.to(query.dtype).reshape(batch, heads, q, dim).transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTENTION, shared_prefix_attention)
AttentionMaskInterface.register(ATTENTION, sdpa_mask)


def enable(model: nn.Module) -> bool:
    """Switch the model's language model to `ATTENTION` when it runs sdpa; True when it now does.

    Other implementations (eager, flash attention) stay as they are, and their callers copy prefixes.
    """
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", config)
    if config is None:
        return False
    if getattr(config, "_attn_implementation", None) == "sdpa":
        config._attn_implementation = ATTENTION
    return getattr(config, "_attn_implementation", None) == ATTENTION
