"""Seeded, bounded fuzzing of the CLI: out-of-range numeric options and malformed JSONL lines.

Every generated case is invalid by construction, so each must end in exit 2 with one error line
and no traceback, before any model loads. The cases run in-process through
`salmonn_o1.cli.main` (argparse's own exit 2 included); a few run as real subprocesses too.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from salmonn_o1.cli import main

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "src" / "salmonn_o1" / "assets" / "sample" / "clip.mp4"
TINY_RECIPE = ROOT / "recipes" / "tiny-sft.yaml"
SEED = 20261204

# (what the value must be, generator of invalid values)
INVALID = {
    "int>=1": lambda r: r.choice(["0", str(-r.randint(1, 10**6)), "abc", "1.5", "", "2e3", "0x10"]),
    "int>=0": lambda r: r.choice([str(-r.randint(1, 10**6)), "abc", "1.5", "", "NaN"]),
    "float>0": lambda r: r.choice(["0", "-0.0", f"{-r.uniform(1e-6, 1e6):.6g}", "nan", "inf", "-inf", "x", ""]),
    "prob": lambda r: r.choice(["0", f"{-r.uniform(0, 10):.4g}", f"{1 + r.uniform(1e-3, 10):.4g}", "nan", "inf",
                                "one"]),
}


def option_cases(files: dict[str, Path]) -> list[tuple[list[str], str]]:
    """(argv before the bad option, option, kind): every numeric option a user can mistype."""
    items, out = str(files["items"]), str(files["out"])
    ask = ["ask", str(CLIP), "What is shown?"]
    infer = ["infer", "--data", items, "--out", out]
    evaluate = ["eval", "--items", items, "--predictions", str(files["predictions"])]
    pdpo = ["pdpo", "rollout", "--out", str(files["root"] / "stages"), "--data", items]
    synth = ["synth", "--out", str(files["root"] / "synth")]
    return [
        (ask, "--max-new-tokens", "int>=1"), (ask, "--answer-max-new-tokens", "int>=1"),
        (ask, "--temperature", "float>0"), (ask, "--top-p", "prob"),
        (infer, "--batch-size", "int>=1"), (infer, "--num-workers", "int>=0"),
        (infer, "--max-new-tokens", "int>=1"), (infer, "--temperature", "float>0"), (infer, "--top-p", "prob"),
        (evaluate, "--bootstrap", "int>=1"),
        (pdpo, "--paths", "int>=1"), (pdpo, "--rollouts", "int>=1"), (pdpo, "--top-t", "int>=1"),
        (pdpo, "--temperature", "float>0"), (pdpo, "--mu", "float>0"),
        (synth, "--n", "int>=1"), (synth, "--start", "int>=0"), (synth, "--fps", "int>=1"),
    ]


RECIPE_FIELDS = [("optim.max_steps", "int>=1"), ("optim.batch_size", "int>=1"), ("optim.grad_accum", "int>=1"),
                 ("data.num_workers", "int>=0"), ("run.save_every", "int>=1"), ("optim.lr", "float>0"),
                 ("optim.min_lr_ratio", "prob"), ("data.max_length", "int>=1")]


def recipe_value(rng: random.Random, kind: str) -> str:
    """An invalid override value; YAML reads `.nan` as NaN and plain words as strings."""
    bad = {"int>=1": ["0", "-1", str(-rng.randint(2, 10**6)), "abc", "[1]", "{a: 1}"],
           "int>=0": ["-1", str(-rng.randint(2, 10**6)), "abc", "[]"],
           "float>0": ["-1e-3", f"{-rng.uniform(1, 1e3):.4g}", ".nan", "abc", "[0.1]"],
           "prob": ["-0.5", "1.5", ".nan", "abc"]}[kind]
    return rng.choice(bad)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fuzz")
    good = {"id": "x0", "video": str(CLIP), "question": "What is shown?", "options": ["red", "blue"], "answer": "A"}
    (root / "items.jsonl").write_text(json.dumps(good) + "\n")
    (root / "preds.jsonl").write_text(json.dumps({"id": "x0", "answer": "A"}) + "\n")
    return {"root": root, "items": root / "items.jsonl", "predictions": root / "preds.jsonl",
            "out": root / "never.jsonl"}


def run_main(argv: list[str], capsys) -> tuple[int, str]:
    """`main(argv)`'s exit status (argparse's SystemExit included) and what it wrote to stderr."""
    try:
        status = main(argv)
    except SystemExit as stop:
        status = stop.code
    return status, capsys.readouterr().err


def assert_clean_exit_2(status, err: str, argv) -> None:
    assert status == 2, (argv, status, err)
    assert "Traceback" not in err, (argv, err)
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, (argv, err)


def test_numeric_options_out_of_range(files, capsys):
    rng = random.Random(SEED)
    cases = option_cases(files)
    for _ in range(120):
        prefix, option, kind = rng.choice(cases)
        argv = [*prefix, f"{option}={INVALID[kind](rng)}"]
        status, err = run_main(argv, capsys)
        assert_clean_exit_2(status, err, argv)
        assert option in err or option.lstrip("-").replace("-", "_") in err or "synth settings" in err, (argv, err)
    assert not files["out"].exists()


def test_recipe_overrides_out_of_range(files, capsys):
    rng = random.Random(SEED + 1)
    for _ in range(40):
        key, kind = rng.choice(RECIPE_FIELDS)
        argv = ["train", "sft", "--config", str(TINY_RECIPE), f"{key}={recipe_value(rng, kind)}",
                f"run.out_dir={files['root'] / 'run'}"]
        status, err = run_main(argv, capsys)
        assert_clean_exit_2(status, err, argv)
        assert key in err, (argv, err)
    assert not (files["root"] / "run").exists()  # refused before anything was written


def malformed_line(rng: random.Random, good: dict, required: tuple[str, ...], mutations: list) -> bytes:
    """One line that no reader may accept: cut JSON, a non-object, a bad byte, a wrong field."""
    text = json.dumps(good, ensure_ascii=False)
    choice = rng.randrange(5)
    if choice == 0:  # cut off mid-write
        return text[: rng.randint(1, len(text) - 2)].encode()
    if choice == 1:  # valid JSON, but not an object
        return rng.choice(["[]", "[1, 2]", "3", '"text"', "null", "true", "NaN"]).encode()
    if choice == 2:  # a byte that is not UTF-8 (Latin-1 e-acute, a lone continuation byte, 0xff)
        raw = text.encode()
        at = rng.randint(1, len(raw) - 1)
        return raw[:at] + rng.choice([b"\xe9", b"\x80", b"\xff"]) + raw[at:]
    if choice == 3:  # a required field missing
        dropped = rng.choice(required)
        return json.dumps({k: v for k, v in good.items() if k != dropped}).encode()
    field, value = rng.choice(mutations)
    return json.dumps({**good, field: value}).encode()


ITEM_MUTATIONS = [("id", 5), ("id", ""), ("question", ["q"]), ("question", " "), ("options", "red blue"),
                  ("options", [1, 2]), ("options", ["only one"]), ("options", ["a", "A"]), ("options", ["a", ""]),
                  ("options", [f"o{i}" for i in range(11)]), ("steps", "one step"), ("video", 3), ("extras", [1])]
PREDICTION_MUTATIONS = [("answer", 5), ("answer", ["A"]), ("reasoning", {"x": 1}), ("error", ["boom"]),
                        ("id", None)]


@pytest.mark.parametrize("which", ["items", "predictions"])
def test_malformed_jsonl_lines(files, capsys, tmp_path, which):
    rng = random.Random(SEED + (2 if which == "items" else 3))
    for case in range(40):
        count = rng.randint(1, 5)
        goods = [{"id": f"x{i}", "video": str(CLIP), "question": "What is shown?", "options": ["red", "blue"],
                  "answer": "AB"[i % 2]} for i in range(count)]
        predictions = [{"id": f"x{i}", "answer": "A", "reasoning": "The answer is A."} for i in range(count)]
        lines = [json.dumps(g).encode() for g in (goods if which == "items" else predictions)]
        bad_at = rng.randrange(count)
        if which == "items":
            lines[bad_at] = malformed_line(rng, goods[bad_at], ("id", "question"), ITEM_MUTATIONS)
        else:
            lines[bad_at] = malformed_line(rng, predictions[bad_at], ("id",), PREDICTION_MUTATIONS)
        bad = tmp_path / f"{which}-{case}.jsonl"
        bad.write_bytes(b"\n".join(lines) + b"\n")
        good = tmp_path / f"good-{case}.jsonl"
        good.write_text("\n".join(json.dumps(r) for r in (predictions if which == "items" else goods)) + "\n")
        items, preds = (bad, good) if which == "items" else (good, bad)
        argv = ["eval", "--items", str(items), "--predictions", str(preds)]
        status, err = run_main(argv, capsys)
        assert_clean_exit_2(status, err, (argv, lines[bad_at]))
        assert f"{bad} line {bad_at + 1}" in err, (lines[bad_at], err)
        if which == "items":  # infer reads the same file the same way, before any model loads
            argv = ["infer", "--data", str(bad), "--out", str(tmp_path / "never.jsonl")]
            status, err = run_main(argv, capsys)
            assert_clean_exit_2(status, err, (argv, lines[bad_at]))
            assert f"{bad} line {bad_at + 1}" in err
    assert not (tmp_path / "never.jsonl").exists()


def test_a_few_cases_as_real_processes(files):
    """The in-process cases above, sampled, through the interpreter a user runs: same exit, no traceback."""
    rng = random.Random(SEED + 4)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    cases = option_cases(files)
    for _ in range(3):
        prefix, option, kind = rng.choice(cases)
        argv = [*prefix, f"{option}={INVALID[kind](rng)}"]
        process = subprocess.run([sys.executable, "-m", "salmonn_o1.cli", *argv], capture_output=True, text=True,
                                 env=env, timeout=120)
        assert process.returncode == 2, (argv, process.stderr)
        assert "Traceback" not in process.stderr, (argv, process.stderr)
