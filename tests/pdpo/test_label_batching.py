"""The label stage values the steps of many questions together: its records are those of one question
at a time, whatever the batch size (each row seeded by its question, path, step, try / branch, rollout)."""

import pytest

from salmonn_o1.data.synthetic.pdpo_questions import avr_synth_questions
from salmonn_o1.pdpo.costs import Cost, count_forward
from salmonn_o1.pdpo.label import label_question, label_questions
from salmonn_o1.pdpo.questions import PDPOQuestion
from salmonn_o1.pdpo.select import PathSelection, SelectRecord
from salmonn_o1.pdpo.values import ModelPolicy
from salmonn_o1.train.recipe import PDPOSettings

SEGMENTS = ["1. A buzz plays.<end_of_step>", "\n2. A square shows.<end_of_step>", "\n3. It is red.<end_of_step>",
            "\n4. So the answer is A."]


def selections(processor, n=3):
    records = []
    for q in avr_synth_questions(processor, "train", n):
        paths = [PathSelection(0, True, "A", True, SEGMENTS, SEGMENTS, None, [1, 3]),  # step 3 closes the turn
                 PathSelection(1, False, "B", True, SEGMENTS[:3] + ["\n4. So the answer is B."],
                               SEGMENTS[:3], [0.5, 0.1, 0.9, 0.2], [0, 2])]
        records.append(SelectRecord(PDPOQuestion.from_dict(q), 2, 1, True, "all", paths, Cost()))
    return records


def settings(batch_size):
    return PDPOSettings(rollouts=2, max_new_tokens=8, answer_max_new_tokens=2, max_step_tokens=6,
                        alternative_tries=2, batch_size=batch_size, seed=3)


def without_cost(records):
    return [{k: v for k, v in r.to_dict().items() if k != "cost"} for r in records]


@pytest.fixture()
def policy(pipeline):
    # float64: batches of other sizes pad differently; the model's near-ties must not flip a sample.
    return ModelPolicy(pipeline.model.double(), pipeline.processor, max_new_tokens=8, answer_max_new_tokens=2,
                       max_step_tokens=6)


def test_label_records_do_not_depend_on_the_batch_size_or_grouping(policy, processor):
    selected = selections(processor)
    runs = {}
    for batch_size in (1, 8, 64):
        total = Cost()
        with count_forward(policy.model, total):
            runs[batch_size] = label_questions(policy, selected, settings(batch_size))
        # Every forward is some question's: the shares add up to what ran, generated tokens exactly.
        assert sum(r.cost.forward_passes for r in runs[batch_size]) == total.forward_passes
        assert sum(r.cost.prefill_positions for r in runs[batch_size]) == total.prefill_positions
    records = without_cost(runs[1])
    assert without_cost(runs[8]) == records and without_cost(runs[64]) == records
    alone = [label_question(policy, s, settings(8)) for s in selected]
    assert without_cost(alone) == records
    assert [r.cost.generated_tokens for r in runs[1]] == [r.cost.generated_tokens for r in runs[64]] \
        == [r.cost.generated_tokens for r in alone]
    # Batched: fewer forwards for the same records.
    assert sum(r.cost.forward_passes for r in runs[64]) < sum(r.cost.forward_passes for r in runs[1]) / 4
    steps = [s for r in runs[64] for s in r.steps]
    assert len(steps) == 12 and sum(s.alternative is not None for s in steps) >= 6
    closed = [s for s in steps if s.original.ends_turn]
    assert closed and all(len(s.details["original_answers"]) == 2 for s in steps if s.alternative is not None)
    assert len({r["steps"][0]["alternative"]["text"] for r in records if r["steps"][0]["alternative"]}) > 1
