"""The GRPO loss as TRL's `GRPOTrainer` defines it, as pure functions of tensors.

For G completions o_1..o_G of one question with rewards r_i, the advantage of every
token of o_i is the group-normalised reward

    A_i = r_i - mean(r)                          scale_rewards "none" (Dr. GRPO)
    A_i = (r_i - mean(r)) / (std(r) + 1e-4)      "group" (TRL's default; std unbiased, per group)
    A_i = (r_i - mean(r)) / (std(R) + 1e-4)      "batch" (std over every reward of the batch)

and each completion token t contributes, with ratio rho = pi(o_t) / pi_old(o_t),

    l_t = -min(rho A, clip(rho, 1 - epsilon, 1 + epsilon_high) A) + beta * KL_t
    KL_t = exp(ref_t - logp_t) - (ref_t - logp_t) - 1      (Schulman's k3 estimator, >= 0)

reduced by `loss_type` exactly as TRL does: "grpo" averages each sequence's tokens then the
sequences (length-biased), "bnpo" averages all tokens of the batch, "dr_grpo" divides the
token sum by (sequences x max_completion_length), "dapo" divides it by the number of
completion tokens of the whole accumulated batch (`num_items_in_batch`; the micro-batch's
own count when not given, which is "bnpo"). With one policy update per generation
(num_iterations 1, TRL's default) pi_old is pi itself, detached: rho is 1, but its gradient
is the policy gradient A * grad log pi.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
SCALE_REWARDS = ("group", "batch", "none")
STD_EPS = 1e-4  # TRL's


def group_advantages(rewards: torch.Tensor, num_generations: int, scale_rewards: str = "group") -> torch.Tensor:
    """(B * G,) rewards, each question's G consecutive -> (B * G,) advantages (see module docstring)."""
    if scale_rewards not in SCALE_REWARDS:
        raise ValueError(f"scale_rewards must be one of {', '.join(SCALE_REWARDS)}, got {scale_rewards!r}")
    if rewards.numel() % num_generations:
        raise ValueError(f"{rewards.numel()} rewards are not groups of num_generations={num_generations}")
    grouped = rewards.view(-1, num_generations)
    advantages = (grouped - grouped.mean(dim=1, keepdim=True)).reshape(-1)
    if scale_rewards == "none":
        return advantages
    if scale_rewards == "group":
        std = grouped.std(dim=1, keepdim=True).expand_as(grouped).reshape(-1) if num_generations > 1 \
            else torch.zeros_like(rewards)
    else:
        std = rewards.std().expand_as(rewards) if rewards.numel() > 1 else torch.zeros_like(rewards)
    return advantages / (std + STD_EPS)


def k3_kl(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(pi || pi_ref): exp(ref - logp) - (ref - logp) - 1 (zero where equal)."""
    delta = ref_logps - logps
    return torch.exp(delta) - delta - 1


@dataclass
class GRPOLossOutput:
    loss: torch.Tensor  # scalar
    kl: torch.Tensor  # mean per-token KL over completion tokens (0 when beta is 0 and no reference)
    clip_ratio: torch.Tensor  # share of completion tokens whose ratio was clipped (TRL's region clip)
    per_token_loss: torch.Tensor  # (N, T), before the reduction


def grpo_loss(
    logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    old_logps: torch.Tensor | None = None,
    ref_logps: torch.Tensor | None = None,
    beta: float = 0.0,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    loss_type: str = "dapo",
    max_completion_length: int | None = None,
    num_items_in_batch: int | float | None = None,
) -> GRPOLossOutput:
    """TRL's clipped GRPO objective (module docstring). logps/old_logps/ref_logps/mask: (N, T) over
    completion positions; advantages: (N,). old_logps None: one update per generation (pi_old =
    pi detached). ref_logps is needed when beta > 0."""
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {', '.join(LOSS_TYPES)}, got {loss_type!r}")
    epsilon_high = epsilon if epsilon_high is None else epsilon_high
    mask = mask.to(logps.dtype)
    old = logps.detach() if old_logps is None else old_logps
    ratio = torch.exp(logps - old)
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + epsilon_high)
    adv = advantages.to(logps.dtype).unsqueeze(1)
    per_token = -torch.min(ratio * adv, clipped * adv)
    kl = torch.zeros_like(logps)
    if beta != 0.0:
        if ref_logps is None:
            raise ValueError("beta > 0 needs the reference log-probs (ref_logps)")
        kl = k3_kl(logps, ref_logps)
        per_token = per_token + beta * kl
    elif ref_logps is not None:
        kl = k3_kl(logps, ref_logps).detach()
    tokens = mask.sum().clamp(min=1.0)
    if loss_type == "grpo":
        loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif loss_type == "bnpo":
        loss = (per_token * mask).sum() / tokens
    elif loss_type == "dr_grpo":
        if not max_completion_length:
            raise ValueError("loss_type dr_grpo needs max_completion_length")
        loss = (per_token * mask).sum() / (per_token.shape[0] * max_completion_length)
    else:  # dapo
        normalizer = num_items_in_batch if num_items_in_batch is not None else tokens
        loss = (per_token * mask).sum() / normalizer
    low = (ratio < 1 - epsilon) & (adv < 0)
    high = (ratio > 1 + epsilon_high) & (adv > 0)
    clip_ratio = ((low | high).to(mask.dtype) * mask).sum() / tokens
    mean_kl = (kl.detach() * mask).sum() / tokens
    return GRPOLossOutput(loss, mean_kl, clip_ratio.detach(), per_token)


def token_logps(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Per-token log-probs (N, C) of `ids` where logits[:, j] (N, C, V) is the distribution of ids[:, j];
    zero where `mask` is off. Divided by the sampling temperature, as TRL does, so they are the
    log-probs of the distribution the completions were drawn from."""
    out = torch.zeros(ids.shape, dtype=torch.float32, device=logits.device)
    on = mask.bool()
    picked = (logits[on].float() / temperature).log_softmax(-1)
    values = picked.gather(-1, ids[on].unsqueeze(-1)).squeeze(-1)
    return out.masked_scatter(on, values)
