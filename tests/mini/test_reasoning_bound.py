"""The reasoning-token bound of scoring and of the RL recipes fits the longest reasoning the
miniature model is trained to write.

A bound below it stops exactly the longest answers (counting questions with many beeps) before
their conclusion: scored at 256 tokens, one counting answer in six was cut, and pDPO's rollouts cut
there mostly counted as wrong (src/salmonn_o1_mini/docs/notebook.md, "The 256-token bound").
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from transformers import AutoTokenizer

from salmonn_o1.data.synthetic import generate_item
from salmonn_o1.data.synthetic.questions import CHECK_STEPS, LOOKUP_STEPS
from salmonn_o1.train.sft_data import sft_conversation
from salmonn_o1_mini.synth_predict import predict_synthetic

ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "src" / "salmonn_o1" / "assets" / "mini"


@pytest.fixture(scope="module")
def longest_reasoning() -> int:
    """Tokens of the longest gold reasoning turn over 1,200 train items, in the step format the
    shipped model's last stage trained on (`step_format: checks`)."""
    tokenizer = AutoTokenizer.from_pretrained(MINI)
    longest = 0
    for index in range(900000, 901200):
        item = generate_item("train", index).item
        steps = item.extras.get(CHECK_STEPS) or item.extras.get(LOOKUP_STEPS) or item.steps
        turn = sft_conversation(replace(item, steps=list(steps)), reasoning=True)[1]["content"]
        longest = max(longest, len(tokenizer(turn)["input_ids"]))
    assert longest > 256  # the counting checks of a clip with many beeps
    return longest


def test_scoring_lets_the_longest_reasoning_finish(longest_reasoning):
    bound = inspect.signature(predict_synthetic).parameters["max_new_tokens"].default
    assert bound >= longest_reasoning


@pytest.mark.parametrize("recipe, stage", [("mini-pdpo", "pdpo"), ("mini-grpo", "grpo")])
def test_rl_rollouts_let_the_longest_reasoning_finish(longest_reasoning, recipe, stage):
    settings = yaml.safe_load((ROOT / "recipes" / f"{recipe}.yaml").read_text())[stage]
    assert settings["max_new_tokens"] >= longest_reasoning
