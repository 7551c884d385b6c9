"""Pair labels, orientation, ties, records, and token-for-token shared prefixes."""

import math

import pytest

from salmonn_o1.pdpo.pairing import full_path_pairs
from salmonn_o1.pdpo.pairs import (
    Continuation,
    PairRecord,
    encode_pair,
    hard_label,
    oriented_pair,
    pair_label,
    soft_label,
)
from salmonn_o1.pdpo.questions import PDPOQuestion
from salmonn_o1.pdpo.rollout import PathRecord, QuestionRollout
from salmonn_o1.pdpo.steps import step_segments


@pytest.mark.parametrize("p, q, mu", [(5 / 6, 1 / 6, 0.1), (0.5, 0.6, 0.2), (1.0, 0.0, 1.0), (0.3, 0.3, 0.05)])
def test_soft_label_is_the_formula(p, q, mu):
    assert soft_label(p, q, mu) == pytest.approx(1 / (1 + math.exp(-(p - q) / mu)))
    assert soft_label(p, q, mu) + soft_label(q, p, mu) == pytest.approx(1.0)


def test_hard_label_and_modes():
    assert hard_label(0.5, 0.4) == 1.0 and hard_label(0.4, 0.5) == 0.0 and hard_label(0.5, 0.5) == 0.0
    assert pair_label(0.5, 0.4, "soft", 0.1) == soft_label(0.5, 0.4, 0.1)
    with pytest.raises(ValueError):
        pair_label(0.5, 0.4, "fuzzy")
    with pytest.raises(ValueError):
        soft_label(0.5, 0.4, 0.0)


def test_pairs_are_oriented_and_ties_dropped():
    original, alternative = Continuation("a", value=1 / 6), Continuation("b", value=4 / 6)
    chosen, rejected, label = oriented_pair(original, alternative, "hard")
    assert chosen is alternative and rejected is original and label == 1.0
    _, _, soft = oriented_pair(original, alternative, "soft", 0.1)
    assert soft == pytest.approx(soft_label(4 / 6, 1 / 6, 0.1)) and soft > 0.5
    assert oriented_pair(Continuation("a", value=0.5), Continuation("b", value=0.5)) is None
    assert oriented_pair(Continuation("a", value=None), Continuation("b", value=0.5)) is None


def test_step_pair_shares_prompt_and_prefix_token_for_token(processor, synth_features):
    text = ("1. A buzz plays at 2 s.<end_of_step>\n2. Then 3. a square\n shows.<end_of_step>\n"
            "3. It is green.<end_of_step>\n4. The answer is A.<end_of_step>")
    segments = step_segments(text)
    record = PairRecord(
        pair_id="q/step/0-2", kind="step", question_id="q", prompt="What was on screen?", reference="A",
        media=None, prefix=segments[:2], chosen=Continuation(segments[2], False, 0.8),
        rejected=Continuation("\n3. It is red and big.<end_of_step>", False, 0.2), label=1.0, step_index=2,
    )
    chosen, rejected = encode_pair(processor, record, synth_features)
    shared = processor.encode(record.prompt, synth_features).input_ids
    prefix = processor.tokenizer("".join(segments[:2]), add_special_tokens=False)["input_ids"]
    n = len(shared) + len(prefix)
    assert chosen.input_ids[:n] == rejected.input_ids[:n] == shared + prefix
    assert chosen.input_ids[n:] != rejected.input_ids[n:]
    assert all(label == -100 for label in chosen.labels[:n]) and chosen.labels[n:] == chosen.input_ids[n:]
    # Prefix + chosen step are exactly the path's own tokens up to that step.
    whole = processor.tokenizer("".join(segments[:3]), add_special_tokens=False)["input_ids"]
    assert chosen.input_ids[len(shared):] == whole


def test_record_round_trip_and_readable_json():
    record = PairRecord("q/step/1-2", "step", "q", "Which?", "B", {"synthetic": "train", "index": 1},
                        ["1. x<end_of_step>"], Continuation("\n2. y<end_of_step>", False, 0.5),
                        Continuation("\n2. z<end_of_step>", False, 0.0), 1.0, kl=0.02)
    data = record.to_dict()
    assert data["value_gap"] == 0.5 and data["chosen"]["text"] == "\n2. y<end_of_step>"
    assert PairRecord.from_dict({**data, "cost": {}}) == record


def test_full_path_pairs_pair_correct_with_wrong_paths():
    def path(i, correct, text):
        return PathRecord(i, text, step_segments(text), [], True, "", "A" if correct else "B", correct)

    rollout = QuestionRollout(
        PDPOQuestion("q", "Which?", ["x", "y"], "A", None),
        [path(0, False, "1. no<end_of_step>"), path(1, True, "1. yes<end_of_step>"),
         path(2, False, "1. nope<end_of_step>"), path(3, False, "1. no<end_of_step>")],  # 3 repeats 0
        cost=None,
    )
    pairs = full_path_pairs(rollout, mode="soft", mu=0.1)
    assert len(pairs) == 1
    pair = pairs[0]
    assert pair.kind == "path" and pair.prefix == [] and pair.chosen.text == "1. yes<end_of_step>"
    assert pair.chosen.ends_turn and pair.label == pytest.approx(soft_label(1.0, 0.0, 0.1))
    assert pair.prompt == "Which? Choose from:\nA. x\nB. y\n" + pair.prompt.split("\n")[-1]
