"""The built-in recall circuit: where it attends before training, that training keeps it, that it learns."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from salmonn_o1.train import model_setup
from salmonn_o1.train.model_setup import build_model
from salmonn_o1.train.recipe import LoraRecipe, ModelRecipe, load_recipe
from salmonn_o1_mini.recall_circuit import (
    RecallCircuit,
    induction_slices,
    pin_recall_circuit,
    seed_recall_circuit,
)

KEYS, VALUES, BAR = list(range(10, 46)), list(range(50, 170)), 5


def small_llm(layers: int = 2, kv_heads: int = 2, seed: int = 0) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=200, hidden_size=128, intermediate_size=256, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=kv_heads, tie_word_embeddings=False,
                         rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
                         attn_implementation="eager")
    return Qwen2ForCausalLM(config)


def recall_sequence(rng: random.Random) -> tuple[list[int], list[int]]:
    """Facts "key value", a bar, the keys again: (ids, labels), labels = the values asked for."""
    count = rng.randint(4, 8)
    keys = rng.sample(KEYS, count)
    values = [rng.choice(VALUES) for _ in keys]
    ids = [token for pair in zip(keys, values) for token in pair] + [BAR]
    labels = [-100] * len(ids)
    for index in rng.sample(range(count), count):
        ids += [keys[index], values[index]]
        labels += [-100, values[index]]
    return ids, labels


def attention_hits(llm: Qwen2ForCausalLM, sequences: int = 20) -> float:
    """Share of queries on which layer 1 head 0 attends most to the asked key's value."""
    rng, hits, total = random.Random(1), 0, 0
    for _ in range(sequences):
        ids, _ = recall_sequence(rng)
        with torch.no_grad():
            attention = llm(input_ids=torch.tensor([ids]), output_attentions=True).attentions[1][0, 0]
        for position in range(ids.index(BAR) + 1, len(ids), 2):
            hits += int(attention[position].argmax()) == ids.index(ids[position]) + 1
            total += 1
    return hits / total


def test_seeded_induction_head_attends_to_the_asked_fact_before_any_training():
    seeded = small_llm()
    seed_recall_circuit(seeded, window=1)
    assert attention_hits(seeded) > 0.75
    assert attention_hits(small_llm()) < 0.3  # a random head does not


def test_a_wider_window_matches_the_tokens_before_the_value():
    """Window 3 on a repeated random sequence: in the second copy, attend to the token after the same 3."""
    llm = small_llm()
    seed_recall_circuit(llm, window=3)
    rng = random.Random(2)
    hits = total = 0
    for _ in range(10):
        first = rng.sample(range(10, 190), 40)
        ids = first + first
        with torch.no_grad():
            attention = llm(input_ids=torch.tensor([ids]), output_attentions=True).attentions[1][0, 0]
        for position in range(43, 79):
            hits += int(attention[position].argmax()) == position - 39
            total += 1
    assert hits / total > 0.75


def test_pinned_slices_stay_while_the_rest_of_the_llm_learns():
    llm = small_llm()
    seed_recall_circuit(llm, window=2)
    before = [(parameter, rows, parameter.detach()[rows].clone()) for parameter, rows in induction_slices(llm)]
    whole_before = {name: p.detach().clone() for name, p in llm.named_parameters()}
    pin_recall_circuit(llm, window=2)
    optimizer = torch.optim.AdamW(llm.parameters(), lr=1e-2, weight_decay=0.0)
    ids = torch.randint(0, 200, (4, 24))
    for _ in range(3):
        loss = llm(input_ids=ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for parameter, rows, values in before:
        assert torch.equal(parameter.detach()[rows], values)
    changed = [name for name, p in llm.named_parameters() if not torch.equal(p.detach(), whole_before[name])]
    assert not [name for name in changed if name.startswith("model.layers.0.")]  # layer 0 stays as built
    assert {"model.layers.1.self_attn.v_proj.weight", "model.layers.1.self_attn.q_proj.weight",
            "model.embed_tokens.weight"} <= set(changed)
    query = llm.model.layers[1].self_attn.q_proj.weight
    assert not torch.equal(query[32:], whole_before["model.layers.1.self_attn.q_proj.weight"][32:])  # other heads


def test_seeded_and_pinned_llm_learns_recall_where_a_plain_one_plateaus():
    """The reason the circuit exists: 120 steps of recall training (the mini notebook has the long runs)."""
    def train(seeded: bool) -> float:
        llm = small_llm(seed=3)
        if seeded:
            seed_recall_circuit(llm, window=1)
            pin_recall_circuit(llm, window=1)
        optimizer = torch.optim.AdamW(llm.parameters(), lr=1e-3, weight_decay=0.01)
        rng = random.Random(0)
        for step in range(1, 121):
            for group in optimizer.param_groups:
                group["lr"] = 1e-3 * min(1.0, step / 20)
            rows = [recall_sequence(rng) for _ in range(16)]
            length = max(len(ids) for ids, _ in rows)
            ids = torch.tensor([r[0] + [0] * (length - len(r[0])) for r in rows])
            labels = torch.tensor([r[1] + [-100] * (length - len(r[1])) for r in rows])
            loss = llm(input_ids=ids, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        rng, right, total = random.Random(9), 0, 0
        for _ in range(16):
            ids, labels = recall_sequence(rng)
            with torch.no_grad():
                predicted = llm(input_ids=torch.tensor([ids])).logits[0, :-1].argmax(-1)
            for position, label in enumerate(labels[1:]):
                if label != -100:
                    right += int(predicted[position]) == label
                    total += 1
        return right / total

    assert train(seeded=True) > 0.8
    assert train(seeded=False) < 0.6  # the no-recall guess among the unasked values is about 0.4


CIRCUIT = {"_component_": "salmonn_o1_mini.recall_circuit.RecallCircuit", "window": 5}


def test_the_mini_preset_is_built_seeded_and_its_training_keeps_the_circuit():
    model, _ = build_model(ModelRecipe(source="mini", train=["llm"], components=[CIRCUIT]))
    llm = model.language_model
    assert not hasattr(model.config, "recall_circuit_window")  # a recipe component, not a config field
    assert llm.config.rope_parameters["rope_theta"] == 1_000_000.0
    first = llm.model.layers[0].self_attn
    assert torch.count_nonzero(first.k_proj.weight) == 0  # both key heads are positional
    assert not any(p.requires_grad for p in llm.model.layers[0].parameters())
    second = llm.model.layers[1].self_attn.q_proj.weight
    snapshot = second.detach().clone()
    optimizer = torch.optim.SGD([p for p in llm.parameters() if p.requires_grad], lr=1.0)
    ids = torch.randint(10, 600, (2, 16))
    llm(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    head_dim = llm.config.hidden_size // llm.config.num_attention_heads
    assert torch.equal(second[:head_dim], snapshot[:head_dim])
    assert not torch.equal(second[head_dim:], snapshot[head_dim:])  # the other heads learn


@pytest.mark.parametrize("window", [0, 7])
def test_a_window_the_llm_cannot_hold_is_refused(window):
    with pytest.raises(ValueError, match="recall window"):
        seed_recall_circuit(small_llm(), window=window)


def test_without_the_component_the_mini_preset_is_a_plain_llm_and_trains_unpinned():
    model, _ = build_model(ModelRecipe(source="mini", train=["llm"]))
    llm = model.language_model
    assert torch.count_nonzero(llm.model.layers[0].self_attn.k_proj.weight) > 0
    assert all(p.requires_grad for p in llm.model.layers[0].parameters())


def test_every_mini_recipe_names_the_circuit_that_its_preset_carried_before():
    """The `mini` preset used to switch the circuit on for every run of its chain; each recipe now asks."""
    recipes = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("mini-*.yaml"))
    assert len(recipes) >= 11
    for path in recipes:
        assert load_recipe(path).model.components == [CIRCUIT], path.name


def test_a_checkpoint_is_not_reseeded_and_lora_is_not_pinned(tmp_path, monkeypatch):
    """initialize runs on a fresh preset only; under LoRA the LLM's own weights do not train, so no pin."""
    calls = []

    class Spy(RecallCircuit):
        def initialize(self, model):
            calls.append("initialize")
            super().initialize(model)

        def prepare_for_training(self, model, trained_groups):
            calls.append(tuple(trained_groups))
            super().prepare_for_training(model, trained_groups)

    spy = Spy(window=1)
    monkeypatch.setattr(model_setup, "model_components", lambda recipe: [spy])
    model, processor = build_model(ModelRecipe(source="tiny", train=["llm"], components=[CIRCUIT]))
    assert calls == ["initialize", ("llm",)]
    assert not any(p.requires_grad for p in model.language_model.model.layers[0].parameters())
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    calls.clear()
    build_model(ModelRecipe(source=str(tmp_path), train=["aligners", "llm"], components=[CIRCUIT]))
    assert calls == [("aligners", "llm")]
    calls.clear()
    lora = build_model(ModelRecipe(source="tiny", train=["aligners", "llm"], components=[CIRCUIT],
                                   lora=LoraRecipe(enabled=True, r=4, alpha=8)))[0]
    assert calls == ["initialize", ("aligners",)]
    assert any(p.requires_grad for n, p in lora.language_model.named_parameters() if "layers.0." in n)
