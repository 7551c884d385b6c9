"""A built-in recall circuit for an LLM trained from scratch (the miniature model).

Every AVR-Synth step starts from a look-up ("the white circle is visible from ..."): find the
sentence or frame the words name and copy what follows it. A pretrained LLM has the circuit for
that: previous-token heads and an induction head on top of them. A small LLM trained from
scratch learns it only after a long plateau (salmonn_o1_mini/docs/notebook.md: multi-query
associative recall on the task's own tokens stays at the no-recall baseline for thousands of
steps), far beyond a CPU budget. So the miniature model starts with the circuit's attention patterns built in:

- layer 0, heads 0..window-1: head k attends to the token k + 1 back (a query bias that is the
  key bias rotated by k + 1 positions, zero q/k weights: the score depends on distance only),
  reads that token through a fixed projection R and writes it into its own subspace U_k;
- layer 1, head 0: the score of position s for position t counts how many of the tokens
  t, t-1, ..., t-window+1 equal s-1, ..., s-window (one slot of the head's dimensions per
  offset), on the head's lowest RoPE frequencies, which barely turn over a few hundred tokens
  with rope_theta 1e6, so the match ignores distance. Attention lands on the token that
  followed the same `window` tokens earlier, which is what "copy what follows" needs;
- layer 0's other heads and its MLP start with zero output weights, so that the match reads
  the tokens alone.

The value/output weights of the induction head and everything else are ordinary random
weights that learn. Gradient descent, left alone, wipes the seeded patterns out before it
uses them (the notebook's probes); pinned, the look-up is learnt in a few hundred steps.
`pin_recall_circuit` keeps the circuit while the rest trains: layer 0 stays as built (frozen
whole: with its MLP and last head free, SFT taught them to move the previous tokens between
subspaces, and the induction head then matched the wrong offsets), and the induction head's
query/key rows get no gradient.

`RecallCircuit` is the component a recipe names for this
(`model.components: [{_component_: salmonn_o1_mini.recall_circuit.RecallCircuit, window: 5}]`):
it seeds a model built fresh from a preset and pins the circuit whenever the LLM's own weights train.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

PREVIOUS_TOKEN_SCALE = 5.0  # about 0.9 of a head's attention on its offset
WRITE_SCALE = 0.1  # the written token is about as large as a token embedding
MATCH_SCALE = 2.0


def _content_dims(head_dim: int) -> torch.Tensor:
    """The head dimensions of the lowest rotary frequencies (rotate-half layout)."""
    quarter = head_dim // 4
    return torch.cat([torch.arange(quarter, 2 * quarter), torch.arange(3 * quarter, head_dim)])


def induction_slices(llm: nn.Module) -> list[tuple[nn.Parameter, torch.Tensor]]:
    """(parameter, rows) of the induction head's query and key: what training keeps besides layer 0."""
    head_dim = llm.config.hidden_size // llm.config.num_attention_heads
    second = llm.model.layers[1].self_attn
    head0 = torch.arange(head_dim)
    return [(p, head0) for p in (second.q_proj.weight, second.q_proj.bias, second.k_proj.weight, second.k_proj.bias)]


def check_window(llm: nn.Module, window: int) -> None:
    config = llm.config
    head_dim = config.hidden_size // config.num_attention_heads
    if not 1 <= window <= config.num_attention_heads:
        raise ValueError(f"recall window {window}: must be 1..{config.num_attention_heads} (layer 0's heads)")
    if config.num_hidden_layers < 2:
        raise ValueError("the recall circuit needs an LLM of at least 2 layers")
    if head_dim // 2 < window or head_dim % 4:
        raise ValueError(f"recall window {window}: too wide for head_dim {head_dim}")
    if (window + 1) * (head_dim // 2) > config.hidden_size:
        raise ValueError(f"recall window {window}: its subspaces do not fit hidden_size {config.hidden_size}")


@torch.no_grad()
def seed_recall_circuit(llm: nn.Module, window: int, generator: torch.Generator | None = None) -> None:
    """Write the circuit's attention patterns into a freshly initialised Qwen2 LLM (see module doc)."""
    check_window(llm, window)
    config = llm.config
    hidden, head_dim = config.hidden_size, config.hidden_size // config.num_attention_heads
    group = config.num_attention_heads // config.num_key_value_heads
    dims = _content_dims(head_dim)
    content = len(dims)
    basis, _ = torch.linalg.qr(torch.randn(hidden, content * (window + 1), generator=generator))
    read = basis[:, :content].T  # how every token is read, (content, hidden)
    written = [basis[:, content * (k + 1):content * (k + 2)].T for k in range(window)]  # U_k
    theta = config.rope_parameters["rope_theta"]
    frequencies = 1.0 / (theta ** (torch.arange(0, head_dim, 2).float() / head_dim))
    key_bias = torch.cat([torch.full_like(frequencies, PREVIOUS_TOKEN_SCALE), torch.zeros_like(frequencies)])
    first, second = llm.model.layers[0].self_attn, llm.model.layers[1].self_attn
    first.o_proj.weight.zero_()
    llm.model.layers[0].mlp.down_proj.weight.zero_()
    for k in range(window):
        kv = (k // group) * head_dim  # the key/value head that query head k reads
        first.k_proj.weight[kv:kv + head_dim] = 0.0
        first.k_proj.bias[kv:kv + head_dim] = key_bias
        first.v_proj.weight[kv:kv + head_dim] = 0.0
        first.v_proj.weight[kv + dims] = read
        q = k * head_dim
        angle = -(k + 1) * frequencies  # the key bias turned k + 1 positions back
        first.q_proj.weight[q:q + head_dim] = 0.0
        first.q_proj.bias[q:q + head_dim] = PREVIOUS_TOKEN_SCALE * torch.cat([torch.cos(angle), torch.sin(angle)])
        first.o_proj.weight[:, q + dims] = WRITE_SCALE * written[k].T
    for projection in (second.q_proj, second.k_proj):
        projection.weight[:head_dim] = 0.0
        projection.bias[:head_dim] = 0.0
    slot = content // window
    for k in range(window):
        coords = torch.arange(k * slot, (k + 1) * slot)
        target = dims[coords]
        second.k_proj.weight[target] = MATCH_SCALE * written[k][coords]  # token s-1-k, written by head k
        source = read if k == 0 else written[k - 1]  # token t (read directly) or t-k (written by head k-1)
        second.q_proj.weight[target] = MATCH_SCALE * source[coords]


def pin_recall_circuit(llm: nn.Module, window: int) -> list:
    """Freeze layer 0 and zero the gradient of the induction head's query/key rows. Returns the hook handles."""
    check_window(llm, window)
    llm.model.layers[0].requires_grad_(False)
    handles = []
    for parameter, rows in induction_slices(llm):
        if not parameter.requires_grad:
            continue
        mask = torch.ones_like(parameter)
        mask[rows.to(parameter.device)] = 0.0
        # The mask follows the gradient: the model may move to a GPU after pinning (accelerate prepare).
        handles.append(parameter.register_hook(lambda grad, mask=mask: grad * mask.to(grad.device)))
    return handles


@dataclass(frozen=True)
class RecallCircuit:
    """The recall circuit as a model component (`salmonn_o1.train.model_setup.ModelComponent`).

    Every recipe of a model that started with the circuit names it, not only the first: a
    checkpoint carries the seeded weights but not the instruction to keep them, and a stage that
    trains the LLM without the pin loses the circuit (see the module doc).
    """

    window: int = 5

    def initialize(self, model: nn.Module) -> None:
        """A model built fresh from a preset: write the circuit into its LLM.

        Draws from the global RNG right after the model's own initialisation, so a preset and a
        seed give the same weights on every run.
        """
        seed_recall_circuit(model.language_model, self.window)

    def prepare_for_training(self, model: nn.Module, trained_groups: Sequence[str]) -> None:
        """Pin the circuit when the LLM's own weights train (not under LoRA, whose base weights are frozen)."""
        if "llm" in trained_groups:
            pin_recall_circuit(model.language_model, self.window)
