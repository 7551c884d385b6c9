"""Shared fixtures: the tiny config, model and tokenizer (CPU, seeded)."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tokenizer():
    from salmonn_o1.tokenizer import load_tokenizer

    return load_tokenizer()


@pytest.fixture()
def tiny_config():
    from salmonn_o1.config import tiny_config as make

    return make()


@pytest.fixture()
def tiny_model(tiny_config):
    from salmonn_o1.model import SalmonnO1ForConditionalGeneration

    torch.manual_seed(0)
    return SalmonnO1ForConditionalGeneration(tiny_config).eval()
