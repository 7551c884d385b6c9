"""A random tiny model nudged to write step-structured text, for tests and benchmarks.

A randomly initialised model samples near-uniformly over its vocabulary: its
paths have no steps and no readable answers, so the pDPO stages would have
nothing to select, branch or pair. Adding a bias to a few output logits
(`<end_of_step>`, `<|im_end|>`, the option letters) makes it write short
random steps that end in a letter, which exercises every stage's mechanics
(and gives the benchmark realistic step counts) without any training.
"""

from __future__ import annotations

import torch
from torch import nn

from salmonn_o1.prompts import END_OF_STEP, IM_END


def add_output_bias(model: nn.Module, bias: dict[int, float]) -> nn.Module:
    """Replace the LLM head by one with a bias vector holding `bias` (token id -> logit offset)."""
    language_model = model.language_model
    head = language_model.lm_head
    biased = nn.Linear(head.in_features, head.out_features, bias=True).to(head.weight)
    with torch.no_grad():
        biased.weight.copy_(head.weight)
        biased.bias.zero_()
        for token, value in bias.items():
            biased.bias[token] = value
    language_model.lm_head = biased
    return model


def step_structured(model: nn.Module, tokenizer, step: float = 5.0, end: float = 3.0, letter: float = 5.0,
                    letters: str = "ABCD") -> nn.Module:
    """Bias the head towards `<end_of_step>` (step), `<|im_end|>` (end) and option letters (letter)."""
    bias = {tokenizer.convert_tokens_to_ids(END_OF_STEP): step, tokenizer.convert_tokens_to_ids(IM_END): end}
    for char in letters:
        for text in (char, f" {char}"):
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(ids) == 1:
                bias[ids[0]] = letter
    return add_output_bias(model, bias)
