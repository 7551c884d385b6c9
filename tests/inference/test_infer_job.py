"""`salmonn-o1 infer`: append-and-resume, bad items, CLI exit codes, 2-process sharding."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from salmonn_o1.cli import main

from clips import write_tiny_checkpoint

FAST = ["--max-new-tokens", "3", "--answer-max-new-tokens", "2", "--quiet"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A tiny checkpoint and four AVR-Synth items on disk, one of them a corrupt video."""
    from salmonn_o1.data.schema import write_items
    from salmonn_o1.data.synthetic import generate_item, write_sample_mp4

    root = tmp_path_factory.mktemp("infer")
    write_tiny_checkpoint(root / "model")
    items = []
    for index in range(4):
        sample = generate_item("test", index)
        video = root / f"clip{index}.mp4"
        write_sample_mp4(sample, video)
        items.append(dataclasses.replace(sample.item, video=str(video)))
    (root / "clip2.mp4").write_bytes((root / "clip2.mp4").read_bytes()[:300])  # truncated: corrupt
    write_items(root / "items.jsonl", items)
    return root


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_bad_item_is_recorded_and_the_rest_succeed(workdir, tmp_path):
    out = tmp_path / "pred.jsonl"
    assert main(["infer", "--data", str(workdir / "items.jsonl"), "--out", str(out), "--model", str(workdir / "model"),
                 *FAST]) == 0
    lines = records(out)
    assert sorted(r["id"] for r in lines) == sorted(json.loads(x)["id"] for x in (workdir / "items.jsonl").open())
    errors = [r for r in lines if "error" in r]
    assert len(errors) == 1 and "clip2.mp4" in errors[0]["error"]
    assert all(isinstance(r["answer"], str) for r in lines if "error" not in r)


def test_killed_run_resumes_and_writes_every_item_exactly_once(workdir, tmp_path, monkeypatch):
    from salmonn_o1.inference import SalmonnO1Pipeline

    out = tmp_path / "pred.jsonl"
    original = SalmonnO1Pipeline.ask_batch
    calls = {"n": 0}

    def dies_on_the_second_batch(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SalmonnO1Pipeline, "ask_batch", dies_on_the_second_batch)
    args = ["infer", "--data", str(workdir / "items.jsonl"), "--out", str(out), "--model", str(workdir / "model"),
            *FAST]
    assert main(args) == 130
    first = records(out)
    assert len(first) >= 1
    with out.open("a") as f:
        f.write('{"id": "half-writ')  # a line cut by the kill
    monkeypatch.setattr(SalmonnO1Pipeline, "ask_batch", original)
    assert main(args) == 0
    ids = [r["id"] for r in records(out)]
    assert len(ids) == len(set(ids)) == 4


def test_cli_exit_codes_and_messages(workdir, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    good_line = (workdir / "items.jsonl").read_text().splitlines()[0]
    bad.write_text(good_line + "\n{not json\n")
    assert main(["infer", "--data", str(bad), "--out", str(tmp_path / "p.jsonl"), *FAST]) == 2
    assert "2" in capsys.readouterr().err.splitlines()[-1]  # names the line number
    assert main(["ask", str(tmp_path / "missing.mp4"), "What?", "--model", str(workdir / "model"), *FAST[:-1]]) == 2
    assert "missing.mp4" in capsys.readouterr().err
    assert main(["ask", str(workdir / "clip0.mp4"), "What?", "--model", str(tmp_path / "no-model")]) == 2
    assert "no-model" in capsys.readouterr().err
    assert main(["ask", str(workdir / "clip0.mp4"), "What colour?", "--options", "red", "blue", "--json",
                 "--model", str(workdir / "model"), *FAST[:-1]]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["options"] == ["red", "blue"] and "steps" in result


@pytest.mark.slow
def test_two_process_accelerate_run_shards_and_merges(workdir, tmp_path):
    out = tmp_path / "pred.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "salmonn_o1.cli", "infer", "--data", str(workdir / "items.jsonl"), "--out", str(out),
               "--model", str(workdir / "model"), *FAST]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    ids = [r["id"] for r in records(out)]
    assert len(ids) == len(set(ids)) == 4
    assert not list(tmp_path.glob("pred.jsonl.part*"))
    assert "infer [0]" in done.stdout and "infer [1]" in done.stdout
