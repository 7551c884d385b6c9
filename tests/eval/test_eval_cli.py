"""`salmonn-o1 eval` end to end on JSONL files written here, including bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from salmonn_o1.cli import main


def _eval(*args: str) -> int:
    return main(["eval", *args])


def test_eval_prints_markdown_and_writes_reports(files, tmp_path, capsys):
    md, js, png = tmp_path / "out" / "report.md", tmp_path / "out" / "report.json", tmp_path / "acc.png"
    assert _eval("--items", files["items"], "--predictions", files["sft"], "--out", str(md), "--plot", str(png)) == 0
    out = capsys.readouterr().out
    assert "# Evaluation: sft (mode: answer)" in out
    assert "| **overall** | 12 | 50.0 [" in out and "| cross_modal_alignment | 4 | 50.0 [" in out
    assert "## YES/NO detection" in out and "| 100.0 | 50.0 | 66.7 | 1 | 0 | 1 | 2 |" in out
    assert "`count-1`: hmm, hard to say" in out and "`not-an-item`" in out
    assert md.read_text() in out and f"report written to {md}" in out
    assert png.read_bytes()[:4] == b"\x89PNG"

    assert _eval("--items", files["items"], "--predictions", files["sft"], "--out", str(js), "--mode", "reasoning") == 0
    data = json.loads(js.read_text())
    assert data["mode"] == "reasoning" and data["label"] == "sft"
    assert data["groups"]["cross_modal_alignment"]["correct"] == 2


def test_eval_compare_two_prediction_files(files, tmp_path, capsys):
    js = tmp_path / "cmp.json"
    code = _eval("--items", files["items"], "--predictions", files["sft"], "--compare", files["pdpo"],
                 "--bootstrap", "1000", "--seed", "3", "--out", str(js))
    assert code == 0
    out = capsys.readouterr().out
    assert "## Paired comparison: pdpo vs sft" in out and "exact McNemar p = 0.125" in out
    data = json.loads(js.read_text())
    assert data["comparison"]["only_b"] == 4 and data["comparison"]["only_a"] == 0
    assert data["other"]["label"] == "pdpo" and data["other"]["overall"]["correct"] == 10


def test_eval_by_another_field(files, capsys):
    assert _eval("--items", files["items"], "--predictions", files["pdpo"], "--by", "source") == 0
    assert "| source | n | pdpo acc % [95% CI] |" in capsys.readouterr().out


def test_benchmark_files_are_scored_through_their_loader(tmp_path, capsys, write_jsonl):
    demo = write_jsonl(tmp_path / "demo.jsonl", [
        {"id": "d1", "question": "What element appears? Choose from:\nA. Water\nB. Fire", "answer": "B. Fire"},
        {"id": "d2", "question": "Is this video AI generated? Answer YES or NO.", "answer": "yes"},
    ])
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": "d1", "answer": "Fire"}, {"id": "d2", "answer": "NO"}])
    assert _eval("--items", demo, "--items-format", "demo", "--predictions", preds, "--by", "source") == 0
    out = capsys.readouterr().out
    assert "| demo | 2 | 50.0 [" in out and "| 0.0 | 0.0 | 0.0 | 0 | 0 | 1 | 0 |" in out


def test_missing_files_are_reported_by_name(files, tmp_path, capsys):
    missing = tmp_path / "nope.jsonl"
    assert _eval("--items", files["items"], "--predictions", str(missing)) == 2
    err = capsys.readouterr().err
    assert err.startswith("salmonn-o1 eval: error:") and f"{missing}: no such file" in err
    assert _eval("--items", str(missing), "--predictions", files["sft"]) == 2
    assert f"{missing}: no such file" in capsys.readouterr().err
    assert _eval("--items", files["items"], "--predictions", files["sft"], "--compare", str(missing)) == 2
    assert f"{missing}: no such file" in capsys.readouterr().err


def test_invalid_json_is_named_with_its_line(files, tmp_path, capsys, write_jsonl):
    bad = write_jsonl(tmp_path / "bad.jsonl", ['{"id": "align-0", "answer": "A"}', "", '{"id": "align-1", "answer": B}'])
    assert _eval("--items", files["items"], "--predictions", bad) == 2
    err = capsys.readouterr().err
    assert f"{bad} line 3: invalid JSON" in err

    bad_items = write_jsonl(tmp_path / "bad_items.jsonl", [
        json.dumps({"id": "x", "question": "q?", "options": ["a", "b"], "answer": "C"}),
    ])
    assert _eval("--items", bad_items, "--predictions", files["sft"]) == 2
    err = capsys.readouterr().err
    assert f"{bad_items} line 1: field 'answer'" in err

    not_object = write_jsonl(tmp_path / "list.jsonl", ['["align-0", "A"]'])
    assert _eval("--items", files["items"], "--predictions", not_object) == 2
    assert f"{not_object} line 1: expected a JSON object" in capsys.readouterr().err

    wrong_type = write_jsonl(tmp_path / "type.jsonl", ['{"id": "align-0", "answer": 3}'])
    assert _eval("--items", files["items"], "--predictions", wrong_type) == 2
    assert f"{wrong_type} line 1: field 'answer' must be a string" in capsys.readouterr().err

    empty = write_jsonl(tmp_path / "empty.jsonl", [])
    assert _eval("--items", empty, "--predictions", files["sft"]) == 2
    assert "no items" in capsys.readouterr().err


def test_predictions_for_unknown_ids_are_listed_not_scored(files, tmp_path, capsys, write_jsonl):
    stray = write_jsonl(tmp_path / "stray.jsonl", [
        {"id": "align-0", "answer": "A"},
        {"id": "avr-test-999999", "answer": "B"},
        {"id": "other-benchmark-1", "answer": "C"},
    ])
    js = tmp_path / "stray.json"
    assert _eval("--items", files["items"], "--predictions", stray, "--out", str(js)) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "warning: 2 prediction id(s) are not in" in captured.err and "'avr-test-999999'" in captured.err
    assert "warning: 11 of 12 items have no prediction" in captured.err
    assert "## Prediction ids not in the items file: 2" in out
    assert "`avr-test-999999`" in out and "`other-benchmark-1`" in out
    assert "## Missing predictions (counted wrong): 11" in out
    data = json.loads(js.read_text())
    assert data["unknown_ids"] == ["avr-test-999999", "other-benchmark-1"]
    assert data["overall"]["correct"] == 1 and data["overall"]["total"] == 12


def test_bad_arguments_exit_with_usage(files, capsys):
    assert _eval("--items", files["items"], "--predictions", files["sft"], "--bootstrap", "0") == 2
    assert "--bootstrap must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--items", files["items"]])
    assert exit_info.value.code == 2
    assert "--predictions" in capsys.readouterr().err


def test_python_dash_m_entry_point(files):
    result = subprocess.run(
        [sys.executable, "-m", "salmonn_o1", "eval", "--items", files["items"], "--predictions", files["pdpo"]],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "| **overall** | 12 | 83.3 [" in result.stdout
