"""`--majority K` on `ask` and `infer` (Major@k), and `ask --threads/--verbose`: real runs of the
shipped model on generated AVR-Synth clips (`ask` in subprocesses, `infer` and `eval` in process)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from salmonn_o1.cli import main
from salmonn_o1.commands.common import add_generation_arguments, generation_kwargs
from salmonn_o1.inference import majority_vote

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["--max-new-tokens", "64", "--answer-max-new-tokens", "8", "--quiet"]
K = 3


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> tuple[Path, list]:
    """Two AVR-Synth test items with their clips written as MP4, and their items file."""
    from salmonn_o1.data.schema import write_items
    from salmonn_o1.data.synthetic import generate_item, write_sample_mp4

    root = tmp_path_factory.mktemp("majority")
    items = []
    for index in range(2):
        sample = generate_item("test", index)
        video = root / f"clip{index}.mp4"
        write_sample_mp4(sample, video)
        items.append(dataclasses.replace(sample.item, video=str(video)))
    write_items(root / "items.jsonl", items)
    return root, items


def ask(item, *args: str, omp: str = "1") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": omp}
    return subprocess.run([sys.executable, "-m", "salmonn_o1.cli", "ask", item.video, item.question, "--options",
                           *item.options, *QUICK, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def json_runs(clips) -> list[dict]:
    _, items = clips
    runs = [ask(items[0], "--majority", str(K), "--seed", "7", "--json") for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    return [json.loads(run.stdout) for run in runs]


def test_ask_majority_json_is_the_whole_vote(json_runs):
    result = json_runs[0]
    assert result["k"] == K and len(result["results"]) == K
    answers = [path["answer"] for path in result["results"]]
    assert (result["answer"], result["counts"]) == majority_vote(answers)
    assert sum(result["counts"].values()) == sum(a is not None for a in answers)
    assert all(path["reasoning"] for path in result["results"])  # every path reasons, then answers
    assert result["media"]["kind"] == "video"
    assert result["runtime"]["threads"] == 1 and result["runtime"]["threads_reason"] == "OMP_NUM_THREADS"


def test_ask_majority_with_a_seed_is_reproducible(json_runs):
    first, second = ({k: v for k, v in run.items() if k not in ("runtime",)} for run in json_runs)
    for run in (first, second):
        for path in run["results"]:
            path.pop("timings")
    assert first == second


def test_ask_majority_prints_the_votes_and_the_winner_and_verbose_the_threads(clips, json_runs):
    _, items = clips
    run = ask(items[0], "--majority", str(K), "--seed", "7", "--threads", "1", "--verbose", omp="2")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    votes = next(line for line in lines if line.startswith("Votes: "))
    assert f"(of {K} paths" in votes
    for answer, count in json_runs[0]["counts"].items():  # the same seed: the same vote as the JSON run's
        assert f"{answer} {count}" in votes
    assert lines[-1] == f"Answer: {json_runs[0]['answer']}"
    runtime = [line for line in run.stderr.splitlines() if line.startswith("Runtime: ")]
    assert len(runtime) == 1 and "1 CPU thread (--threads)" in runtime[0], run.stderr  # --threads beats OMP=2


def test_majority_turns_sampling_on_at_temperature_one_unless_given():
    parser = argparse.ArgumentParser()
    add_generation_arguments(parser)
    plain = generation_kwargs(parser.parse_args([]), sample=True)
    assert plain["do_sample"] is True and plain["temperature"] == 1.0
    assert generation_kwargs(parser.parse_args(["--temperature", "0.7"]), sample=True)["temperature"] == 0.7
    assert generation_kwargs(parser.parse_args([]))["do_sample"] is False


@pytest.mark.parametrize("command", [["ask", "clip.mp4", "What?"], ["infer", "--data", "i.jsonl", "--out", "o.jsonl"]],
                         ids=lambda c: c[0])
def test_a_vote_of_one_is_a_usage_error(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--majority", "1"])
    assert exit_.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "argument --majority: must be >= 2" in errors[0]


def test_majority_without_reasoning_is_refused(clips, tmp_path, capsys):
    root, items = clips
    assert main(["infer", "--data", str(root / "items.jsonl"), "--out", str(tmp_path / "p.jsonl"), "--majority", "2",
                 "--no-reasoning", *QUICK]) == 2
    assert "--majority votes over sampled reasoning paths" in capsys.readouterr().err


def test_infer_majority_records_resume_and_score(clips, tmp_path, capsys):
    root, items = clips
    out = tmp_path / "major.jsonl"
    args = ["infer", "--data", str(root / "items.jsonl"), "--out", str(out), "--majority", str(K), "--seed", "3",
            *QUICK]
    assert main(args) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in records) == sorted(i.id for i in items)
    for record in records:
        assert record["majority"] == K and len(record["path_answers"]) == len(record["paths"]) == K
        assert (record["prediction"], record["votes"]) == majority_vote(record["path_answers"])
        assert record["answer"] == record["prediction"]
        if record["prediction"] is not None:  # the reasoning shown is one that voted for the winner
            assert record["reasoning"] in [p["reasoning"] for p, a in zip(record["paths"], record["path_answers"])
                                           if a == record["prediction"]]
    capsys.readouterr()

    assert main(args) == 0  # resumable: nothing left to do
    assert "0 done, 2 already in the output" in capsys.readouterr().out
    assert [json.loads(line) for line in out.read_text().splitlines()] == records

    again = tmp_path / "again.jsonl"
    assert main([*args[:4], str(again), *args[5:]]) == 0  # the same seed: the same votes
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in records]
    assert [{k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in again.read_text().splitlines()] == strip

    report = tmp_path / "report.json"
    assert main(["eval", "--items", str(root / "items.jsonl"), "--predictions", str(out), "--out", str(report)]) == 0
    scored = json.loads(report.read_text())
    votes = {r["id"]: r["prediction"] for r in records}
    assert {s["id"]: s["predicted"] for s in scored["items"]} == votes  # eval reads the vote, unchanged
    gold = {i.id: i.answer for i in items}
    assert scored["overall"]["correct"] == sum(votes[i] == gold[i] for i in gold)
    assert scored["overall"]["total"] == len(items)
