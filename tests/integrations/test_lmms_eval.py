"""The lmms-eval plug-in end to end: the real `lmms-eval` CLI runs `--model salmonn_o1` (the shipped
model, CPU) on our task YAMLs and scores exactly as `salmonn-o1 infer` + `salmonn-o1 eval` do.

Needs lmms-eval (`pip install -e '.[lmms]'`); skipped without it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytest.importorskip("lmms_eval", reason="lmms-eval is not installed: pip install -e '.[lmms]' (README: lmms-eval)")

from salmonn_o1.integrations.lmms_eval import TASKS_DIR  # noqa: E402

N = 8
TASK_LIMIT = 16  # Video-MME's max_new_tokens: the answer turn's limit, never the reasoning's


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                   **(env or {})}
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=environment, timeout=900)
    assert result.returncode == 0, f"{args[:3]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def salmonn(*args: str) -> None:
    run("-m", "salmonn_o1", *args)


def lmms_eval(task: str, model_args: str, out: Path, env: dict, *extra: str) -> tuple[dict, list[dict]]:
    """One lmms-eval CLI run: (the task's results, its logged samples). The CLI exits 0 even when
    the evaluation fails, so a run without a results file fails here, with its log."""
    result = run("-m", "lmms_eval", "--model", "salmonn_o1", "--model_args", model_args, "--tasks", task,
        "--limit", str(N), "--include_path", str(TASKS_DIR), "--output_path", str(out), "--log_samples",
        *extra, env={"HF_HOME": str(out / "hf"), **env})
    written = list(out.rglob("*_results.json"))
    assert written, f"lmms-eval wrote no results:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    results = json.loads(written[0].read_text())["results"][task]
    samples = [json.loads(line) for line in next(out.rglob(f"*_samples_{task}.jsonl")).read_text().splitlines()]
    return results, samples


def by_id(path: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}


@pytest.fixture(scope="module")
def avr(tmp_path_factory) -> Path:
    """N AVR-Synth test items, as `salmonn-o1 synth` writes them."""
    root = tmp_path_factory.mktemp("avr")
    salmonn("synth", "--split", "test", "--n", str(N), "--out", str(root))
    return root


def test_the_model_is_registered_through_the_entry_point():
    names = {ep.name for ep in entry_points(group="lmms_eval.models")}
    assert "salmonn_o1" in names, "the package is not installed with its entry points: pip install -e '.[lmms]'"
    from lmms_eval.models import get_model

    from salmonn_o1.integrations.lmms_eval.model import SalmonnO1

    assert get_model("salmonn_o1") is SalmonnO1


def test_reasoning_mode_scores_as_salmonn_o1_eval_and_a_short_task_limit_keeps_the_reasoning(avr, tmp_path):
    items = avr / "items.jsonl"
    predictions = tmp_path / "pred.jsonl"
    salmonn("infer", "--data", str(items), "--out", str(predictions), "--answer-max-new-tokens", str(TASK_LIMIT),
            "--quiet")
    salmonn("eval", "--items", str(items), "--predictions", str(predictions), "--out", str(tmp_path / "report.json"))
    report = json.loads((tmp_path / "report.json").read_text())

    results, samples = lmms_eval("avr_synth", "reasoning=true,threads=1", tmp_path / "lmms",
                                 {"SALMONN_O1_AVR_SYNTH": str(avr)}, "--gen_kwargs", f"max_new_tokens={TASK_LIMIT}")

    assert results["accuracy,none"] == pytest.approx(report["overall"]["accuracy"])
    assert len(samples) == N
    expected = by_id(predictions)
    gold = {s["id"]: s for s in report["items"]}
    for sample in samples:
        record = sample["accuracy"]
        prediction = expected[record["id"]]
        assert (record["predicted"], record["correct"]) == (gold[record["id"]]["predicted"],
                                                            gold[record["id"]]["correct"])
        # the whole reasoning is logged, then the answer turn; token counts are infer's
        text = sample["filtered_resps"]
        assert text == f"<think>\n{prediction['reasoning']}\n</think>\n\n{prediction['answer']}"
        assert sample["token_counts"][0]["reasoning_tokens"] == prediction["tokens"]["reasoning"]
        assert sample["token_counts"][0]["input_tokens"] == prediction["tokens"]["prompt"]
    # the task's 16-token limit did not cut the reasoning off
    assert max(s["token_counts"][0]["reasoning_tokens"] for s in samples) > TASK_LIMIT


def write_rivabench(avr: Path, path: Path) -> None:
    """The AVR-Synth items in RivaBench's released format (options inline, a conversation)."""
    records = []
    for item in map(json.loads, (avr / "items.jsonl").read_text().splitlines()):
        options = "".join(f"\n{letter}. {text}" for letter, text in zip("ABCDEFGHIJ", item["options"]))
        human = f"<image>\n{item['question']}" + (f" Choose from:{options}" if options else "")
        records.append({"video": str(avr / item["video"]),
                        "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": item["answer"]}]})
    path.write_text(json.dumps(records, indent=1))


def test_direct_mode_on_rivabench_scores_as_salmonn_o1_eval(avr, tmp_path):
    released = tmp_path / "riva" / "synthdec.json"
    released.parent.mkdir()
    write_rivabench(avr, released)
    predictions = tmp_path / "pred.jsonl"
    salmonn("infer", "--data", str(released), "--items-format", "rivabench", "--out", str(predictions),
            "--no-reasoning", "--max-new-tokens", "64", "--quiet")
    salmonn("eval", "--items", str(released), "--items-format", "rivabench", "--predictions", str(predictions),
            "--out", str(tmp_path / "report.json"))
    report = json.loads((tmp_path / "report.json").read_text())

    results, samples = lmms_eval("rivabench", "reasoning=false,threads=1", tmp_path / "lmms",
                                 {"SALMONN_O1_RIVABENCH": str(released.parent)}, "--batch_size", "2")

    assert results["accuracy,none"] == pytest.approx(report["overall"]["accuracy"])
    assert results["yes_no_f1,none"] == pytest.approx(report["detection"]["f1"], nan_ok=True)
    expected = by_id(predictions)
    gold = {s["id"]: s for s in report["items"]}
    assert len(samples) == N
    for sample in samples:
        record = sample["accuracy"]
        assert (record["predicted"], record["correct"]) == (gold[record["id"]]["predicted"],
                                                            gold[record["id"]]["correct"])
        assert "<think>" not in sample["filtered_resps"]
        assert sample["filtered_resps"] == expected[record["id"]]["answer"]


@pytest.fixture(scope="module")
def model():
    from salmonn_o1.integrations.lmms_eval.model import SalmonnO1

    return SalmonnO1(reasoning=False, threads=1)


def requests(kind: str, docs: list[dict], continuations: list) -> list:
    from lmms_eval.api.instance import Instance

    from salmonn_o1.integrations.lmms_eval import task_utils

    out = []
    for index, (doc_id, continuation) in enumerate(continuations):
        context = task_utils.doc_to_text(docs[doc_id])
        extra = ({"max_new_tokens": 1, "temperature": 0},) if kind == "generate_until" else (continuation,)
        out.append(Instance(kind, (context, *extra, task_utils.doc_to_visual, doc_id, "avr", "test"), index,
                            {"task": "avr", "doc_id": doc_id, "repeats": 1}))
    return out


def test_loglikelihood_is_the_teacher_forced_answer_turn(model, avr):
    """The greedy first answer token is scored as greedy and at least as likely as any option letter;
    batched scoring equals one-by-one scoring (left padding does not shift the positions)."""
    from salmonn_o1.data.schema import read_items
    from salmonn_o1.integrations.lmms_eval import task_utils

    docs = [task_utils.item_doc(item) for item in read_items(avr / "items.jsonl")[:2]]
    model.task_dict = {"avr": {"test": docs}}
    first = [r.text for r in model.generate_until(requests("generate_until", docs, [(0, None), (1, None)]))]
    letters = [(i, letter) for i in range(2) for letter in "ABCD"]
    greedy = model.loglikelihood(requests("loglikelihood", docs, [(0, first[0]), (1, first[1])]))
    assert [is_greedy for _, is_greedy in greedy] == [True, True]
    model._batch_size = 1
    single = model.loglikelihood(requests("loglikelihood", docs, letters))
    model._batch_size = 4
    batched = model.loglikelihood(requests("loglikelihood", docs, letters))
    for (one, one_greedy), (many, many_greedy) in zip(single, batched):
        assert many == pytest.approx(one, abs=1e-3) and one_greedy == many_greedy
    for i in range(2):
        scores = [score for (doc, _), (score, _) in zip(letters, single) if doc == i]
        assert greedy[i][0] >= max(scores) - 1e-4
        assert all(score < 0 for score in scores)


def test_a_corrupt_video_fails_its_item_and_the_batch_goes_on(model, avr, tmp_path):
    from salmonn_o1.data.schema import read_items
    from salmonn_o1.integrations.lmms_eval import task_utils

    docs = [task_utils.item_doc(item) for item in read_items(avr / "items.jsonl")[:2]]
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(Path(docs[1]["video"]).read_bytes()[:300])
    docs[1]["video"] = str(corrupt)
    model.task_dict = {"avr": {"test": docs}}
    model._batch_size = 2
    answers = [r.text for r in model.generate_until(requests("generate_until", docs, [(0, None), (1, None)]))]
    assert answers[0] and answers[1] == ""
