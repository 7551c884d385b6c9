"""The lmms-eval plug-in's text and token-limit rules, and its tasks' data location (no lmms-eval needed)."""

from __future__ import annotations

import pytest

from salmonn_o1.errors import DataError
from salmonn_o1.integrations.lmms_eval import TASKS_DIR
from salmonn_o1.integrations.lmms_eval.__main__ import main
from salmonn_o1.integrations.lmms_eval.protocol import (
    join_reasoning,
    split_reasoning,
    strip_direct_instruction,
    turn_settings,
    user_turn,
)
from salmonn_o1.prompts import format_question, reasoning_instruction

OPTIONS = ["a red square", "a blue circle"]


@pytest.mark.parametrize(("question", "options"), [
    ("What was on screen when the high tone played?", OPTIONS),
    ("Is the given video AI generated? Answer YES or NO.", None),
    ("What plays last?", None),
])
def test_reasoning_turn_is_the_prompt_infer_asks_with(question, options):
    """Our task's direct prompt, turned into the reasoning turn, is word for word `infer`'s prompt."""
    context = format_question(question, options, reasoning=False)
    for prompt in ("step-marked", "release"):
        assert user_turn(context, True, prompt) == format_question(question, options, reasoning=True, prompt=prompt)
    assert user_turn(context, False) == context


def test_videomme_direct_line_is_replaced_and_the_rest_kept():
    context = ("Select the best answer to the following multiple-choice question based on the video.\n"
               "Why does the man laugh?\nA. a joke\nB. a fall\n"
               "Answer with the option's letter from the given choices directly.")
    turn = user_turn(context, True, "release")
    assert "directly" not in turn
    assert turn.startswith("Select the best answer") and "B. a fall" in turn
    assert turn.endswith(reasoning_instruction("release"))
    assert strip_direct_instruction("Respond with the option letter only.\nWhat is it?") == \
        "Respond with the option letter only.\nWhat is it?"  # only trailing lines go


def test_short_task_limit_goes_to_the_answer_turn_only():
    video_mme = {"max_new_tokens": 16, "temperature": 0, "top_p": 1.0, "num_beams": 1, "do_sample": False}
    reasoning = turn_settings(video_mme, True, reasoning_max_new_tokens=512, default_max_new_tokens=64)
    assert (reasoning.max_new_tokens, reasoning.answer_max_new_tokens, reasoning.do_sample) == (512, 16, False)
    direct = turn_settings(video_mme, False, 512, 64)
    assert direct.max_new_tokens == 16
    # a task budget above ours is kept for the reasoning; none given: the model's default answers
    assert turn_settings({"max_new_tokens": 2048}, True, 512, 64).max_new_tokens == 2048
    assert turn_settings({}, True, 512, 64).answer_max_new_tokens == 64
    sampled = turn_settings({"temperature": 0.7, "until": "\n\n"}, True, 512, 64)
    assert sampled.do_sample and sampled.temperature == 0.7 and sampled.until == ("\n\n",)
    with pytest.raises(ValueError, match="beam search"):
        turn_settings({"num_beams": 4}, True, 512, 64)


def test_returned_text_splits_back_into_reasoning_and_answer():
    text = join_reasoning("1. The tone plays.<end_of_step>\n2. The answer is B.", "The answer is B.")
    assert split_reasoning(text) == ("1. The tone plays.<end_of_step>\n2. The answer is B.", "The answer is B.")
    assert split_reasoning("B") == (None, "B")
    assert join_reasoning(None, "B") == "B"


def test_task_data_comes_from_the_environment(tmp_path, monkeypatch):
    from salmonn_o1.integrations.lmms_eval import task_utils

    monkeypatch.delenv(task_utils.AVR_SYNTH_ENV, raising=False)
    with pytest.raises(DataError, match="SALMONN_O1_AVR_SYNTH is not set"):
        _ = task_utils.AVR_SYNTH_DATASET_KWARGS
    monkeypatch.setenv(task_utils.AVR_SYNTH_ENV, str(tmp_path))
    with pytest.raises(DataError, match="no items.jsonl"):
        _ = task_utils.AVR_SYNTH_DATASET_KWARGS
    (tmp_path / "items.jsonl").write_text("")
    kwargs = task_utils.AVR_SYNTH_DATASET_KWARGS
    assert kwargs == {"data_files": {"test": str(tmp_path / "items.jsonl")}}
    monkeypatch.setenv(task_utils.RIVABENCH_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="SALMONN_O1_RIVABENCH=.*nowhere: no such file"):
        _ = task_utils.RIVABENCH_DATASET_KWARGS


def test_include_path_command_prints_the_shipped_tasks(capsys):
    assert main(["--include-path"]) == 0
    folder = capsys.readouterr().out.strip()
    assert folder == str(TASKS_DIR)
    assert {"avr_synth.yaml", "rivabench.yaml"} <= {p.name for p in TASKS_DIR.iterdir()}
