"""The DPO loss: log 2 at the reference, the gradient's direction, soft labels, the SFT term,
reference log-probs (stored, or with LoRA adapters switched off), and training on toy pairs."""

import math

import pytest
import torch

from salmonn_o1.pdpo.loss import (
    adapters_disabled,
    dpo_loss,
    has_adapters,
    pair_forward,
    precompute_reference_logps,
    sequence_logps,
)
from salmonn_o1.pdpo.objective import DPOObjective
from salmonn_o1.pdpo.pairs import Continuation, PairRecord


def make_pairs(processor) -> list[dict]:
    from salmonn_o1.data.synthetic.pdpo_questions import clip_ref

    media = clip_ref("train", 0, processor)
    prefix = ["1. A buzz plays at 2 s.<end_of_step>", "\n2. The screen shows a shape.<end_of_step>"]
    texts = [("\n3. It is a green square.<end_of_step>", "\n3. It is a red triangle.<end_of_step>"),
             ("\n3. The answer is A.<end_of_step>", "\n3. The answer is D.<end_of_step>"),
             ("\n3. Green square, so A.", "\n3. No idea.")]
    records = []
    for i, (good, bad) in enumerate(texts):
        records.append(PairRecord(
            pair_id=f"toy/{i}", kind="step", question_id="toy", prompt="What was on screen when the buzz played?",
            reference="A", media=media, prefix=prefix[: 1 + i % 2], chosen=Continuation(good, i == 2, 5 / 6),
            rejected=Continuation(bad, i == 2, 1 / 6), label=1.0, step_index=1 + i % 2,
        ).to_dict())
    return records


def test_sequence_logps_by_hand():
    logits = torch.randn(1, 4, 5)
    labels = torch.tensor([[-100, 2, -100, 4]])
    logps, counts = sequence_logps(logits, labels)
    expected = logits[0, 0].log_softmax(-1)[2] + logits[0, 2].log_softmax(-1)[4]
    assert logps.item() == pytest.approx(expected.item(), rel=1e-6) and counts.tolist() == [2]


@pytest.mark.parametrize("label", [1.0, 0.7, 0.5, 0.0])
def test_loss_is_log2_when_policy_equals_reference(label):
    logps = torch.tensor([-12.0, -3.5])
    out = dpo_loss(logps, logps - 1, logps, logps - 1, torch.tensor([label, label]), beta=0.3)
    assert torch.allclose(out.losses, torch.full((2,), math.log(2)))


def test_gradient_raises_the_chosen_log_ratio():
    chosen = torch.tensor([-10.0], requires_grad=True)
    rejected = torch.tensor([-9.0], requires_grad=True)
    dpo_loss(chosen, rejected, torch.tensor([-10.0]), torch.tensor([-9.0]), 1.0, beta=0.1).losses.sum().backward()
    # Descent moves against the gradient: chosen up, rejected down, by beta * (1 - sigma(0)) each.
    assert chosen.grad.item() == pytest.approx(-0.05) and rejected.grad.item() == pytest.approx(0.05)


def test_soft_label_half_gives_zero_gradient_at_the_reference(tiny_model, processor):
    objective = DPOObjective(processor, beta=0.5, label_mode="soft", mu=0.1)
    records = [dict(r, chosen=dict(r["chosen"], value=0.5), rejected=dict(r["rejected"], value=0.5))
               for r in precompute_reference_logps(tiny_model, objective, make_pairs(processor))]
    batch = objective.collate(records)
    assert torch.all(batch["pair_labels"] == 0.5)
    loss, _ = objective.loss(tiny_model.train(), batch)
    loss.backward()
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)
    grads = [p.grad.abs().max().item() for p in tiny_model.parameters() if p.grad is not None]
    assert grads and max(grads) < 1e-6


def test_collate_shares_prompt_and_prefix_and_labels_only_the_continuation(processor):
    objective = DPOObjective(processor)
    records = make_pairs(processor)
    batch = objective.collate(records)
    pairs = len(records)
    assert batch["input_ids"].shape[0] == 2 * pairs and batch["media"].pixel_values.shape[0] > 0
    for i in range(pairs):
        chosen_labels = batch["labels"][i]
        first = int((chosen_labels != -100).nonzero()[0])
        assert torch.equal(batch["input_ids"][i, :first], batch["input_ids"][pairs + i, :first])
        assert int((batch["labels"][pairs + i] != -100).nonzero()[0]) == first
    assert batch["pair_labels"].tolist() == [1.0] * pairs


def test_soft_labels_are_recomputed_from_values(processor):
    batch = DPOObjective(processor, label_mode="soft", mu=0.2).collate(make_pairs(processor))
    expected = 1 / (1 + math.exp(-(5 / 6 - 1 / 6) / 0.2))
    assert batch["pair_labels"].tolist() == pytest.approx([expected] * 3)


def test_reward_margin_grows_over_a_few_steps(tiny_model, processor):
    objective = DPOObjective(processor, beta=0.1)
    records = precompute_reference_logps(tiny_model, objective, make_pairs(processor))
    assert all(r["ref_logps"] is not None for r in records)
    batch = objective.collate(records)
    model = tiny_model.train()
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    margins = []
    for _ in range(5):
        loss, metrics = objective.loss(model, batch)
        margins.append(metrics["reward_margin"])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert margins[0] == pytest.approx(0.0, abs=1e-5)
    assert margins[-1] > margins[0] and all(b >= a for a, b in zip(margins, margins[1:]))
    assert metrics["reward_acc"] == 1.0 and metrics["loss"] < math.log(2)


def test_one_step_raises_chosen_log_ratio_on_the_model(tiny_model, processor):
    objective = DPOObjective(processor, beta=0.1)
    records = precompute_reference_logps(tiny_model, objective, make_pairs(processor)[:1])
    batch = objective.collate(records)
    model = tiny_model.train()
    loss, _ = objective.loss(model, batch)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= 1e-2 * p.grad
        chosen, rejected, _ = pair_forward(model, batch)
    assert chosen.item() - records[0]["ref_logps"]["chosen"] > rejected.item() - records[0]["ref_logps"]["rejected"]


def test_sft_term_adds_chosen_cross_entropy(tiny_model, processor):
    records = precompute_reference_logps(tiny_model, DPOObjective(processor), make_pairs(processor))
    plain = DPOObjective(processor)
    with_sft = DPOObjective(processor, sft_weight=0.5)
    batch = plain.collate(records)
    loss, metrics = plain.loss(tiny_model, batch)
    loss_sft, metrics_sft = with_sft.loss(tiny_model, batch)
    assert metrics_sft["sft_loss"] > 0
    assert loss_sft.item() == pytest.approx(loss.item() + 0.5 * metrics_sft["sft_loss"], rel=1e-5)


def test_reference_from_disabled_lora_adapters(tiny_model, processor):
    from peft import LoraConfig, get_peft_model

    objective = DPOObjective(processor)
    records = make_pairs(processor)
    batch = objective.collate(records)  # no ref_logps in the records
    with pytest.raises(ValueError, match="reference log-probs"):
        objective.loss(tiny_model, batch)
    with torch.no_grad():
        base_chosen, base_rejected, _ = pair_forward(tiny_model, batch)
    tiny_model.language_model = get_peft_model(
        tiny_model.language_model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in tiny_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # the policy now differs from the reference
    assert has_adapters(tiny_model)
    flags = {n: p.requires_grad for n, p in tiny_model.named_parameters()}
    with torch.no_grad():
        policy_chosen, _, _ = pair_forward(tiny_model, batch)
        with adapters_disabled(tiny_model):
            ref_chosen, ref_rejected, _ = pair_forward(tiny_model, batch)
    assert not torch.allclose(policy_chosen, base_chosen)
    assert torch.allclose(ref_chosen, base_chosen, atol=1e-5) and torch.allclose(ref_rejected, base_rejected, atol=1e-5)
    assert flags == {n: p.requires_grad for n, p in tiny_model.named_parameters()}
    loss, metrics = objective.loss(tiny_model, batch)  # reference on the fly
    assert math.isfinite(loss.item()) and metrics["reward_margin"] != 0
    stored = precompute_reference_logps(tiny_model, objective, records)
    assert stored[0]["ref_logps"]["chosen"] == pytest.approx(base_chosen[0].item(), abs=1e-4)


def test_too_long_pairs_are_skipped(processor):
    objective = DPOObjective(processor, max_length=10)
    assert objective.collate(make_pairs(processor)) is None and objective.skipped == 3


@pytest.mark.parametrize("batch_size", [1, 4, 16])
def test_reference_log_probs_over_shared_prefixes_are_the_training_forwards(tiny_model, processor, tokenizer,
                                                                            batch_size):
    """The pairs stage scores pairs through the decoder (each prompt and video once); the sums are
    those of the training forward, at any batch size."""
    from salmonn_o1.decoding import Decoder
    from salmonn_o1.pdpo.reference import shared_prefix_reference_logps

    model = tiny_model.double()
    objective = DPOObjective(processor)
    records = make_pairs(processor)
    records.append({**records[0], "pair_id": "toy/empty", "chosen": {**records[0]["chosen"], "text": ""}})
    want = precompute_reference_logps(model, objective, records)
    got = shared_prefix_reference_logps(Decoder.from_tokenizer(model, tokenizer), objective, records, batch_size)
    assert [r["pair_id"] for r in got] == [r["pair_id"] for r in records]
    for g, w in zip(got, want):
        for side in ("chosen", "rejected"):
            assert g["ref_logps"][side] == pytest.approx(w["ref_logps"][side], rel=1e-6)  # float32 log-softmax
    assert got[-1]["ref_logps"]["chosen"] == 0.0  # nothing to score
    assert len({round(r["ref_logps"]["chosen"], 6) for r in got}) == len(got)  # not one value for all
