"""Rollout and select batched across questions: the same records for any batch size (paths seeded per
question and index; scores per question), records in input order, failures and resuming as before,
and per-question costs that add up to what ran."""

import json

import pytest

from salmonn_o1.data.synthetic.pdpo_questions import avr_synth_questions
from salmonn_o1.pdpo.batching import row_calls
from salmonn_o1.pdpo.perturb import Perturbation
from salmonn_o1.pdpo.questions import PDPOQuestion
from salmonn_o1.pdpo.rollout import QuestionRollout, rollout_question, run_rollout
from salmonn_o1.pdpo.scoring import StepSelector
from salmonn_o1.pdpo.select import run_select, select_question
from salmonn_o1.train.recipe import PDPOSettings

SETTINGS = dict(paths=4, top_t=2, max_new_tokens=20, answer_max_new_tokens=1, noise_step=900)


@pytest.fixture(scope="module")
def double_pipeline():
    """The step-structured tiny pipeline in float64: batched and lone rows then agree to ~1e-12."""
    import torch

    from salmonn_o1.config import tiny_config
    from salmonn_o1.inference import SalmonnO1Pipeline
    from salmonn_o1.model import SalmonnO1ForConditionalGeneration
    from salmonn_o1.pdpo.toy import step_structured
    from salmonn_o1.processor import SalmonnO1Processor
    from salmonn_o1.tokenizer import load_tokenizer

    torch.manual_seed(0)
    config, tokenizer = tiny_config(), load_tokenizer()
    model = SalmonnO1ForConditionalGeneration(config).eval().double()
    return SalmonnO1Pipeline(step_structured(model, tokenizer), SalmonnO1Processor(tokenizer, config))


@pytest.fixture(scope="module")
def questions(double_pipeline):
    made = [PDPOQuestion.from_dict(q) for q in avr_synth_questions(double_pipeline.processor, "train", 4, 20)]
    broken = PDPOQuestion("broken", "What was on screen?", ["red", "blue"], "A", {"path": "/nonexistent/x.mp4"})
    return made[:2] + [broken] + made[2:]  # a failed question in the middle of a call


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def without_cost(rows):
    return [{k: v for k, v in r.items() if k != "cost"} for r in rows]


def test_row_calls_fill_each_call_and_hand_out_in_order():
    works = ["a", "b", "c", "d", "e"]
    rows = {"a": 3, "b": 0, "c": 5, "d": 2, "e": 0}
    got = [([(p.work, p.start, p.stop) for p in call], done) for call, done in row_calls(works, rows.get, 4)]
    assert got == [([("a", 0, 3), ("c", 0, 1)], ["a", "b"]),
                   ([("c", 1, 5)], ["c"]),
                   ([("d", 0, 2)], ["d", "e"])]
    alone = [done for _, done in row_calls(works, rows.get, 100)]
    assert alone == [works]
    assert [w for _, done in row_calls(works, rows.get, 1) for w in done] == works
    assert list(row_calls(["x"], lambda w: 0, 3)) == [([], ["x"])]
    with pytest.raises(ValueError):
        next(row_calls(works, rows.get, 0))


def test_rollout_records_do_not_depend_on_the_batch_size(tmp_path, double_pipeline, questions):
    runs = {}
    for batch_size in (1, 3, 32):
        settings = PDPOSettings(**SETTINGS, batch_size=batch_size)
        summary = run_rollout(tmp_path / str(batch_size), double_pipeline, questions, settings, progress=False)
        assert summary["questions"] == 5 and summary["errors"] == 1
        runs[batch_size] = records(tmp_path / str(batch_size) / "rollout.jsonl")
    assert [r["id"] for r in runs[32]] == [q.id for q in questions]  # input order, the failure in its place
    assert runs[32][2]["error"] and runs[32][2]["paths"] == []
    assert without_cost(runs[1]) == without_cost(runs[3]) == without_cost(runs[32])
    ok = [q for q in questions if q.id != "broken"]
    alone = [rollout_question(double_pipeline, q, 4, seed=0, batch_size=4, max_new_tokens=20,
                              answer_max_new_tokens=1, temperature=1.0, top_p=1.0).to_dict() for q in ok]
    assert without_cost([r for r in runs[32] if "error" not in r]) == without_cost(alone)
    paths = [p for r in runs[32] for p in r["paths"]]
    assert len({p["reasoning"] for p in paths}) > len(ok)  # paths of a question differ (seeded per path)
    for rows in runs.values():  # generated tokens exactly; passes shared out by rows
        for r in rows:
            assert r["cost"]["generated_tokens"] == sum(p["tokens"]["reasoning"] + p["tokens"]["answer"]
                                                        for p in r["paths"])
    passes = {b: sum(r["cost"]["forward_passes"] for r in rows) for b, rows in runs.items()}
    assert passes[32] < passes[3] < passes[1]
    assert runs[32][2]["cost"]["forward_passes"] == 0


def test_resumed_rollout_gives_the_same_file(tmp_path, double_pipeline, questions):
    settings = PDPOSettings(**SETTINGS, batch_size=3)
    run_rollout(tmp_path / "once", double_pipeline, questions, settings, progress=False)
    run_rollout(tmp_path / "twice", double_pipeline, questions[:2], settings, progress=False)
    summary = run_rollout(tmp_path / "twice", double_pipeline, questions, settings, progress=False)
    assert summary["processed_this_run"] == 3
    once, twice = records(tmp_path / "once" / "rollout.jsonl"), records(tmp_path / "twice" / "rollout.jsonl")
    assert without_cost(once) == without_cost(twice)


def test_select_scores_batched_equal_per_question(tmp_path, double_pipeline, questions):
    settings = PDPOSettings(**SETTINGS, batch_size=32).resolved()  # seed 0, as the runners resolve it
    run_rollout(tmp_path, double_pipeline, questions, settings, progress=False)
    kept = [QuestionRollout.from_dict(r) for r in records(tmp_path / "rollout.jsonl") if r.get("kept")]
    assert len(kept) >= 2 and sum(len(r.paths) for r in kept) > 3
    selector = StepSelector("contrastive", 2, 0)
    perturbation = Perturbation("frames-noise", 900, 0)
    alone = [select_question(double_pipeline, r, selector, perturbation, settings).to_dict() for r in kept]
    passes = {}
    for batch_size in (32, 3):
        out = tmp_path / f"select-{batch_size}"
        out.mkdir()
        (out / "rollout.jsonl").write_text((tmp_path / "rollout.jsonl").read_text())
        summary = run_select(out, double_pipeline, PDPOSettings(**SETTINGS, batch_size=batch_size), progress=False)
        batched = records(out / "select.jsonl")
        assert [r["id"] for r in batched] == [r.question.id for r in kept]
        for one, many in zip(alone, batched):
            for a, b in zip(one["paths"], many["paths"]):
                assert b["scores"] == pytest.approx(a["scores"], rel=1e-9, abs=1e-12)
                assert b["selected"] == a["selected"] and all(s > 0 for s in b["scores"])
        passes[batch_size] = sum(r["cost"]["forward_passes"] for r in batched)
        assert summary["cost"]["forward_passes"] == passes[batch_size] > 0
    # Per question: its prompts pinned, then a pass for real and one for perturbed media per call of
    # similar path lengths; batched: every prompt pinned in one forward, the calls shared by all.
    assert passes[32] < passes[3] and passes[32] < sum(r["cost"]["forward_passes"] for r in alone)
    assert (passes[32] - 1) % 2 == 0


def test_length_chunks_keep_long_rows_from_padding_short_ones():
    from salmonn_o1.pdpo.batching import length_chunks

    lengths = [20, 200, 22, 190, 21, 25, 24, 23]
    chunks = length_chunks(lengths, batch_size=4)
    assert sorted(i for c in chunks for i in c) == list(range(len(lengths)))  # every row once
    assert chunks[0] == [1, 3]  # the two whole paths together, apart from the steps
    assert all(len(c) <= 4 for c in chunks)
    assert all(max(lengths[i] for i in c) <= 2 * min(lengths[i] for i in c) for c in chunks)
    assert length_chunks([5] * 10, batch_size=4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
