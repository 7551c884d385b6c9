"""End to end on AVR-Synth items with the tiny model: rollout -> select -> label -> pairs,
resuming per stage; the CLI; Major@k."""

import json

import pytest

from salmonn_o1.data.synthetic.pdpo_questions import avr_synth_questions
from salmonn_o1.errors import DataError
from salmonn_o1.pdpo.folder import STAGES
from salmonn_o1.pdpo.label import run_label
from salmonn_o1.pdpo.objective import DPOObjective
from salmonn_o1.pdpo.pairing import run_pairs
from salmonn_o1.pdpo.questions import PDPOQuestion
from salmonn_o1.pdpo.rollout import run_rollout
from salmonn_o1.pdpo.select import run_select
from salmonn_o1.train.recipe import PDPOSettings

SETTINGS = dict(paths=4, rollouts=2, top_t=2, max_new_tokens=24, answer_max_new_tokens=1, max_step_tokens=8)


def lines(path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def synthetic_questions(split, n, processor, start=0):
    return [PDPOQuestion.from_dict(q) for q in avr_synth_questions(processor, split, n, start)]


def run_all(out, pipeline, questions, settings):
    return [run_rollout(out, pipeline, questions, settings, progress=False),
            run_select(out, pipeline, settings, progress=False),
            run_label(out, pipeline, settings, progress=False),
            run_pairs(out, pipeline, settings, progress=False)]


def test_stages_end_to_end_with_resume(tmp_path, pipeline, processor):
    questions = synthetic_questions("train", 3, processor)
    settings = PDPOSettings(**SETTINGS)
    first = run_all(tmp_path, pipeline, questions[:2], settings)
    assert [s["processed_this_run"] for s in first][0] == 2
    rollout, select, label, pairs = run_all(tmp_path, pipeline, questions, settings)
    assert rollout["processed_this_run"] == 1 and rollout["questions"] == 3
    assert select["processed_this_run"] <= 1 and label["processed_this_run"] == select["processed_this_run"]
    assert rollout["kept"] >= 2 and select["questions"] == rollout["kept"]
    assert select["selected_steps"] <= 2 * select["paths"]
    assert label["steps"] == select["selected_steps"] and label["cost"]["generated_tokens"] > 0
    assert pairs["pairs"] == pairs["step_pairs"] + pairs["path_pairs"] > 0
    assert pairs["step_pairs"] == label["original_better"] + label["alternative_better"]
    assert pairs["with_reference_logps"] == pairs["pairs"]
    assert pairs["cost_total"]["forward_passes"] == sum(
        s["cost"]["forward_passes"] for s in (rollout, select, label)) + pairs["cost_by_stage"]["pairs"]["forward_passes"]

    files = {stage: tmp_path / f"{stage}.jsonl" for stage in STAGES}
    counts = {stage: lines(path) for stage, path in files.items()}
    again = run_all(tmp_path, pipeline, questions, settings)  # everything done: nothing is redone
    assert [s["processed_this_run"] for s in again] == [0, 0, 0, 0]
    assert {stage: lines(path) for stage, path in files.items()} == counts
    assert again[0]["cost"] == rollout["cost"]

    # Records a person can read, and that the objective trains on.
    path_record = json.loads(files["rollout"].read_text().splitlines()[0])
    assert {"question", "options", "reference", "paths", "kept", "cost"} <= set(path_record)
    assert {"reasoning", "steps", "answer", "correct"} <= set(path_record["paths"][0])
    for line in files["select"].read_text().splitlines():
        for p in json.loads(line)["paths"]:  # the top-T scores of each path were selected
            assert len(p["scores"]) == len(p["segments"]) and len(p["selected"]) == min(2, len(p["segments"]))
            others = [s for k, s in enumerate(p["scores"]) if k not in p["selected"]]
            assert min(p["scores"][k] for k in p["selected"]) >= max(others, default=0.0)
    pair_records = [json.loads(line) for line in files["pairs"].read_text().splitlines()]
    batch = DPOObjective(processor).collate(pair_records)
    assert batch is not None and batch["input_ids"].shape[0] == 2 * len(pair_records)
    assert "ref_chosen_logps" in batch


def test_interrupted_write_is_cut_and_settings_are_checked(tmp_path, pipeline, processor):
    questions = synthetic_questions("train", 2, processor, start=5)
    settings = PDPOSettings(**SETTINGS, selection="random")
    run_rollout(tmp_path, pipeline, questions[:1], settings, progress=False)
    path = tmp_path / "rollout.jsonl"
    path.write_text(path.read_text() + '{"id": "avr-train-000006", "paths": [')  # a crash mid-line
    summary = run_rollout(tmp_path, pipeline, questions, settings, progress=False)
    assert summary["questions"] == 2 and lines(path) == 2
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == [q.id for q in questions]
    with pytest.raises(DataError, match="paths=4"):
        run_rollout(tmp_path, pipeline, questions, PDPOSettings(**{**SETTINGS, "paths": 5}), progress=False)
    # Random selection needs no model at all.
    selected = run_select(tmp_path, None, settings, progress=False)
    assert selected["cost"]["forward_passes"] == 0
    with pytest.raises(DataError, match="needs the model"):
        run_label(tmp_path, None, settings, progress=False)


def test_cli_runs_the_stages(tmp_path, capsys):
    from salmonn_o1.cli import main

    common = ["--model", "tiny", "--device", "cpu", "--out", str(tmp_path), "--paths", "2", "--rollouts", "1",
              "--max-new-tokens", "6", "--answer-max-new-tokens", "1", "--max-step-tokens", "3", "--quiet"]
    assert main(["pdpo", "rollout", "--synthetic-split", "train", "--n", "1", *common]) == 0
    assert main(["pdpo", "select", "--selection", "all", *common]) == 0
    assert main(["pdpo", "label", "--selection", "all", *common]) == 0
    assert main(["pdpo", "pairs", "--no-ref-logps", "--label-mode", "soft", *common]) == 0
    assert (tmp_path / "pairs_summary.json").exists() and (tmp_path / "label_summary.json").exists()
    printed = capsys.readouterr().out
    assert '"pairs_per_1k_generated_tokens"' in printed


def test_majority_vote():
    from salmonn_o1.inference import majority_vote

    assert majority_vote(["B", "A", None, "A", "B"]) == ("B", {"B": 2, "A": 2})
    assert majority_vote(["C", None, "C", "A"]) == ("C", {"C": 2, "A": 1})
    assert majority_vote([None, None]) == (None, {})


def test_ask_majority_votes_over_k_sampled_paths(pipeline, synth_features):
    result = pipeline.ask_majority(synth_features, "What was on screen?", ["red", "green", "blue", "white"], k=5,
                                   max_new_tokens=8, answer_max_new_tokens=1, seed=0)
    assert len(result.results) == 5 and sum(result.counts.values()) <= 5
    answers = [r.answer for r in result.results]
    assert result.answer is None or result.counts[result.answer] == max(result.counts.values())
    assert result.answer in answers


def test_media_refs_name_their_loader_and_old_refs_still_load(processor):
    from salmonn_o1.data.synthetic.pdpo_questions import clip_ref
    from salmonn_o1.pdpo.media import load_features

    ref = clip_ref("train", 4, processor)
    assert ref["_component_"] == "salmonn_o1.data.synthetic.pdpo_questions.render_clip"
    old = {"synthetic": "train", "index": 4, "fps": ref["fps"], "size": ref["size"]}  # stage folders before
    new_features, old_features = load_features(ref, processor), load_features(old, processor)
    assert new_features.pixel_values.equal(old_features.pixel_values)
    assert new_features.input_features.equal(old_features.input_features)
