"""`train grpo` end to end on the shipped miniature model (it answers AVR-Synth questions right
about four times in five, so some groups have mixed rewards): a few steps move the weights and log
rewards; the samples are the pipeline's; a stopped and resumed run ends where an uninterrupted one does."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from salmonn_o1.grpo.objective import GRPOObjective
from salmonn_o1.grpo.pipeline import PlannedQuestions, build_grpo, run_grpo
from salmonn_o1.grpo.rewards import format_ok
from salmonn_o1.inference import DEFAULT_MODEL_DIR, Question, SalmonnO1Pipeline
from salmonn_o1.train.recipe import GRPOSettings, load_recipe

torch.set_num_threads(1)

# Reasoning cut at 40 tokens left the shipped model of 2026-12-05 no room to differ: every group of
# these questions was all right or all wrong (zero advantages, zero loss). At 96 they differ.
MAX_NEW_TOKENS = 96
QUESTIONS = ("{_component_: salmonn_o1.data.synthetic.pdpo_questions.avr_synth_questions, "
             "split: train, n: 8, start: 900000}")


def grpo_recipe(out_dir, *extra):
    return load_recipe(None, [
        "stage=grpo", f"model.source={DEFAULT_MODEL_DIR}", "model.train=[aligners, llm]", "optim.lr=1e-4",
        "optim.schedule=constant", "optim.batch_size=2", "optim.max_steps=3", "run.save_every=100",
        f"run.out_dir={out_dir}", "run.tensorboard=false",
        f"grpo={{questions: {QUESTIONS}, num_generations: 4, max_new_tokens: {MAX_NEW_TOKENS}, answer_max_new_tokens: 8, "
        "beta: 0.04, temperature: 1.2}", *extra])


def weights(path):
    return load_file(str(path / "model.safetensors"))


def metrics(out_dir):
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def test_train_grpo_logs_rewards_moves_the_weights_and_resumes_exactly(tmp_path):
    whole = run_grpo(grpo_recipe(tmp_path / "whole"))
    assert whole.step == 3 and whole.final_dir is not None
    logged = metrics(tmp_path / "whole")
    assert [m["step"] for m in logged] == [1, 2, 3]
    for m in logged:
        assert all(key in m for key in ("reward", "kl", "completion_length", "generated_tokens_total", "clip_ratio"))
        assert torch.isfinite(torch.tensor(m["loss"]))
    assert any(m["reward_std"] > 0 for m in logged)  # some group had right and wrong paths
    totals = [m["generated_tokens_total"] for m in logged]
    assert totals == sorted(totals) and totals[0] == logged[0]["generated_tokens"] > 0
    assert logged[0]["kl"] == 0  # the first step's policy is the reference
    before, after = weights(DEFAULT_MODEL_DIR), weights(whole.final_dir)
    assert any(not torch.equal(before[k], after[k]) for k in before)

    parted = tmp_path / "parted"
    first = run_grpo(grpo_recipe(parted, "run.save_every=1"), stop_at_step=1)
    assert first.step == 1 and first.final_dir is None
    state = json.loads((parted / "checkpoint-1" / "objective_state.json").read_text())
    assert state["generated_tokens_total"] == metrics(parted)[-1]["generated_tokens_total"]
    resumed = run_grpo(grpo_recipe(parted, "run.save_every=1"), resume=True)
    assert resumed.step == 3
    a, b = weights(whole.final_dir), weights(resumed.final_dir)
    assert all(torch.equal(a[k], b[k]) for k in a)
    drop = ("step_s", "eta_s", "sample_s", "tokens_per_s")
    assert [{k: v for k, v in m.items() if k not in drop} for m in logged] == \
        [{k: v for k, v in m.items() if k not in drop} for m in metrics(parted)]


def test_generation_budget_stops_a_lora_run_and_exports(tmp_path):
    """LoRA: the reference is the policy with its adapters off; the budget ends the run early.
    (A budget of a few steps: the weights move only once a group has mixed rewards.)"""
    out = tmp_path / "budget"
    result = run_grpo(grpo_recipe(out, "optim.max_steps=50", "grpo.generation_budget=1500",
                                  "model.lora.enabled=true", "model.lora.r=4", "model.lora.alpha=8"))
    logged = metrics(out)
    assert result.final_dir is not None and result.step == len(logged) < 50
    assert logged[-1]["generated_tokens_total"] >= 1500 > ([0] + [m["generated_tokens_total"] for m in logged])[-2]
    assert any(m["reward_std"] > 0 for m in logged)
    assert logged[0]["kl"] == 0  # LoRA starts as a no-op: the policy is the reference
    assert (out / f"checkpoint-{result.step}" / "objective_state.json").exists()
    again = run_grpo(grpo_recipe(out, "optim.max_steps=50", "grpo.generation_budget=1500",
                                 "model.lora.enabled=true", "model.lora.r=4", "model.lora.alpha=8"), resume=True)
    assert again.step == result.step and len(metrics(out)) == len(logged)  # spent: no step more
    before, after = weights(DEFAULT_MODEL_DIR), weights(result.final_dir)  # exported with LoRA merged
    assert before.keys() == after.keys() and any(not torch.equal(before[k], after[k]) for k in before)


def test_a_group_is_what_the_pipeline_samples(tmp_path):
    """The objective's sampling is `SalmonnO1Pipeline.ask_batch`'s: same prompt, decoder and seeds, same paths."""
    trainer = build_grpo(grpo_recipe(tmp_path / "x"))
    objective: GRPOObjective = trainer.objective
    batch = objective.collate([trainer.dataset[0]])
    question, features = batch["questions"][0], batch["features"][0]
    seeds = [11, 12, 13, 14]
    group = objective.sample(trainer.model, [question], [features], seeds)[0]
    pipe = SalmonnO1Pipeline(trainer.model, trainer.processor)
    results = pipe.ask_batch([Question(features, question.question, question.options)] * 4, row_seeds=seeds,
                             do_sample=True, max_new_tokens=MAX_NEW_TOKENS, answer_max_new_tokens=8,
                             temperature=1.2)
    assert [r.tokens["reasoning"] for r in results] == [len(t) for t in group.reasoning_tokens]
    assert [r.answer_text for r in results] == group.answers
    # a path's samples are its own: the same seed beside another question gives the same path
    other = objective.collate([trainer.dataset[1]])
    pair = objective.sample(trainer.model, [question, other["questions"][0]], [features, other["features"][0]],
                            seeds + [21, 22, 23, 24])
    assert pair[0].reasoning_tokens == group.reasoning_tokens


def test_format_reward_and_settings():
    assert format_ok("1. The tone plays at 1.5 s.<end_of_step>\n2. The answer is D.<end_of_step>")
    assert not format_ok("1. The tone plays at 1.5 s.<end_of_step>\n3. The answer is D.<end_of_step>")
    assert not format_ok("1. The tone plays at 1.5 s.<end_of_step>\n2. So it is D.<end_of_step>")
    assert not format_ok("")
    from salmonn_o1.errors import RecipeError

    for bad in ({"loss_type": "ppo"}, {"num_generations": 1}, {"num_iterations": 2}, {"scale_rewards": "yes"}):
        with pytest.raises(RecipeError, match="grpo"):
            GRPOSettings(**bad)
    planned = PlannedQuestions(list("abc"), 7, 0)
    assert sorted(planned[i]["question"] for i in range(3)) == ["a", "b", "c"]
    assert [planned[i]["position"] for i in range(7)] == list(range(7))
