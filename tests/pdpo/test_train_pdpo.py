"""`train pdpo` end to end: a briefly SFT-trained tiny model -> stages -> DPO steps that move the
policy towards the chosen continuations; rerunning resumes instead of redoing."""

from __future__ import annotations

import json

import pytest
import torch

from salmonn_o1.checkpoints import load_model_and_processor
from salmonn_o1.pdpo.pipeline import PlannedPairs, run_pdpo
from salmonn_o1.train.recipe import load_recipe
from salmonn_o1.train.sft import run_sft


@pytest.fixture(scope="module")
def sft_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("sft")
    synth = "{component: {_component_: salmonn_o1.data.synthetic.sft_source.SynthSource, split: train, frame_size: 32}}"
    recipe = load_recipe(None, ["model.source=tiny", f"data.sources=[{synth}]",
                                "optim.lr=5e-3", "optim.batch_size=4", "optim.max_steps=40", "optim.warmup_steps=5",
                                "data.cache_media=16", "data.direct_fraction=0", f"run.out_dir={out}",
                                "run.save_every=1000"])
    # 40 steps over 160 synthetic items: steps and answers are well formed, the content often wrong
    return run_sft(recipe).final_dir


def pdpo_recipe(source, out_dir, *extra):
    return load_recipe(None, [
        "stage=pdpo", f"model.source={source}", "model.train=[aligners, llm]", "optim.lr=1e-3",
        "optim.schedule=constant", "optim.batch_size=2", "optim.max_steps=3", "run.save_every=3",
        f"run.out_dir={out_dir}", "data.length_grouping=false",
        "pdpo={questions: {_component_: salmonn_o1.data.synthetic.pdpo_questions.avr_synth_questions, "
        "split: train, n: 8}, paths: 4, rollouts: 2, top_t: 1, "
        "max_new_tokens: 120, answer_max_new_tokens: 8, label_mode: soft, beta: 0.1, temperature: 1.5}",
        *extra])


def test_train_pdpo_runs_stages_then_dpo(tmp_path, sft_model):
    out = tmp_path / "pdpo"
    result = run_pdpo(pdpo_recipe(sft_model, out), progress=False)
    for stage in ("rollout", "select", "label", "pairs"):
        assert (out / "stages" / f"{stage}_summary.json").exists(), stage
    pairs = [json.loads(line) for line in (out / "stages" / "pairs.jsonl").read_text().splitlines()]
    assert pairs and all(p["ref_logps"] is not None for p in pairs)
    assert result.step == 3 and result.final_dir is not None
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all("loss" in m and "reward_margin" in m for m in metrics), metrics[0]
    before = load_model_and_processor(sft_model)[0].state_dict()
    after = load_model_and_processor(result.final_dir)[0].state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)

    rollout_lines = (out / "stages" / "rollout.jsonl").read_text()
    again = run_pdpo(pdpo_recipe(sft_model, out), resume=True, progress=False)
    assert again.step == 3
    assert (out / "stages" / "rollout.jsonl").read_text() == rollout_lines  # stages were not redone


def test_planned_pairs_cycle_in_seeded_epochs():
    pairs = [{"question_id": f"q{i}", "kind": "step"} for i in range(3)]
    planned = PlannedPairs(pairs, total=7, seed=0)
    ids = [planned[i]["question_id"] for i in range(7)]
    assert sorted(ids[:3]) == ["q0", "q1", "q2"] and sorted(ids[3:6]) == ["q0", "q1", "q2"]
    assert [PlannedPairs(pairs, 7, 0)[i] for i in range(7)] == [planned[i] for i in range(7)]
    with pytest.raises(Exception, match="no preference pairs"):
        PlannedPairs([], 4, 0)
