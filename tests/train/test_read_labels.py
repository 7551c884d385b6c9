"""The frame-read objective (`salmonn_o1_mini.read_labels.ReadLabelObjective`): the option-letter
objective plus a weighted loss on what each read step says the screen shows."""

from __future__ import annotations

import re

import pytest
import torch

from salmonn_o1.processor import SalmonnO1Processor
from salmonn_o1.train.recipe import DataRecipe, DataSource, load_recipe
from salmonn_o1.train.sft_data import SFTExamples, build_objective
from salmonn_o1_mini.option_letters import OptionLetterObjective
from salmonn_o1_mini.read_labels import ReadLabelObjective

READ_LABELS = "salmonn_o1_mini.read_labels.ReadLabelObjective"
SHOWN = re.compile(r"the screen shows (the \w+ \w+|nothing)")


def check_examples(processor, total: int) -> SFTExamples:
    """Counting and glitch items in the check format (read steps), as text: no media to render."""
    spec = DataSource(component={"_component_": "salmonn_o1_mini.curriculum.CurriculumSource", "split": "train",
                                 "task": "text", "step_format": "checks",
                                 "families": ["cross_modal_counting", "glitch_detection"]})
    return SFTExamples(DataRecipe(sources=[spec]), processor, total=total, seed=0)


def test_the_read_weight_adds_the_weighted_loss_of_exactly_the_read_labels(tokenizer, tiny_config, tiny_model):
    processor = SalmonnO1Processor(tokenizer, tiny_config)
    examples = check_examples(processor, total=4)
    letters_only = OptionLetterObjective(processor, weight=1.0)
    objective = ReadLabelObjective(processor, weight=1.0, read_weight=2.0)
    batch = objective.collate([examples[i] for i in range(4)])
    reads = objective.read_labels(batch["input_ids"], batch["labels"])
    items = [examples.sources[0].item(examples.slots[i].index) for i in range(4)]
    for row, item in enumerate(items):  # the labels of the reasoning turn's read steps, in order, and nothing else
        shown = [m[1] for step in item.steps for m in SHOWN.finditer(step)]
        assert shown, item.steps
        masked = [tokenizer.decode(batch["input_ids"][row][i]) for i in torch.nonzero(reads[row]).flatten()]
        assert "".join(masked).split() == " ".join(shown).split()
    tiny_model.eval()
    with torch.no_grad():
        base, base_logged = letters_only.loss(tiny_model, batch)
        total, logged = objective.loss(tiny_model, batch)
        logits = tiny_model(**{k: v for k, v in batch.items() if k not in ("labels", "num_tokens")}).logits
    log_probs = torch.log_softmax(logits[:, :-1].float(), -1)
    shifted = reads[:, 1:]
    read_loss = -log_probs[shifted].gather(-1, batch["labels"][:, 1:][shifted][:, None]).mean()
    assert abs(logged["read_label_loss"] - float(read_loss)) < 1e-4
    assert abs(float(total) - float(base) - 2.0 * float(read_loss)) < 1e-4  # the option-letter part unchanged
    assert logged["option_letter_loss"] == pytest.approx(base_logged["option_letter_loss"])


def test_a_recipe_names_it_and_read_weight_zero_is_the_option_letter_objective(tokenizer, tiny_config, tiny_model):
    processor = SalmonnO1Processor(tokenizer, tiny_config)
    recipe = load_recipe(None, [f"objective={{_component_: {READ_LABELS}, weight: 1.0, read_weight: 3.0}}"])
    objective = build_objective(recipe, processor)
    assert isinstance(objective, ReadLabelObjective) and objective.read_weight == 3.0 and objective.weight == 1.0
    examples = check_examples(processor, total=2)
    batch = objective.collate([examples[0], examples[1]])
    with torch.no_grad():
        letters, letters_logged = OptionLetterObjective(processor, weight=1.0).loss(tiny_model, batch)
        unweighted, unweighted_logged = ReadLabelObjective(processor, weight=1.0, read_weight=0.0).loss(tiny_model,
                                                                                                      batch)
    assert float(unweighted) == float(letters) and unweighted_logged == letters_logged
    with pytest.raises(ValueError, match="read_weight"):
        ReadLabelObjective(processor, read_weight=-1.0)
