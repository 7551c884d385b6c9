"""pDPO's stages under `accelerate launch` (pdpo.sharding): the shares, the shard files and their merge;
two real CPU processes (gloo) write the stage files one process writes and train on them; a launch
killed midway resumes with every question exactly once."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from salmonn_o1.inference import DEFAULT_MODEL_DIR
from salmonn_o1.launch import Processes
from salmonn_o1.pdpo.folder import STAGES, finish_stage, held_ids, merge_shards
from salmonn_o1.pdpo.sharding import in_share, my_file, my_share, shard_file, shard_files
from salmonn_o1.records import RecordWriter, read_records

ROOT = Path(__file__).parents[2]
FILES = (*STAGES, "pairs_questions")


def write(path: Path, records: list[dict]) -> None:
    RecordWriter(path).write(records)


# ---- shares and merging, no model -------------------------------------------------------------------

def test_every_question_is_in_exactly_one_share_whatever_the_order():
    ids = [f"q{i}" for i in range(300)]
    for world in (1, 2, 3, 4):
        owners = [[r for r in range(world) if in_share(q, r, world)] for q in ids]
        assert all(len(o) == 1 for o in owners)
        sizes = [sum(o == [r] for o in owners) for r in range(world)]
        assert min(sizes) > 0.7 * len(ids) / world  # a hash of the id, not its last digit
        shuffled = random.Random(world).sample(ids, len(ids))
        for rank in range(world):
            mine = my_share(ids, key=lambda q: q, processes=Processes(rank, world))
            assert sorted(mine) == sorted(my_share(shuffled, key=lambda q: q, processes=Processes(rank, world)))
    records = [{"id": q} for q in ids]
    assert my_share(records) == records  # no launch: everything


def test_shard_names_and_my_file(tmp_path):
    stage = tmp_path / "pairs.jsonl"
    assert shard_file(stage, 1, 2).name == "pairs.shard-01-of-02.jsonl"
    assert my_file(stage, Processes(1, 2)) == shard_file(stage, 1, 2)
    assert my_file(stage, Processes()) == stage
    for path in (shard_file(stage, 1, 3), shard_file(stage, 0, 2), shard_file(stage, 1, 2),
                 shard_file(tmp_path / "pairs_questions.jsonl", 0, 2), tmp_path / "pairs.shard-x-of-02.jsonl"):
        path.write_text("")
    assert [p.name for p in shard_files(stage)] == [
        "pairs.shard-00-of-02.jsonl", "pairs.shard-01-of-02.jsonl", "pairs.shard-01-of-03.jsonl"]


def test_merge_appends_in_input_order_each_question_once(tmp_path):
    stage = tmp_path / "rollout.jsonl"
    write(stage, [{"id": "q3", "run": "single"}])  # an earlier one-process run
    write(shard_file(stage, 0, 2), [{"id": "q4", "run": 0}, {"id": "q1", "run": 0}])
    write(shard_file(stage, 1, 2), [{"id": "q0", "run": 1}, {"id": "q3", "run": 1}, {"id": "q9", "run": 1}])
    # a killed run with three processes had done q1 too (the process count changed since)
    write(shard_file(stage, 2, 3), [{"id": "q1", "run": 2}, {"id": "q2", "run": 2}])
    with stage.open("a") as handle:
        handle.write('{"id": "q7", "ru')  # a merge cut short by a kill mid-line
    assert held_ids(stage) == {"q0", "q1", "q2", "q3", "q4", "q9"}

    assert merge_shards(stage, ["q0", "q1", "q2", "q3", "q4", "q5"]) == 5
    merged = read_records(stage)
    assert [r["id"] for r in merged] == ["q3", "q0", "q1", "q2", "q4", "q9"]  # then ids not in the input
    assert [r["run"] for r in merged] == ["single", 1, 0, 2, 0, 1]  # one copy: the first shard's
    assert shard_files(stage) == []
    assert merge_shards(stage, ["q0"]) == 0 and read_records(stage) == merged


def test_merge_keeps_a_questions_records_together(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    write(pairs, [{"question_id": "a", "pair": 0}])
    write(shard_file(pairs, 0, 2), [{"question_id": "c", "pair": 0}, {"question_id": "c", "pair": 1},
                                    {"question_id": "a", "pair": 9}])  # a: merged before, not again
    write(shard_file(pairs, 1, 2), [{"question_id": "b", "pair": 0}, {"question_id": "b", "pair": 1}])
    merge_shards(pairs, ["a", "b", "c"], key="question_id")
    assert [(r["question_id"], r["pair"]) for r in read_records(pairs)] == [
        ("a", 0), ("b", 0), ("b", 1), ("c", 0), ("c", 1)]


def test_finish_stage_merges_leftover_shards_in_the_previous_stages_order(tmp_path):
    """One process finishing a stage a killed launch had started: its shards are merged, in the order
    of the previous stage's file, and the summary counts everything."""
    write(tmp_path / "rollout.jsonl", [{"id": q} for q in ("q2", "q0", "q1")])
    select = tmp_path / "select.jsonl"
    write(select, [{"id": "q1"}])  # this run's own
    write(shard_file(select, 1, 2), [{"id": "q0"}, {"id": "q2"}])
    summary = finish_stage(tmp_path, "select", 1, time.perf_counter(),
                           lambda n, s: {"questions": len(read_records(select)), "processed_this_run": n})
    assert [r["id"] for r in read_records(select)] == ["q1", "q2", "q0"]
    assert summary == {"questions": 3, "processed_this_run": 1}
    assert json.loads((tmp_path / "select_summary.json").read_text()) == summary


def assert_same_records(got, want, where: str = "") -> None:
    """Equal records, up to their costs (a batched call's cost is shared out among the questions it held,
    and each process batches other questions together) and float32 noise in scores and log-probs (the
    same computation in a differently shaped batch: ~1e-8 on the KL of nearly equal distributions)."""
    if isinstance(want, dict):
        assert sorted(k for k in got if not costly(k)) == sorted(k for k in want if not costly(k)), where
        for key in want:
            if not costly(key):
                assert_same_records(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (a, b) in enumerate(zip(got, want)):
            assert_same_records(a, b, f"{where}[{i}]")
    elif isinstance(want, float):
        assert math.isclose(got, want, rel_tol=1e-3, abs_tol=1e-7), (where, got, want)
    else:
        assert got == want, (where, got, want)


def costly(key: str) -> bool:
    """Keys of costs and of ratios over them (summaries), which depend on how questions were batched."""
    return "cost" in key or "per_1k" in key


def without_cost(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "cost"}


def test_one_process_finishes_a_stage_a_launch_left_with_another_count(tmp_path, pipeline, processor):
    """Shards of a killed launch (of any process count) count as done: one process does only the rest,
    then merges them; every question once, records equal to an uninterrupted run."""
    from salmonn_o1.data.synthetic.pdpo_questions import avr_synth_questions
    from salmonn_o1.pdpo.questions import PDPOQuestion
    from salmonn_o1.pdpo.rollout import run_rollout
    from salmonn_o1.train.recipe import PDPOSettings

    questions = [PDPOQuestion.from_dict(q) for q in avr_synth_questions(processor, "train", 5)]
    settings = PDPOSettings(paths=2, max_new_tokens=16, answer_max_new_tokens=1)
    run_rollout(tmp_path / "whole", pipeline, questions, settings, progress=False)
    whole = {r["id"]: r for r in read_records(tmp_path / "whole" / "rollout.jsonl")}

    out = tmp_path / "resumed"
    run_rollout(out, pipeline, questions[:1], settings, progress=False)
    stage = out / "rollout.jsonl"
    write(shard_file(stage, 2, 3), [whole[questions[3].id]])  # left by a killed 3-process launch
    write(shard_file(stage, 0, 2), [whole[questions[1].id]])  # and by a 2-process one
    summary = run_rollout(out, pipeline, questions, settings, progress=False)
    assert summary["processed_this_run"] == 2 and summary["questions"] == 5
    ids = [r["id"] for r in read_records(stage)]
    assert ids == [questions[i].id for i in (0, 2, 4, 1, 3)]  # this run's, then the shards' in input order
    # Costs aside: a batched call's cost is shared by the questions in it, which differ between runs.
    assert all(without_cost(record) == without_cost(whole[record["id"]]) for record in read_records(stage))
    assert shard_files(stage) == []


# ---- two CPU processes through `accelerate launch` --------------------------------------------------

QUESTIONS = {"_component_": "salmonn_o1.data.synthetic.pdpo_questions.avr_synth_questions",
             "split": "train", "n": 6, "start": 900008}  # 3 questions per process with two
RECIPE = {
    "stage": "pdpo",
    "model": {"source": str(DEFAULT_MODEL_DIR), "train": ["aligners", "llm"]},  # the shipped model: real pairs
    "data": {"length_grouping": False},
    "optim": {"lr": 1e-3, "schedule": "constant", "batch_size": 2, "max_steps": 2},
    "run": {"out_dir": "unused", "save_every": 2},
    "pdpo": {"questions": QUESTIONS, "paths": 4, "rollouts": 2, "top_t": 1, "max_new_tokens": 64,
             "answer_max_new_tokens": 8, "label_mode": "soft", "temperature": 1.0, "selection": "contrastive"},
}


def test_the_accelerate_command_the_docs_name_starts():
    """`accelerate launch` (the console command docs/pdpo.md and docs/training.md give) imports timm
    whenever timm is installed; lmms-eval requires timm, which cannot load once the CPU-only venv has
    dropped torchvision, so the command failed before it launched anything (the Makefile removes timm
    too). The tests below go through `accelerate.commands.launch`, which does not import it."""
    result = subprocess.run([sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--num_processes" in result.stdout


def launch_command(arguments: list[str]) -> subprocess.Popen:
    """`accelerate launch -m salmonn_o1 ARGUMENTS` (two CPU processes, gloo) in its own process group,
    so a test can stop it."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(ROOT / "recipes/accelerate/cpu-2proc.yaml"), "-m", "salmonn_o1", *arguments]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def launch(recipe: Path, out: Path) -> subprocess.Popen:
    return launch_command(["train", "pdpo", "--config", str(recipe), f"run.out_dir={out}"])


def finished(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-4000:]
    return output


def stage_records(stages: Path) -> dict[str, list[dict]]:
    return {name: read_records(stages / f"{name}.jsonl") for name in FILES}


def without_timing(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in ("seconds_this_run", "processed_this_run")}


@pytest.fixture(scope="module")
def pipeline_mini():
    from salmonn_o1.inference import SalmonnO1Pipeline

    return SalmonnO1Pipeline.from_pretrained(DEFAULT_MODEL_DIR, dtype="float32")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("recipe") / "pdpo.yaml"
    path.write_text(yaml.safe_dump(RECIPE))
    return path


@pytest.fixture(scope="module")
def single(recipe, tmp_path_factory) -> Path:
    """The stages of one process (in this one): what the launches must reproduce."""
    from salmonn_o1.pdpo.pipeline import run_stages
    from salmonn_o1.train.recipe import load_recipe

    out = tmp_path_factory.mktemp("single")
    run_stages(load_recipe(recipe, [f"run.out_dir={out}"]), progress=False)
    return out / "stages"


@pytest.mark.slow
def test_two_processes_write_the_files_of_one_and_train(recipe, single, tmp_path):
    out = tmp_path / "two"
    output = finished(launch(recipe, out))
    stages = out / "stages"
    assert_same_records(stage_records(stages), stage_records(single))  # same records, same order
    assert read_records(single / "pairs.jsonl")  # the shipped model's paths disagree on some question
    assert sorted(p.name for p in stages.glob("*.shard-*")) == []
    for stage in STAGES:
        ours, theirs = (json.loads((d / f"{stage}_summary.json").read_text()) for d in (stages, single))
        assert_same_records(without_timing(ours), without_timing(theirs), stage)
        if stage == "rollout":
            assert ours["processed_this_run"] == 6  # summed over the processes
    assert (out / "final" / "config.json").exists()
    assert "trained to step 2" in output


ROLLOUT = {"paths": 4, "max_new_tokens": 96, "answer_max_new_tokens": 8, "temperature": 1.0}


def launch_rollout(out: Path, n: int) -> subprocess.Popen:
    """`accelerate launch -m salmonn_o1 pdpo rollout` over AVR-Synth questions 900008.. (ROLLOUT's settings)."""
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in ROLLOUT.items()]
    return launch_command(["pdpo", "rollout", "--model", str(DEFAULT_MODEL_DIR), "--out", str(out), "--quiet",
                           "--synthetic-split", "train", "--start", "900008", "--n", str(n), *flags])


@pytest.mark.slow
def test_a_killed_launch_resumes_each_question_once(pipeline_mini, tmp_path):
    from salmonn_o1.pdpo.questions import load_questions
    from salmonn_o1.pdpo.rollout import run_rollout
    from salmonn_o1.train.recipe import PDPOSettings

    settings = PDPOSettings(**ROLLOUT).resolved(model=str(DEFAULT_MODEL_DIR), seed=0)  # the command's
    questions = load_questions({**QUESTIONS, "n": 10}, pipeline_mini.processor)
    single = tmp_path / "single"
    run_rollout(single, pipeline_mini, questions, settings, progress=False)
    out = tmp_path / "resumed"
    run_rollout(out, pipeline_mini, questions[:2], settings, progress=False)  # an earlier one-process run
    rollout = out / "rollout.jsonl"

    process = launch_rollout(out, 10)
    deadline = time.monotonic() + 300
    while not any(read_records(shard) for shard in shard_files(rollout)):  # both processes at work
        assert process.poll() is None, process.communicate()[0][-4000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGTERM)  # accelerate's launcher stops its workers
    process.communicate(timeout=60)
    assert process.returncode != 0
    shards = {shard.name: [r["id"] for r in read_records(shard)] for shard in shard_files(rollout)}
    assert len(read_records(rollout)) == 2 and shards  # killed midway: the new questions are in the shards
    held = 2 + sum(map(len, shards.values()))
    assert held < 10, "the launch finished before it was killed"

    output = finished(launch_rollout(out, 10))
    assert_same_records(read_records(rollout), read_records(single / "rollout.jsonl"))  # each question once, in order
    assert shard_files(rollout) == []
    summary = json.loads((out / "rollout_summary.json").read_text())
    assert summary["processed_this_run"] == 10 - held  # only the questions no file held
    assert_same_records(without_timing(summary), without_timing(json.loads((single / "rollout_summary.json").read_text())))
    assert output.count('"processed_this_run"') == 1  # the main process prints the summary
