"""The frame-read loss: SFT with extra weight on what a read step says the screen shows.

In "At 2.5 s the screen shows the blue cross: that makes 1." the read itself is two tokens
("blue", "cross") of the step's twenty, and it is what a counting or glitch answer turns on: the
check SFT lists the beeps within the asked shape's span right in nine counting answers in ten and
follows its own reads with its counts, but about one read in five names the wrong shape, so most wrong counts come
from a read. Weighting the words after " shows" asks the same stage to spend its updates on them,
the way the option-letter loss did for the letter. Tried once (weight 2, 1,200 steps): the read
loss did not fall and the model gained less than without the weight, so no recipe of the chain
uses it (src/salmonn_o1_mini/docs/notebook.md, "Refinement"). A recipe names it in place of the
option-letter objective (and keeps that weight):

    objective: {_component_: salmonn_o1_mini.read_labels.ReadLabelObjective, weight: 1.0, read_weight: 2.0}
"""

from __future__ import annotations

import torch

from salmonn_o1.chat import IGNORE_INDEX
from salmonn_o1.processor import SalmonnO1Processor
from salmonn_o1_mini.option_letters import OptionLetterObjective

READ_WORD = " shows"  # a read step's label follows this word: " the blue cross" or " nothing"
READ_SPAN = 3  # target tokens weighted after it: " the", the colour, the shape


class ReadLabelObjective(OptionLetterObjective):
    """The option-letter objective plus `read_weight` times the mean loss on the read labels
    (the READ_SPAN target tokens after " shows"; 0: the option-letter objective unchanged)."""

    def __init__(self, processor: SalmonnO1Processor, weight: float = 1.0, read_weight: float = 1.0):
        super().__init__(processor, weight)
        if read_weight < 0:
            raise ValueError(f"read_weight must be >= 0, got {read_weight}")
        self.read_weight = read_weight
        self.shows_id = processor.tokenizer(READ_WORD, add_special_tokens=False).input_ids[-1]

    def read_labels(self, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mask of the target tokens within READ_SPAN after " shows" (the labels the weight trains)."""
        after = torch.zeros_like(labels, dtype=torch.bool)
        shows = input_ids == self.shows_id
        for offset in range(1, READ_SPAN + 1):
            after[:, offset:] |= shows[:, :-offset]
        return after & (labels != IGNORE_INDEX)

    def weighted_tokens(self, input_ids: torch.Tensor, labels: torch.Tensor) -> list[tuple[str, float, torch.Tensor]]:
        return [*super().weighted_tokens(input_ids, labels),
                ("read_label_loss", self.read_weight, self.read_labels(input_ids, labels))]
