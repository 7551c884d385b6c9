"""Two CPU processes through `accelerate launch` (gloo): the run completes and follows the
single-process loss trajectory (each process takes half of every global batch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SYNTH_TRAIN

ROOT = Path(__file__).parents[2]
OVERRIDES = ["model.source=tiny", f"data.sources=[{SYNTH_TRAIN}]",
             "optim.batch_size=4", "optim.max_steps=4", "optim.lr=1e-3", "run.save_every=2", "run.eval_every=0",
             "data.length_grouping=false"]


def train(out_dir: Path, processes: int) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
              str(ROOT / "recipes/accelerate/cpu-2proc.yaml"), "--num_processes", str(processes)]
    command = [*launch, "-m", "salmonn_o1.cli", "train", "sft", "--config", str(ROOT / "recipes/tiny-sft.yaml"),
               *OVERRIDES, f"run.out_dir={out_dir}"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    one = train(tmp_path / "one", 1)
    two = train(tmp_path / "two", 2)
    assert [m["step"] for m in two] == [1, 2, 3, 4]
    assert [m["examples"] for m in two] != []  # rank 0 logs its half
    assert [m["loss"] for m in two] == pytest.approx([m["loss"] for m in one], rel=2e-2)
    assert (tmp_path / "two" / "final" / "config.json").exists()
