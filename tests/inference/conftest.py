"""Fixtures of the decoding tests: the tiny model in float64, and its processor."""

import pytest

from salmonn_o1.processor import SalmonnO1Processor


@pytest.fixture()
def model(tiny_model):
    return tiny_model.double()  # float64: a random model's near-ties must not flip greedy choices


@pytest.fixture()
def processor(tiny_config, tokenizer):
    return SalmonnO1Processor(tokenizer, tiny_config)
