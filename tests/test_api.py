"""The public API at the package root: lazy, so `import salmonn_o1` stays fast."""

from __future__ import annotations

import subprocess
import sys

import pytest

import salmonn_o1

PUBLIC = ["SalmonnO1Config", "SalmonnO1ForConditionalGeneration", "SalmonnO1Pipeline", "SalmonnO1Processor", "load"]


def test_importing_the_package_imports_neither_torch_nor_transformers():
    code = ("import sys, salmonn_o1; heavy = [m for m in ('torch', 'transformers', 'av', 'salmonn_o1.inference') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_command_line_parser_with_its_plugins_imports_neither_torch_nor_transformers():
    """`salmonn-o1 --help` builds every parser, the entry-point plugins' included: it must stay fast."""
    code = ("import sys; from salmonn_o1.cli import build_parser; parser = build_parser(); "
            "assert 'reproduce' in parser._subparsers._group_actions[0].choices; "
            "print([m for m in ('torch', 'transformers', 'av') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_public_names_are_listed_and_resolve_to_their_modules():
    from salmonn_o1.config import SalmonnO1Config
    from salmonn_o1.inference import SalmonnO1Pipeline
    from salmonn_o1.model import SalmonnO1ForConditionalGeneration
    from salmonn_o1.processor import SalmonnO1Processor

    assert set(PUBLIC) <= set(salmonn_o1.__all__) and set(salmonn_o1.__all__) <= set(dir(salmonn_o1))
    assert salmonn_o1.SalmonnO1Config is SalmonnO1Config
    assert salmonn_o1.SalmonnO1ForConditionalGeneration is SalmonnO1ForConditionalGeneration
    assert salmonn_o1.SalmonnO1Processor is SalmonnO1Processor
    assert salmonn_o1.SalmonnO1Pipeline is SalmonnO1Pipeline
    from salmonn_o1 import SalmonnO1Config as again  # names and submodules both import
    from salmonn_o1 import prompts

    assert again is SalmonnO1Config and prompts.MEDIA_TOKEN == "<image>"
    with pytest.raises(AttributeError, match="no attribute 'SalmonnO2'"):
        salmonn_o1.SalmonnO2  # noqa: B018


def test_load_returns_a_ready_pipeline():
    pipe = salmonn_o1.load("tiny", device="cpu", dtype="float32")
    assert isinstance(pipe, salmonn_o1.SalmonnO1Pipeline)
    assert isinstance(pipe.model, salmonn_o1.SalmonnO1ForConditionalGeneration) and not pipe.model.training
    assert isinstance(pipe.processor, salmonn_o1.SalmonnO1Processor)
    result = pipe.ask(None, "Is the sky blue?", max_new_tokens=2, answer_max_new_tokens=2)
    assert result.question == "Is the sky blue?"
