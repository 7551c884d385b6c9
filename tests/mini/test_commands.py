"""`salmonn-o1 reproduce` comes from the research package through the `salmonn_o1.commands` entry points."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from salmonn_o1 import cli
from salmonn_o1.components import resolve

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def declared_commands() -> dict[str, str]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    return project["entry-points"][cli.PLUGIN_GROUP]


def test_the_project_declares_reproduce_and_the_core_lists_no_research_module():
    assert declared_commands() == {"reproduce": "salmonn_o1_mini.commands:register_reproduce"}
    assert not [name for name in cli.COMMAND_MODULES if "mini" in name or "reproduce" in name]
    assert callable(resolve(declared_commands()["reproduce"]))


@pytest.fixture
def plugins(monkeypatch):
    """The entry points as an install of this tree registers them (an editable install may be stale)."""
    def fake(group: str):
        assert group == cli.PLUGIN_GROUP
        return [EntryPoint(name, value, group) for name, value in declared_commands().items()]

    monkeypatch.setattr(cli, "entry_points", fake)


def test_reproduce_is_a_subcommand_with_its_options(plugins, capsys):
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "--help"])
    out = capsys.readouterr().out
    for option in ("--recipes", "--runs", "--strategies", "--ship", "--no-direct"):
        assert option in out


def test_reproduce_mini_runs_the_research_plan(plugins, monkeypatch, tmp_path):
    import salmonn_o1_mini.reproduce as reproduce

    seen = {}
    monkeypatch.setattr(reproduce, "reproduce_mini", lambda plan: seen.setdefault("plan", plan) and tmp_path)
    assert cli.main(["reproduce", "mini", "--runs", str(tmp_path), "--n", "7", "--no-direct"]) == 0
    plan = seen["plan"]
    assert (plan.runs, plan.n, plan.direct) == (tmp_path, 7, False)


def test_a_broken_plugin_is_reported_and_the_core_commands_still_work(monkeypatch, capsys):
    monkeypatch.setattr(cli, "entry_points", lambda group: [EntryPoint("broken", "no_such_module:register", group)])
    parser = cli.build_parser()
    assert "skipped the 'broken' command" in capsys.readouterr().err
    assert parser.parse_args(["train", "sft", "--config", "x.yaml"]).stage == "sft"
