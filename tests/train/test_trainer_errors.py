"""The engine skips bad examples (SkipExample, unusable media or records) and stops on bugs."""

from __future__ import annotations

import json

import pytest
from conftest import tiny_recipe
from torch.utils.data import Dataset

from salmonn_o1.errors import DataError, MediaError, RecipeError, SkipExample
from salmonn_o1.train.sft import build_sft
from salmonn_o1.train.trainer import GuardedExamples, Skipped


class Failing(Dataset):
    """Wraps a dataset; the example at `position` raises `error`."""

    def __init__(self, dataset: Dataset, position: int, error: Exception):
        self.dataset, self.position, self.error = dataset, position, error

    def __len__(self) -> int:
        return len(self.dataset)

    def describe(self, position: int) -> str:
        return f"example {position}"

    def __getitem__(self, position: int):
        if position == self.position:
            raise self.error
        return self.dataset[position]


@pytest.mark.parametrize("error, reason", [
    (SkipExample("900 tokens > data.max_length 512"), "900 tokens > data.max_length 512"),
    (MediaError("clip.mp4: no video stream"), "MediaError: clip.mp4: no video stream"),
    (DataError("items.jsonl:3: no question"), "DataError: items.jsonl:3: no question"),
])
def test_a_bad_example_becomes_a_skipped_record(error, reason):
    name, example = GuardedExamples(Failing(list(range(3)), 1, error))[1]
    assert name == "example 1" and example == Skipped("example 1", reason)


@pytest.mark.parametrize("error", [ValueError("a bug"), KeyError("a bug"), OSError("a bug"),
                                   RecipeError("a bug")])
def test_any_other_exception_is_a_bug_and_surfaces(error):
    with pytest.raises(type(error), match="a bug"):
        GuardedExamples(Failing(list(range(3)), 1, error))[1]


def test_a_value_error_from_the_data_code_stops_the_run_instead_of_being_skipped(tmp_path):
    trainer = build_sft(tiny_recipe(tmp_path / "run", "optim.max_steps=2", "data.length_grouping=false"))
    trainer.dataset = Failing(trainer.dataset, 1, ValueError("a bug in the data code"))
    with pytest.raises(ValueError, match="a bug in the data code"):
        trainer.train()
    assert not (tmp_path / "run" / "skipped.rank0.jsonl").exists()


def test_a_value_error_from_the_objective_collate_stops_the_run(tmp_path):
    trainer = build_sft(tiny_recipe(tmp_path / "run", "optim.max_steps=2"))

    def collate(examples):
        raise ValueError("a bug in collate")

    trainer.objective.collate = collate
    with pytest.raises(ValueError, match="a bug in collate"):
        trainer.train()


def test_skip_example_is_skipped_and_counted_in_a_run(tmp_path):
    trainer = build_sft(tiny_recipe(tmp_path / "run", "optim.max_steps=2", "data.length_grouping=false"))
    trainer.dataset = Failing(trainer.dataset, 1, SkipExample("too long"))
    result = trainer.train()
    assert result.step == 2 and result.skipped == 1
    skips = [json.loads(line) for line in (tmp_path / "run" / "skipped.rank0.jsonl").read_text().splitlines()]
    assert skips == [{"step": 0, "example": "example 1", "reason": "too long"}]
