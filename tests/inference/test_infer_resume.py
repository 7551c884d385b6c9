"""`salmonn-o1 infer` loses nothing: damaged lines are set aside, foreign files are refused, one run per file.

Each test drives the real CLI on a tiny saved checkpoint; the concurrency test
starts two `salmonn-o1 infer` processes on one output file.
"""

from __future__ import annotations

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
N = 16


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A tiny checkpoint and N text-only items (no video: the test is about the output file, not media)."""
    from salmonn_o1.data.schema import Item, write_items

    root = tmp_path_factory.mktemp("resume")
    write_tiny_checkpoint(root / "model")
    items = [Item(id=f"q{i:02d}", video=None, question=f"Which colour is number {i}?", options=["red", "blue"],
                  answer="AB"[i % 2]) for i in range(N)]
    write_items(root / "items.jsonl", items)
    return root


def infer(workdir: Path, out: Path, *extra: str) -> int:
    return main(["infer", "--data", str(workdir / "items.jsonl"), "--out", str(out),
                 "--model", str(workdir / "model"), *FAST, *extra])


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in lines(path)]


def test_a_corrupt_line_costs_only_its_own_item(workdir, tmp_path, capsys):
    out = tmp_path / "pred.jsonl"
    assert infer(workdir, out) == 0
    complete = lines(out)
    assert len(complete) == N
    damaged = list(complete)
    damaged[2] = damaged[2][:10] + "\x00garbage" + damaged[2][30:]  # line 3 of 16 no longer parses
    out.write_text("\n".join(damaged) + "\n", encoding="utf-8")
    capsys.readouterr()

    assert infer(workdir, out) == 0
    captured = capsys.readouterr()
    assert f"1 done, {N - 1} already in the output" in captured.out  # only the lost item was computed
    assert "line(s) 3 could not be read" in captured.err
    kept = lines(out)
    assert kept[: N - 1] == complete[:2] + complete[3:]  # all 15 readable records, byte for byte
    assert sorted(ids(out)) == sorted(json.loads(line)["id"] for line in complete)
    asides = list(tmp_path.glob("pred.jsonl.bad-lines.*"))
    assert len(asides) == 1 and asides[0].read_text(encoding="utf-8") == damaged[2] + "\n"  # set aside, not deleted
    assert str(asides[0]) in captured.err


@pytest.mark.parametrize("content", [
    "# My notes\n\nThe run on Tuesday looked fine.\n",
    '{"id": "q00", "question": "Which colour?", "options": ["red", "blue"], "answer": "A"}\n',  # items, not predictions
    '{"name": "settings", "lr": 0.1}\n',
])
def test_a_file_that_is_not_ours_is_refused_and_left_intact(workdir, tmp_path, capsys, content):
    out = tmp_path / "notes.md"
    out.write_text(content, encoding="utf-8")
    before = out.read_bytes()
    assert infer(workdir, out) == 2
    err = capsys.readouterr().err
    assert f"--out {out} is not a predictions file" in err and "--overwrite" in err
    assert out.read_bytes() == before

    assert infer(workdir, out, "--overwrite") == 0
    assert sorted(ids(out)) == [f"q{i:02d}" for i in range(N)]


def test_out_equal_to_data_is_refused(workdir, tmp_path, capsys):
    data = tmp_path / "items.jsonl"
    data.write_bytes((workdir / "items.jsonl").read_bytes())
    before = data.read_bytes()
    assert main(["infer", "--data", str(data), "--out", str(data), "--model", str(workdir / "model"), *FAST]) == 2
    assert "is the --data file" in capsys.readouterr().err
    assert data.read_bytes() == before


def test_two_concurrent_runs_on_one_output_give_each_item_once(workdir, tmp_path):
    out = tmp_path / "pred.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "salmonn_o1.cli", "infer", "--data", str(workdir / "items.jsonl"),
               "--out", str(out), "--model", str(workdir / "model"), *FAST]
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    results = [(run.wait(timeout=300), *run.communicate()) for run in runs]
    for code, _, err in results:
        assert code == 0 or (code == 2 and "being written by another salmonn-o1 infer run" in err), err[-2000:]
    written = ids(out)
    assert sorted(written) == [f"q{i:02d}" for i in range(N)]  # each item exactly once


def test_error_records_are_kept_and_retried_on_request(workdir, tmp_path, capsys):
    from salmonn_o1.data.schema import read_items, write_items
    from salmonn_o1.data.synthetic import generate_item, write_sample_mp4

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00" * 300)  # not a video: the item fails
    items = read_items(workdir / "items.jsonl")[:3]
    items[1] = dataclasses.replace(items[1], video=str(clip))
    data = tmp_path / "items.jsonl"
    write_items(data, items)
    out = tmp_path / "pred.jsonl"
    args = ["infer", "--data", str(data), "--out", str(out), "--model", str(workdir / "model"), *FAST]
    assert main(args) == 0
    assert [json.loads(line).get("error") is not None for line in lines(out)] == [False, True, False]

    write_sample_mp4(generate_item("test", 0), clip)  # the video is repaired
    capsys.readouterr()
    assert main(args) == 0
    out_text = capsys.readouterr().out
    assert "0 done, 3 already in the output" in out_text and "1 earlier error record(s) kept" in out_text
    assert len(lines(out)) == 3

    assert main([*args, "--retry-errors"]) == 0
    assert "1 done, 2 already in the output" in capsys.readouterr().out
    records = [json.loads(line) for line in lines(out)]
    assert sorted(r["id"] for r in records) == sorted(i.id for i in items)  # each item once
    assert all("error" not in r and isinstance(r["answer"], str) for r in records)


def test_unlabelled_items_are_answered_and_eval_reports_them(workdir, tmp_path, capsys):
    records = [json.loads(line) for line in lines(workdir / "items.jsonl")][:4]
    for record in records[2:]:
        del record["answer"]  # unlabelled: no gold answer
    records[3]["options"] = []  # an open question without an answer
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    out = tmp_path / "pred.jsonl"
    assert main(["infer", "--data", str(data), "--out", str(out), "--model", str(workdir / "model"), *FAST]) == 0
    assert sorted(ids(out)) == ["q00", "q01", "q02", "q03"]
    assert not any("error" in json.loads(line) for line in lines(out))
    capsys.readouterr()

    report = tmp_path / "report.json"
    assert main(["eval", "--items", str(data), "--predictions", str(out), "--out", str(report)]) == 0
    assert "Unlabelled items (no gold answer; not scored): 2" in capsys.readouterr().out
    scored = json.loads(report.read_text())
    assert scored["unlabelled"] == ["q02", "q03"]
    assert scored["overall"]["total"] == 2 and [s["id"] for s in scored["items"]] == ["q00", "q01"]
