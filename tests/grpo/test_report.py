"""The SFT vs pDPO vs GRPO report (salmonn_o1_mini.grpo_report) from cached predictions, and the
`reproduce mini --grpo` command lines that produce it."""

from __future__ import annotations

import json
from pathlib import Path

from salmonn_o1_mini import grpo_report
from salmonn_o1_mini.reproduce import MiniPlan, grpo_report_arguments, pdpo_generated_tokens
from salmonn_o1_mini.synth_predict import synth_items


def write_predictions(path: Path, items, right: set[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, item in enumerate(items):
        wrong = next((o for o in "ABCD" if o != item.answer), "NO") if item.options else \
            ("NO" if item.answer == "YES" else "YES")
        answer = item.answer if i in right else wrong
        lines.append(json.dumps({"id": item.id, "answer": f"The answer is {answer}.", "reasoning": "1. x",
                                 "extracted": answer, "reasoning_tokens": 10 + i}))
    path.write_text("\n".join(lines) + "\n")
    path.with_suffix(".timing.json").write_text(json.dumps({"seconds": 2.0, "items": len(items), "model": "m"}))


def test_report_from_cached_predictions(tmp_path):
    n = 6
    work = tmp_path / "work"
    for split in ("test", "dev"):
        items = synth_items(split, n)
        write_predictions(work / split / "sft.jsonl", items, {0, 1})
        write_predictions(work / split / "pdpo.jsonl", items, {0, 1, 2})
        write_predictions(work / split / "grpo.jsonl", items, {0, 1, 2, 3, 4})
    run = tmp_path / "mini-grpo"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(
        {"step": s, "step_s": 30.0, "generated_tokens_total": 1000 * s, "reward": 0.5}) + "\n" for s in (1, 2)))
    out = tmp_path / "docs" / "results-grpo.md"
    grpo_report.main(["--variant", "sft=/nowhere/a", "--variant", "pdpo=/nowhere/b", "--variant", "grpo=/nowhere/c",
                      "--n", str(n), "--work", str(work), "--grpo-run", f"grpo={run}",
                      "--cost", "pdpo=tokens:1724351,minutes:56.6,note:stages 42 min, training 14.6 min",
                      "--out", str(out)])
    text = out.read_text()
    for split in ("test", "dev"):
        assert f"## {split}: accuracy per family" in text and f"## {split}: paired tests" in text
    assert "| **overall** | 6 |" in text and "33.3 [" in text and "83.3 [" in text  # 2/6 and 5/6
    against_sft = [line for line in text.splitlines() if line.startswith("| grpo | overall | 6 | +50.0 |")]
    assert len(against_sft) == 2  # on test and dev: 5 right against 2
    assert "Head to head: **grpo** paired against **pdpo**." in text
    assert "| grpo | overall | 6 | +33.3 | [" in text.split("Head to head")[1]  # 5 right against 3
    assert "| pdpo | 1,724,351 | 56.6 | stages 42 min, training 14.6 min |" in text
    assert "| grpo | 2,000 | 1.0 | 2 steps, 1 CPU thread (not the finished run)" in text
    assert grpo_report.grpo_run_cost(run, upto=1)["tokens"] == 1000
    assert "333 s per 1,000 items, 12 reasoning tokens per item" in text  # 2 s for 6; tokens 10..15
    data = json.loads((out.parent / "results" / "results-grpo.json").read_text())
    assert data["splits"]["dev"]["accuracy"]["grpo"]["overall"]["correct"] == 5


def test_reproduce_grpo_arguments_use_the_pdpo_runs_generated_tokens(tmp_path):
    pdpo = tmp_path / "runs" / "mini-pdpo"
    (pdpo / "stages").mkdir(parents=True)
    assert pdpo_generated_tokens(pdpo) is None
    costs = {"rollout": {"generated_tokens": 625036}, "select": {"generated_tokens": 0},
             "label": {"generated_tokens": 1099315}}
    (pdpo / "stages" / "pairs_summary.json").write_text(json.dumps({"cost_by_stage": costs}))
    assert pdpo_generated_tokens(pdpo) == 1724351
    args = grpo_report_arguments(MiniPlan(runs=tmp_path / "runs"), Path("sft"), pdpo, tmp_path / "runs" / "mini-grpo")
    assert "SFT + pDPO=tokens:1724351,note:rollouts + selection + values" in args
    assert args[args.index("--out") + 1] == "docs/results-grpo.md"
