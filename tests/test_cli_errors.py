"""Bad input and a hostile environment give one clear line (exit 2), never a traceback.

Each case runs the real `salmonn-o1` in a subprocess (its stderr is what a user sees) on real
files: a saved tiny checkpoint, a real training run's checkpoint, a real mp4. A read-only
folder is a chmod'ed one (skipped as root, where chmod does not stop writes); a full disk is
/dev/full, which accepts an open and fails every write with ENOSPC.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "src" / "salmonn_o1" / "assets" / "sample" / "clip.mp4"
ITEM = json.loads((ROOT / "src" / "salmonn_o1" / "assets" / "sample" / "item.json").read_text())
TINY_RECIPE = ROOT / "recipes" / "tiny-sft.yaml"
ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0


def salmonn(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 240):
    """`salmonn-o1 ARGS` as a user runs it; returns the finished process (text output)."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "salmonn_o1.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or ROOT, env=environment, timeout=timeout)


def assert_one_line_error(process, *fragments: str) -> str:
    """Exit 2, no traceback, and an error line that contains every fragment."""
    assert "Traceback" not in process.stderr, process.stderr
    assert process.returncode == 2, (process.returncode, process.stderr)
    errors = [line for line in process.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1, process.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """An items file (the bundled clip's item), predictions for it, and broken variants of both."""
    root = tmp_path_factory.mktemp("cli")
    record = {"id": "x1", "video": str(CLIP), "question": ITEM["question"], "options": ITEM["options"],
              "answer": ITEM["answer"]}
    paths = {name: root / name for name in ("items.jsonl", "preds.jsonl", "latin1.jsonl", "noid.jsonl")}
    paths["items.jsonl"].write_text(json.dumps(record) + "\n")
    paths["preds.jsonl"].write_text(json.dumps({"id": "x1", "answer": "A"}) + "\n")
    paths["latin1.jsonl"].write_bytes(json.dumps({**record, "question": "café?"}, ensure_ascii=False)
                                      .encode("latin-1") + b"\n")
    paths["noid.jsonl"].write_text(json.dumps({"answer": "A"}) + "\n")
    paths["root"] = root
    return paths


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """A saved tiny checkpoint, and copies without config.json and without tokenizer.json."""
    from salmonn_o1.checkpoints import load_model_and_processor, save_model_and_processor

    root = tmp_path_factory.mktemp("checkpoints")
    model, processor = load_model_and_processor("tiny")
    whole = save_model_and_processor(model, processor, root / "whole")
    made = {"whole": whole}
    for name, missing in (("no-config", "config.json"), ("no-tokenizer", "tokenizer.json")):
        shutil.copytree(whole, root / name)
        (root / name / missing).unlink()
        made[name] = root / name
    return made


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A real one-step `train sft` run of the tiny recipe (its checkpoint-1 is what resume reads)."""
    out = tmp_path_factory.mktemp("run") / "run"
    process = salmonn("train", "sft", "--config", TINY_RECIPE, "optim.max_steps=1", "data.dev=null",
                      f"run.out_dir={out}")
    assert process.returncode == 0, process.stderr
    assert (out / "checkpoint-1" / "state" / "optimizer.bin").is_file()
    return out


def copy_run(run: Path, tmp_path: Path) -> Path:
    """A copy of the run without its final model, so resuming has steps left to train."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    shutil.rmtree(copy / "final", ignore_errors=True)
    return copy


# ---------------------------------------------------------------- outputs that cannot be written
def test_eval_report_on_a_full_disk(files):
    process = salmonn("eval", "--items", files["items.jsonl"], "--predictions", files["preds.jsonl"],
                      "--out", "/dev/full")
    assert_one_line_error(process, "cannot write /dev/full", "No space left on device")


def test_eval_report_where_a_file_stands_in_for_the_folder(files):
    process = salmonn("eval", "--items", files["items.jsonl"], "--predictions", files["preds.jsonl"],
                      "--out", files["items.jsonl"] / "report.md")
    assert_one_line_error(process, "cannot write", str(files["items.jsonl"]), "a file stands where a folder")


@pytest.mark.skipif(ROOT_USER, reason="root writes into read-only folders; chmod cannot simulate one")
def test_outputs_in_a_read_only_folder(files, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        process = salmonn("eval", "--items", files["items.jsonl"], "--predictions", files["preds.jsonl"],
                          "--out", locked / "report.md")
        assert_one_line_error(process, f"cannot write {locked / 'report.md'}", "Permission denied")
        process = salmonn("train", "sft", "--config", TINY_RECIPE, f"run.out_dir={locked / 'run'}")
        assert_one_line_error(process, "cannot write run.out_dir", "Permission denied")
        process = salmonn("pdpo", "rollout", "--out", locked / "stages", "--data", files["items.jsonl"])
        assert_one_line_error(process, "cannot write --out folder", "Permission denied")
    finally:
        locked.chmod(0o755)


def test_train_run_dir_under_a_file_fails_before_the_model_is_built(files):
    started = time.perf_counter()
    process = salmonn("train", "sft", "--config", TINY_RECIPE, f"run.out_dir={files['items.jsonl'] / 'run'}")
    assert_one_line_error(process, "cannot write run.out_dir", "a file stands where a folder")
    assert time.perf_counter() - started < 30


def test_convert_destination_under_a_file(files, checkpoints):
    process = salmonn("convert", checkpoints["whole"], files["items.jsonl"] / "converted")
    # Either refusal names a real problem in one line; the point is no traceback.
    assert_one_line_error(process)
    release = tiny_release_layout_source(files["root"])
    process = salmonn("convert", release, files["items.jsonl"] / "converted")
    assert_one_line_error(process, "cannot write", "a file stands where a folder")


def tiny_release_layout_source(root: Path) -> Path:
    """A tiny model of ours that the released layout can express (it interleaves audio as the release)."""
    import torch

    from salmonn_o1.checkpoints import save_model_and_processor
    from salmonn_o1.config import tiny_config
    from salmonn_o1.model import SalmonnO1ForConditionalGeneration
    from salmonn_o1.processor import SalmonnO1Processor
    from salmonn_o1.tokenizer import load_tokenizer

    torch.manual_seed(0)
    config = tiny_config(interleave_mode="release")
    return save_model_and_processor(SalmonnO1ForConditionalGeneration(config),
                                    SalmonnO1Processor(load_tokenizer(), config), root / "release-able")


def test_pdpo_out_under_a_file(files):
    process = salmonn("pdpo", "rollout", "--out", files["items.jsonl"] / "stages", "--data", files["items.jsonl"])
    assert_one_line_error(process, "cannot write --out folder", "a file stands where a folder")


# ---------------------------------------------------------------- input files
@pytest.mark.parametrize("which", ["items", "predictions"])
def test_a_file_that_is_not_utf8(files, which):
    items = files["latin1.jsonl"] if which == "items" else files["items.jsonl"]
    predictions = files["latin1.jsonl"] if which == "predictions" else files["preds.jsonl"]
    process = salmonn("eval", "--items", items, "--predictions", predictions)
    assert_one_line_error(process, f"{files['latin1.jsonl']} line 1", "not UTF-8", "0xe9")


def test_infer_reads_a_non_utf8_items_file_before_loading_a_model(files):
    process = salmonn("infer", "--data", files["latin1.jsonl"], "--out", files["root"] / "never.jsonl")
    assert_one_line_error(process, "line 1: not UTF-8")
    assert not (files["root"] / "never.jsonl").exists()


def test_a_prediction_without_an_id(files):
    process = salmonn("eval", "--items", files["items.jsonl"], "--predictions", files["noid.jsonl"])
    assert_one_line_error(process, f"{files['noid.jsonl']} line 1", "missing field 'id'")


def test_a_directory_passed_as_data(files):
    process = salmonn("infer", "--data", files["root"], "--out", files["root"] / "never.jsonl")
    assert_one_line_error(process, str(files["root"]), "is a directory, not a JSONL file")


def test_eval_plot_in_a_format_matplotlib_cannot_write(files):
    process = salmonn("eval", "--items", files["items.jsonl"], "--predictions", files["preds.jsonl"],
                      "--plot", files["root"] / "chart.mp4")
    assert_one_line_error(process, "--plot", ".png", "not .mp4")
    assert "| **overall** |" not in process.stdout  # refused before the report, not after it


# ---------------------------------------------------------------- options checked before the model loads
@pytest.mark.parametrize("option, value, message", [
    ("--max-new-tokens", "0", "must be >= 1, got 0"),
    ("--temperature", "-1", "must be > 0, got -1"),
    ("--top-p", "0", "must be in (0, 1], got 0"),
])
def test_generation_options_out_of_range(option, value, message):
    started = time.perf_counter()
    process = salmonn("ask", CLIP, "What is shown?", option, value)
    assert_one_line_error(process, f"argument {option}", message)
    assert "Loading weights" not in process.stderr
    assert time.perf_counter() - started < 30


def test_negative_num_workers(files):
    process = salmonn("infer", "--data", files["items.jsonl"], "--out", files["root"] / "never.jsonl",
                      "--num-workers", "-1")
    assert_one_line_error(process, "argument --num-workers", "must be >= 0, got -1")


def test_a_recipe_value_out_of_range():
    process = salmonn("train", "sft", "--config", TINY_RECIPE, "optim.max_steps=-1")
    assert_one_line_error(process, "optim.max_steps: -1 is out of range", ">= 1")


# ---------------------------------------------------------------- checkpoints
def test_a_model_dir_without_config_json(checkpoints):
    process = salmonn("ask", CLIP, "What is shown?", "--model", checkpoints["no-config"])
    assert_one_line_error(process, str(checkpoints["no-config"]), "config.json is missing")


def test_a_model_dir_without_tokenizer_json(checkpoints):
    process = salmonn("ask", CLIP, "What is shown?", "--model", checkpoints["no-tokenizer"])
    assert_one_line_error(process, str(checkpoints["no-tokenizer"]), "tokenizer is missing", "tokenizer.json")


def test_a_mistyped_local_model_path_fails_at_once_without_a_hub(tmp_path):
    (tmp_path / "runs").mkdir()  # `runs/fnal` looks like a hub id, but runs/ is a local folder
    for model in ("runs/fnal", "./nowhere", "a/b/c"):
        started = time.perf_counter()
        process = salmonn("ask", CLIP, "What is shown?", "--model", model, cwd=tmp_path,
                          env={"HF_HUB_OFFLINE": "0"})
        assert_one_line_error(process, model, "no such checkpoint directory")
        assert time.perf_counter() - started < 30, model  # hub retries take far longer


def test_offline_mode_is_respected_for_a_hub_like_name(tmp_path):
    started = time.perf_counter()
    process = salmonn("ask", CLIP, "What is shown?", "--model", "nobody-here/no-such-model", cwd=tmp_path,
                      env={"HF_HUB_OFFLINE": "1"})
    assert_one_line_error(process, "nobody-here/no-such-model")
    assert time.perf_counter() - started < 30


# ---------------------------------------------------------------- resuming a run
def test_resume_with_a_truncated_optimizer_state(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path)
    optimizer = run / "checkpoint-1" / "state" / "optimizer.bin"
    optimizer.write_bytes(optimizer.read_bytes()[:100])
    process = salmonn("train", "sft", "--config", TINY_RECIPE, "--resume", "optim.max_steps=2", "data.dev=null",
                      f"run.out_dir={run}")
    assert_one_line_error(process, str(optimizer), "truncated or damaged")


def test_resume_with_an_invalid_trainer_state(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path)
    (run / "checkpoint-1" / "trainer_state.json").write_text('{"step": ')
    process = salmonn("train", "sft", "--config", TINY_RECIPE, "--resume", "optim.max_steps=2", "data.dev=null",
                      f"run.out_dir={run}")
    assert_one_line_error(process, str(run / "checkpoint-1" / "trainer_state.json"), "unreadable")


def test_a_checkpoint_best_folder_is_left_alone_and_resume_takes_the_override(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path)
    shutil.copytree(run / "checkpoint-1", run / "checkpoint-best")
    process = salmonn("train", "sft", "--config", TINY_RECIPE, "--resume", "optim.max_steps=2", "data.dev=null",
                      f"run.out_dir={run}")
    assert process.returncode == 0, process.stderr
    assert "resumed from" in process.stdout + process.stderr and "checkpoint-1 at step 1" in (
        process.stdout + process.stderr)
    assert "trained to step 2" in process.stdout
    assert (run / "checkpoint-best" / "trainer_state.json").is_file()  # not pruned, not resumed from


# ---------------------------------------------------------------- pDPO
def test_pdpo_select_in_an_empty_folder_says_run_rollout_first(tmp_path):
    process = salmonn("pdpo", "select", "--out", tmp_path, "--selection", "all")
    assert_one_line_error(process, "no rollout.jsonl", "run `salmonn-o1 pdpo rollout")
    assert list(tmp_path.iterdir()) == []  # nothing written into the wrong folder


def test_train_pdpo_stops_after_the_rollouts_when_no_pair_is_possible():
    from salmonn_o1.errors import DataError
    from salmonn_o1.pdpo.pipeline import check_pairs_possible
    from salmonn_o1.pdpo.rollout import rollout_summary
    from salmonn_o1.train.recipe import PDPOSettings

    path = {"correct": True, "answer": "A", "segments": ["The answer is A."], "ends_turn": True}
    always_right = [{"id": f"q{i}", "paths": [path] * 4, "num_paths": 4, "num_correct": 4, "kept": False}
                    for i in range(3)]
    with pytest.raises(DataError, match=r"after the rollouts\): none of the 3 question\(s\) was answered wrong"):
        check_pairs_possible(rollout_summary(always_right), None, PDPOSettings(paths=4))
    wrong_once = [{**always_right[0], "paths": [path, {**path, "correct": False, "answer": "B"}],
                   "num_paths": 2, "num_correct": 1, "kept": True}]
    check_pairs_possible(rollout_summary(wrong_once), None, PDPOSettings(paths=2))  # a full-path pair exists
    tied = {"steps": 2, "no_alternative": 1, "ties": 1, "original_better": 0, "alternative_better": 0}
    all_wrong = [{**wrong_once[0], "paths": [{**path, "correct": False}] * 2, "num_correct": 0}]
    with pytest.raises(DataError, match=r"after labelling\): of 2 selected step"):
        check_pairs_possible(rollout_summary(all_wrong), tied, PDPOSettings(paths=2))


def test_a_pdpo_stage_record_without_an_id(tmp_path):
    (tmp_path / "rollout.jsonl").write_text(json.dumps({"kept": True, "paths": []}) + "\n")
    process = salmonn("pdpo", "select", "--out", tmp_path, "--selection", "all")
    assert_one_line_error(process, str(tmp_path / "rollout.jsonl"), "record 1 has no 'id'")


def test_eval_help_prints_a_single_percent_sign(capsys):
    from salmonn_o1.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["eval", "--help"])
    assert stop.value.code == 0
    shown = capsys.readouterr().out
    assert "95% Wilson" in shown and "%%" not in shown


def test_strict_and_no_strict_reach_the_loader():
    from salmonn_o1.cli import build_parser

    parser = build_parser()
    for command in (["ask", "clip.mp4", "q"], ["infer", "--data", "d", "--out", "o"]):
        assert parser.parse_args([*command]).strict is True
        assert parser.parse_args([*command, "--no-strict"]).strict is False
    assert parser.parse_args(["convert", "a", "b", "--no-strict"]).strict is False
    assert parser.parse_args(["convert", "a", "b", "--strict", "false"]).strict is False
