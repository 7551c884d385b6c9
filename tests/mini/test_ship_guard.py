"""`reproduce mini --ship PATH` replaces PATH: it refuses a folder that is not a shipped model
(unless --force), and says so before any training starts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from salmonn_o1.cli import main
from salmonn_o1.errors import OutputError
from salmonn_o1.inference import DEFAULT_MODEL_DIR
from salmonn_o1_mini.reproduce import check_ship_target, is_shipped_model, ship


def test_a_folder_of_the_user_s_is_refused_before_training(tmp_path, capsys):
    target = tmp_path / "my-project"
    target.mkdir()
    (target / "notes.md").write_text("mine")
    runs = tmp_path / "runs"
    status = main(["reproduce", "mini", "--ship", str(target), "--runs", str(runs), "--recipes", "recipes"])
    assert status == 2
    err = capsys.readouterr().err
    assert f"--ship {target}: not empty and not a previously shipped model" in err and "--force" in err
    assert (target / "notes.md").read_text() == "mine"
    assert not runs.exists()  # nothing trained


def test_a_previously_shipped_model_an_empty_folder_or_force_may_be_replaced(tmp_path):
    shipped = tmp_path / "shipped"
    shutil.copytree(DEFAULT_MODEL_DIR, shipped)
    assert is_shipped_model(shipped)
    check_ship_target(shipped)
    (tmp_path / "empty").mkdir()
    check_ship_target(tmp_path / "empty")
    check_ship_target(tmp_path / "new")
    user = tmp_path / "user"
    user.mkdir()
    (user / "data.csv").write_text("1,2\n")
    with pytest.raises(OutputError, match="not a previously shipped model"):
        ship(shipped, user)
    assert (user / "data.csv").exists()
    ship(shipped, user, force=True)
    assert is_shipped_model(user) and not (user / "data.csv").exists()


def test_a_shipped_model_with_a_subfolder_is_not_taken_for_one(tmp_path):
    target = tmp_path / "shipped"
    shutil.copytree(DEFAULT_MODEL_DIR, target)
    (target / "runs").mkdir()
    assert not is_shipped_model(target)
    with pytest.raises(OutputError):
        check_ship_target(Path(target))
