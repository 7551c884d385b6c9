"""scripts/pdpo_sharded.py: shards of questions run in worker processes merge into the same stage
records as one run over all the questions, and the merged pairs train a policy."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import yaml

from salmonn_o1.inference import DEFAULT_MODEL_DIR
from salmonn_o1.pdpo.pipeline import run_stages
from salmonn_o1.records import read_records
from salmonn_o1.train.recipe import load_recipe

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pdpo_sharded.py"
RECIPE = {
    "stage": "pdpo",
    "model": {"source": str(DEFAULT_MODEL_DIR), "train": ["aligners", "llm"]},  # real pairs
    "data": {"length_grouping": False},
    "optim": {"lr": 1e-3, "schedule": "constant", "batch_size": 2, "max_steps": 2},
    "run": {"out_dir": "unused", "save_every": 2},
    "pdpo": {"questions": {"_component_": "salmonn_o1.data.synthetic.pdpo_questions.avr_synth_questions",
                           "split": "train", "n": 4, "start": 900000}, "paths": 4, "rollouts": 2,
             "top_t": 1, "max_new_tokens": 128, "answer_max_new_tokens": 8, "label_mode": "soft",
             "temperature": 1.0, "selection": "contrastive"},
}


def records(folder: Path, stage: str) -> list[dict]:
    return read_records(folder / f"{stage}.jsonl")


def assert_same_records(got, want, where: str) -> None:
    """Equal records, up to their costs (a batched call's are shared out among the questions it held,
    and shards batch other questions together) and float32 noise in the step scores (the same
    computation in a differently shaped batch: ~1e-8 on the KL of nearly equal distributions)."""
    if isinstance(want, dict):
        assert sorted(k for k in got if k != "cost") == sorted(k for k in want if k != "cost"), where
        for key in want:
            if key != "cost":
                assert_same_records(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (a, b) in enumerate(zip(got, want)):
            assert_same_records(a, b, f"{where}[{i}]")
    elif isinstance(want, float):
        assert math.isclose(got, want, rel_tol=1e-3, abs_tol=1e-7), (where, got, want)
    else:
        assert got == want, (where, got, want)


def test_shards_merge_into_one_runs_records_and_train(tmp_path):
    recipe = tmp_path / "pdpo.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    single = tmp_path / "single"
    run_stages(load_recipe(recipe, [f"run.out_dir={single}"]), progress=False)

    sharded = tmp_path / "sharded"
    command = [sys.executable, str(SCRIPT), "--config", str(recipe), "--out", str(sharded), "--workers", "2",
               "--shard-size", "2", "--shards", "2", "--max-steps", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 shards finished" in done.stdout

    for stage in ("rollout", "select", "label", "pairs"):
        assert_same_records(records(sharded / "stages", stage), records(single / "stages", stage), stage)
    summary = json.loads((sharded / "stages" / "pairs_summary.json").read_text())
    assert summary["pairs"] == len(read_records(single / "stages" / "pairs.jsonl"))
    rollout = json.loads((sharded / "stages" / "rollout_summary.json").read_text())
    assert rollout["questions"] == 4
    assert summary["pairs"] > 0  # the shipped model's sampled paths disagree on some question
    assert (sharded / "final" / "config.json").exists()
    assert f"on {summary['pairs']} pairs" in done.stdout
