"""Every SFT recipe in recipes/ builds the example stream the shipped miniature model was trained on.

The digests below were computed by the code before the data sources became recipe-named
components (per recipe: the first 12 planned slots, their token ids, labels and media sizes,
with the recipe's own seed and schedule length); the redesign must not move one token. A
deliberate change to a recipe's data or to the SFT targets updates them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from salmonn_o1.checkpoints import load_model_and_processor
from salmonn_o1.train.recipe import load_recipe
from salmonn_o1.train.sft_data import SFTExamples

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
DIGESTS = {
    "mini-anneal": "436dc44a6a8053ea",  # the check stage's data on other clips, a quarter of its rate (2026-12-05)
    "mini-answer": "25d1731712571f17",
    "mini-checks": "edbcc2b39153752a",  # glitch checks read two frames, early thuds upweighted, 2,400 steps (2026-12-04)
    "mini-copy": "d573d901467af55f",
    "mini-direct": "d1a6be51afb3a399",
    "mini-ground": "70ff8985fecdc237",
    "mini-letters": "34f0e53f8d0fb15e",
    "mini-lookup": "97ed8dd69de0694c",
    "mini-options": "c4aa0beec7b114bc",
    "mini-refine": "7703853f6096a69f",  # the check stage's data on other clips, half its rate (2026-12-05)
    "mini-sft": "ea602303a84f37ec",
    "mini-text": "b19d08905c238c8e",
    "tiny-sft": "75307142fd911cdf",
}


@pytest.fixture(scope="module")
def processors():
    return {preset: load_model_and_processor(preset)[1] for preset in ("tiny", "mini")}


def test_every_sft_recipe_is_pinned():
    with_sources = {path.stem for path in RECIPES.glob("*.yaml") if load_recipe(path).data.sources}
    assert with_sources == set(DIGESTS)


@pytest.mark.parametrize("name", sorted(DIGESTS))
def test_the_recipe_builds_the_examples_it_always_built(name, processors):
    recipe = load_recipe(RECIPES / f"{name}.yaml")
    processor = processors["tiny" if recipe.model.source == "tiny" else "mini"]
    total = recipe.optim.max_steps * recipe.optim.batch_size * recipe.optim.grad_accum
    examples = SFTExamples(recipe.data, processor, total, recipe.run.seed)
    rows = []
    for position in range(12):
        slot, sample = examples.slots[position], examples[position]
        media = None if sample.media is None else [sample.media.num_frames, sample.media.num_chunks,
                                                   sample.media.token_count]
        rows.append([slot.source, slot.index, slot.reasoning, sample.input_ids, sample.labels, media])
    assert hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16] == DIGESTS[name]
