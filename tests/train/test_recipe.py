from __future__ import annotations

import pytest

from salmonn_o1.errors import RecipeError
from salmonn_o1.train.recipe import load_recipe


def test_yaml_recipe_with_dotted_overrides(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model:\n  source: tiny\noptim:\n  lr: 1.0e-3\n  max_steps: 7\n")
    recipe = load_recipe(path, ["optim.lr=3e-4", "model.lora.enabled=true", "data.sources=[{path: a.jsonl}]"])
    assert recipe.optim.lr == pytest.approx(3e-4)
    assert recipe.optim.max_steps == 7
    assert recipe.model.lora.enabled is True
    assert recipe.data.sources[0].path == "a.jsonl"


@pytest.mark.parametrize(("overrides", "message"), [
    (["optim.lrr=1"], "recipe.optim: unknown key(s) lrr"),
    (["optim.max_steps=many"], "recipe.optim.max_steps: expected int"),
    (["optim.lr=fast"], "recipe.optim.lr: expected a number"),
    (["model.train=aligners"], "recipe.model.train: expected a list"),
    (["nokey"], "expected key=value"),
])
def test_bad_overrides_name_the_key(overrides, message):
    with pytest.raises(RecipeError) as error:
        load_recipe(None, overrides)
    assert message in str(error.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(RecipeError, match="a recipe is a mapping"):
        load_recipe(bad)


def test_shipped_recipes_load():
    from pathlib import Path

    recipes = sorted(Path(__file__).parents[2].glob("recipes/*.yaml"))
    assert recipes
    for path in recipes:
        load_recipe(path)
