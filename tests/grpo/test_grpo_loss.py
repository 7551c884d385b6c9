"""The GRPO loss alone, on hand-computed cases (TRL's definitions, salmonn_o1.grpo.loss)."""

import math

import pytest
import torch

from salmonn_o1.grpo.loss import group_advantages, grpo_loss, k3_kl, token_logps


def test_group_advantages_by_hand():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])  # two groups of 4
    none = group_advantages(rewards, 4, "none")
    assert torch.allclose(none, torch.tensor([0.75, -0.25, -0.25, -0.25, 0.0, 0.0, 0.0, 0.0]))
    group = group_advantages(rewards, 4, "group")
    std = math.sqrt((0.75 ** 2 + 3 * 0.25 ** 2) / 3)  # unbiased, as torch.std and TRL
    assert group[0].item() == pytest.approx(0.75 / (std + 1e-4))
    assert torch.all(group[4:] == 0)  # an all-correct group teaches nothing
    batch = group_advantages(rewards, 4, "batch")
    assert batch[1].item() == pytest.approx(-0.25 / (rewards.std().item() + 1e-4))
    with pytest.raises(ValueError, match="groups"):
        group_advantages(rewards, 3)


def test_kl_is_zero_at_the_reference_and_positive_elsewhere():
    logps = torch.tensor([[-1.0, -2.0, -0.5]])
    assert torch.equal(k3_kl(logps, logps), torch.zeros_like(logps))
    ref = logps + torch.tensor([[0.3, -0.4, 1.0]])
    kl = k3_kl(logps, ref)
    assert torch.all(kl > 0)
    assert kl[0, 0].item() == pytest.approx(math.exp(0.3) - 0.3 - 1)
    out = grpo_loss(logps.requires_grad_(), torch.zeros(1), torch.ones(1, 3), ref_logps=logps.detach(), beta=0.5)
    out.loss.backward()
    assert out.kl.item() == 0 and torch.all(logps.grad == 0)  # and its gradient vanishes there


def test_zero_advantage_gives_zero_gradient():
    logps = torch.tensor([[-1.0, -0.7], [-0.2, -3.0]], requires_grad=True)
    out = grpo_loss(logps, torch.zeros(2), torch.ones(2, 2))
    out.loss.backward()
    assert out.loss.item() == 0 and torch.all(logps.grad == 0)


def test_policy_gradient_on_policy():
    """old = pi detached: ratio 1, loss -A per token, gradient -A / normaliser per token."""
    logps = torch.tensor([[-1.0, -0.7, 0.0], [-0.2, -3.0, -1.0]], requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    adv = torch.tensor([2.0, -1.0])
    out = grpo_loss(logps, adv, mask, loss_type="bnpo")
    assert out.loss.item() == pytest.approx((-2 * 2 + 1 * 3) / 5)
    out.loss.backward()
    expected = torch.tensor([[-2 / 5, -2 / 5, 0.0], [1 / 5, 1 / 5, 1 / 5]])
    assert torch.allclose(logps.grad, expected)


def test_clipping_bounds_the_ratio():
    old = torch.zeros(1, 2)
    adv = torch.tensor([1.0])
    # ratio e^1 ~ 2.72 > 1.2 with a positive advantage: clipped, the objective is 1.2 * A and flat
    logps = torch.tensor([[1.0, 1.0]], requires_grad=True)
    out = grpo_loss(logps, adv, torch.ones(1, 2), old_logps=old, epsilon=0.2, loss_type="bnpo")
    assert out.loss.item() == pytest.approx(-1.2)
    out.loss.backward()
    assert torch.all(logps.grad == 0) and out.clip_ratio.item() == 1.0
    # epsilon_high widens the upper bound only
    out = grpo_loss(logps.detach(), adv, torch.ones(1, 2), old_logps=old, epsilon=0.2, epsilon_high=0.28,
                    loss_type="bnpo")
    assert out.loss.item() == pytest.approx(-1.28)
    # a negative advantage is clipped from below: ratio e^-1 < 0.8 -> -min(r A, 0.8 A) = 0.8
    low = torch.tensor([[-1.0, -1.0]], requires_grad=True)
    out = grpo_loss(low, -adv, torch.ones(1, 2), old_logps=old, epsilon=0.2, loss_type="bnpo")
    assert out.loss.item() == pytest.approx(0.8)
    out.loss.backward()
    assert torch.all(low.grad == 0)
    # inside the trust region nothing is clipped: ratio 1.1, loss -1.1 A
    inside = torch.full((1, 2), math.log(1.1))
    assert grpo_loss(inside, adv, torch.ones(1, 2), old_logps=old).loss.item() == pytest.approx(-1.1)


def test_loss_type_normalisations():
    per_token = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])  # loss 1 on each real token
    mask = per_token.clone()
    logps = torch.zeros(2, 4)
    adv = torch.tensor([-1.0, -1.0])  # on policy: per-token loss = -A = 1
    value = {t: grpo_loss(logps, adv, mask, loss_type=t, max_completion_length=10).loss.item()
             for t in ("grpo", "bnpo", "dr_grpo", "dapo")}
    assert value["grpo"] == pytest.approx((3 / 3 + 1 / 1) / 2)  # per-sequence mean, then mean
    assert value["bnpo"] == pytest.approx(4 / 4)  # all tokens of the batch
    assert value["dr_grpo"] == pytest.approx(4 / (2 * 10))  # sequences x max completion length
    assert value["dapo"] == pytest.approx(1.0)  # the batch's tokens when num_items_in_batch is not given
    assert grpo_loss(logps, adv, mask, loss_type="dapo", num_items_in_batch=8).loss.item() == pytest.approx(0.5)
    # grpo weights a short sequence's tokens more than bnpo does
    adv = torch.tensor([-1.0, 0.0])
    assert grpo_loss(logps, adv, mask, loss_type="grpo").loss.item() == pytest.approx(0.5)
    assert grpo_loss(logps, adv, mask, loss_type="bnpo").loss.item() == pytest.approx(0.75)
    with pytest.raises(ValueError, match="loss_type"):
        grpo_loss(logps, adv, mask, loss_type="ppo")
    with pytest.raises(ValueError, match="ref_logps"):
        grpo_loss(logps, adv, mask, beta=0.1)


def test_token_logps_pick_each_token():
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 6)
    ids = torch.tensor([[2, 5, 1]])
    mask = torch.tensor([[1, 0, 1]])
    out = token_logps(logits, ids, mask, temperature=2.0)
    assert out[0, 0].item() == pytest.approx((logits[0, 0] / 2).log_softmax(-1)[2].item())
    assert out[0, 2].item() == pytest.approx((logits[0, 2] / 2).log_softmax(-1)[1].item())
    assert out[0, 1].item() == 0
