"""pDPO fixtures: a step-structured tiny pipeline and AVR-Synth features (CPU, seeded)."""

from __future__ import annotations

import pytest
import torch

# One thread: the tiny model's ops are microseconds, and two threads on a shared 2-core
# machine spend more time synchronising than computing.
torch.set_num_threads(1)


@pytest.fixture()
def processor(tiny_config, tokenizer):
    from salmonn_o1.processor import SalmonnO1Processor

    return SalmonnO1Processor(tokenizer, tiny_config)


@pytest.fixture()
def pipeline(tiny_model, processor):
    """The tiny random model, biased to write short steps ending in option letters."""
    from salmonn_o1.inference import SalmonnO1Pipeline
    from salmonn_o1.pdpo.toy import step_structured

    return SalmonnO1Pipeline(step_structured(tiny_model, processor.tokenizer), processor)


@pytest.fixture()
def synth_features(processor):
    from salmonn_o1.data.synthetic.pdpo_questions import clip_ref
    from salmonn_o1.pdpo.media import load_features

    return load_features(clip_ref("train", 0, processor), processor)
