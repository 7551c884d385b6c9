"""The option-letter objective (`salmonn_o1_mini.option_letters.OptionLetterObjective`), which a
recipe names in `objective`: the plain SFT loss plus a weighted loss on the option letters."""

from __future__ import annotations

import torch

from salmonn_o1.processor import SalmonnO1Processor
from salmonn_o1.train.recipe import DataRecipe, DataSource, Recipe, load_recipe
from salmonn_o1.train.sft_data import SFTExamples, SFTObjective, build_objective
from salmonn_o1_mini.option_letters import OptionLetterObjective

OPTION_LETTERS = "salmonn_o1_mini.option_letters.OptionLetterObjective"


def text_examples(processor, total: int) -> SFTExamples:
    spec = DataSource(component={"_component_": "salmonn_o1_mini.curriculum.CurriculumSource", "split": "train",
                                 "task": "text", "families": ["visual_only", "audio_only"]})
    return SFTExamples(DataRecipe(sources=[spec]), processor, total=total, seed=0)


def test_option_letter_weight_adds_the_weighted_loss_of_exactly_the_option_letters(tokenizer, tiny_config, tiny_model):
    processor = SalmonnO1Processor(tokenizer, tiny_config)
    examples = text_examples(processor, total=4)
    plain, weighted = SFTObjective(processor), OptionLetterObjective(processor, weight=3.0)
    batch = plain.collate([examples[i] for i in range(4)])
    letters = weighted.option_letters(batch["input_ids"], batch["labels"])
    items = [examples.sources[0].item(examples.slots[i].index) for i in range(4)]
    for row, item in enumerate(items):  # one "is option X." per reasoning turn
        assert tokenizer.decode(batch["input_ids"][row][letters[row]]).strip() == item.answer
    tiny_model.eval()
    with torch.no_grad():
        base, _ = plain.loss(tiny_model, batch)
        total, logged = weighted.loss(tiny_model, batch)
        logits = tiny_model(**{k: v for k, v in batch.items() if k not in ("labels", "num_tokens")}).logits
    log_probs = torch.log_softmax(logits[:, :-1].float(), -1)
    shifted = letters[:, 1:]
    letter_loss = -log_probs[shifted].gather(-1, batch["labels"][:, 1:][shifted][:, None]).mean()
    assert abs(logged["loss"] - float(base)) < 1e-4  # the plain part is the model's own loss
    assert abs(float(total) - float(base) - 3.0 * float(letter_loss)) < 1e-4


def test_a_recipe_names_the_objective_and_weight_zero_is_the_plain_loss(tokenizer, tiny_config, tiny_model, tmp_path):
    processor = SalmonnO1Processor(tokenizer, tiny_config)
    assert type(build_objective(Recipe(), processor)) is SFTObjective
    recipe = load_recipe(None, [f"objective={{_component_: {OPTION_LETTERS}, weight: 5.0}}"])
    objective = build_objective(recipe, processor)
    assert isinstance(objective, OptionLetterObjective) and objective.weight == 5.0 and objective.name == "sft"
    examples = text_examples(processor, total=2)
    batch = objective.collate([examples[0], examples[1]])
    with torch.no_grad():
        plain, logged = SFTObjective(processor).loss(tiny_model, batch)
        unweighted, unweighted_logged = OptionLetterObjective(processor, weight=0.0).loss(tiny_model, batch)
    assert float(unweighted) == float(plain) and unweighted_logged == logged
