"""The DPO loss with hard or soft labels, and the log-probabilities it needs.

With r(y) = beta * (log pi(y | x) - log pi_ref(y | x)) summed over the tokens of
a continuation y (the partition term cancels because chosen and rejected share
the prompt and the prefix), and a in [0, 1] the label of the pair:

    L = -[ a log sigma(r_c - r_r) + (1 - a) log sigma(r_r - r_c) ]

a = 1 is standard DPO; dL/d(r_c - r_r) = sigma(r_c - r_r) - a, so a soft label
0.5 asks for no preference at all and its gradient vanishes where policy and
reference agree. The reference is the frozen SFT model: its log-probs are
computed once and stored in the pair records (`precompute_reference_logps`), or
recomputed on the fly by switching the policy's LoRA adapters off.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from salmonn_o1.chat import IGNORE_INDEX
from salmonn_o1.pdpo.costs import unwrapped


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of log p(label) over the labelled positions of each row, and their count.

    logits: (B, L, V) for positions 0..L-1; labels: (B, L), IGNORE_INDEX where
    not scored. Position i's logits predict token i + 1. Returns (B,), (B,).
    """
    shift_logits = logits[:, :-1]
    shift_labels = labels[:, 1:]
    mask = shift_labels != IGNORE_INDEX
    rows = torch.arange(labels.shape[0], device=labels.device).unsqueeze(1).expand_as(shift_labels)[mask]
    # Only the scored positions go through log_softmax: (N, V), not (B, L, V).
    picked = shift_logits[mask].float().log_softmax(-1)
    token_logps = picked.gather(-1, shift_labels[mask].unsqueeze(-1)).squeeze(-1)
    sums = torch.zeros(labels.shape[0], device=logits.device, dtype=torch.float32).index_add(0, rows, token_logps)
    return sums, mask.sum(-1)


@dataclass
class DPOOutput:
    losses: torch.Tensor  # (B,)
    chosen_rewards: torch.Tensor  # (B,) beta * (logp_c - logp_ref_c)
    rejected_rewards: torch.Tensor  # (B,)


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    labels: torch.Tensor | float = 1.0,
    beta: float = 0.1,
) -> DPOOutput:
    """Per-pair soft-label DPO loss (all inputs (B,) sequence log-probs; labels a in [0, 1])."""
    chosen_rewards = beta * (policy_chosen - reference_chosen)
    rejected_rewards = beta * (policy_rejected - reference_rejected)
    margin = chosen_rewards - rejected_rewards
    a = torch.as_tensor(labels, dtype=margin.dtype, device=margin.device)
    losses = -(a * F.logsigmoid(margin) + (1 - a) * F.logsigmoid(-margin))
    return DPOOutput(losses, chosen_rewards, rejected_rewards)


def pair_forward(model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sequence log-probs of the chosen and rejected rows of a `DPOObjective` batch.

    The batch stacks B chosen rows then B rejected rows (each with its own copy
    of the media), so one ordinary forward call serves both, under DDP too.
    Returns chosen logps (B,), rejected logps (B,), chosen token counts (B,).
    """
    inputs = {k: v for k, v in batch.items() if k in MODEL_INPUTS}
    logits = model(**inputs).logits
    logps, counts = sequence_logps(logits, batch["labels"])
    pairs = batch["input_ids"].shape[0] // 2
    return logps[:pairs], logps[pairs:], counts[:pairs]


MODEL_INPUTS = ("input_ids", "attention_mask", "media")


def disable_dropout(model: nn.Module) -> int:
    """Set every dropout probability to 0; returns how many modules were changed.

    The reference log-probs are computed without dropout, so a policy trained
    with it would start from a random, non-zero margin (and a soft label 0.5
    would no longer mean "no gradient"); TRL's DPO trainer does the same.
    """
    changed = 0
    for module in model.modules():
        if isinstance(module, nn.Dropout) and module.p > 0:
            module.p = 0.0
            changed += 1
        for name in ("attention_dropout", "dropout"):  # attention modules keep a float, not a module
            value = getattr(module, name, None)
            if isinstance(value, float) and value > 0:
                setattr(module, name, 0.0)
                changed += 1
    return changed


def _adapter_layers(model: nn.Module) -> list[nn.Module]:
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:  # peft is a dependency, but the loss itself does not need it
        return []
    return [m for m in model.modules() if isinstance(m, BaseTunerLayer)]


def has_adapters(model: nn.Module) -> bool:
    return bool(_adapter_layers(unwrapped(model)))


@contextmanager
def adapters_disabled(model: nn.Module) -> Iterator[None]:
    """The base (reference) model: peft's `disable_adapter()` for a PeftModel, else
    every LoRA layer switched off by hand (LoRA on a submodule such as the LLM)."""
    inner = unwrapped(model)
    if hasattr(inner, "disable_adapter") and hasattr(inner, "peft_config"):
        with inner.disable_adapter():
            yield
        return
    layers = _adapter_layers(inner)
    if not layers:
        raise ValueError("the model has no LoRA adapters to disable: precompute reference log-probs instead "
                         "(salmonn_o1.pdpo.loss.precompute_reference_logps, or `salmonn-o1 pdpo pairs`)")
    # enable_adapters(True) would mark every adapter trainable; restore the flags exactly.
    grads = {p: p.requires_grad for m in layers for p in m.parameters()}
    was_on = [not m.disable_adapters for m in layers]
    for m in layers:
        m.enable_adapters(False)
    try:
        yield
    finally:
        for m, on in zip(layers, was_on):
            m.enable_adapters(on)
        for p, flag in grads.items():
            p.requires_grad_(flag)


@torch.no_grad()
def reference_logps(model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Chosen and rejected log-probs under the reference: the policy with its adapters off."""
    with adapters_disabled(model):
        chosen, rejected, _ = pair_forward(model, batch)
    return chosen, rejected


@torch.no_grad()
def precompute_reference_logps(
    model: nn.Module,
    objective,
    records: Sequence[dict[str, Any]],
    batch_size: int = 4,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Store `ref_logps` = {"chosen", "rejected"} in every record, computed by `model` as it is now.

    Run it with the SFT model before training (or on a LoRA policy: its adapters
    are switched off here). Records that cannot be batched (too long) get None.
    """
    from tqdm import tqdm

    from salmonn_o1.train.objective import batch_to

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    use_base = has_adapters(model)
    out = [dict(r) for r in records]
    starts = range(0, len(out), batch_size)
    try:
        for start in tqdm(starts, desc="reference log-probs", unit="batch", disable=not progress):
            chunk = out[start:start + batch_size]
            for record in chunk:
                record["ref_logps"] = None
            batch = objective.collate(chunk, use_reference=False)
            if batch is None:
                continue
            batch = batch_to(batch, device)
            if use_base:
                chosen, rejected = reference_logps(model, batch)
            else:
                chosen, rejected, _ = pair_forward(model, batch)
            for i, c, r in zip(batch["kept"], chosen.tolist(), rejected.tolist()):
                chunk[i]["ref_logps"] = {"chosen": c, "rejected": r}
    finally:
        model.train(was_training)
    return out
