"""Items without a gold answer: read for inference and evaluation, refused where a gold answer is needed."""

from __future__ import annotations

import json

import pytest

from salmonn_o1.data.schema import read_items, write_items
from salmonn_o1.errors import DataError


def write(path, *records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_unlabelled_items_read_and_round_trip(tmp_path):
    path = write(tmp_path / "items.jsonl",
                 {"id": "a", "question": "Which?", "options": ["x", "y"]},
                 {"id": "b", "question": "Is it fake?", "answer": None},
                 {"id": "c", "question": "Which?", "options": ["x", "y"], "answer": "B"})
    items = read_items(path)
    assert [(i.id, i.labelled, i.answer) for i in items] == [("a", False, ""), ("b", False, ""), ("c", True, "B")]
    write_items(tmp_path / "again.jsonl", items)
    assert "answer" not in json.loads((tmp_path / "again.jsonl").read_text().splitlines()[0])
    assert [i.labelled for i in read_items(tmp_path / "again.jsonl")] == [False, False, True]


def test_training_data_still_needs_a_gold_answer(tmp_path):
    path = write(tmp_path / "train.jsonl", {"id": "a", "question": "Which?", "options": ["x", "y"]})
    with pytest.raises(DataError, match=r"train\.jsonl line 1: missing field 'answer'"):
        read_items(path, require_answer=True)


@pytest.mark.parametrize("answer,message", [("", "field 'answer' is empty"), ("C", "expected a letter in 'AB'"),
                                            (3, "field 'answer' must be a string")])
def test_a_given_answer_is_still_validated(tmp_path, answer, message):
    path = write(tmp_path / "items.jsonl", {"id": "a", "question": "Which?", "options": ["x", "y"], "answer": answer})
    with pytest.raises(DataError, match=message):
        read_items(path)
