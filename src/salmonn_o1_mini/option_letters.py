"""The option-letter loss: SFT with extra weight on the letter after " option".

In "The purple cross is option A." the letter is one target token in a hundred, so the plain
mean loss barely trains the look-up of a two-word option among similar ones. Weighted on short
`task: options` items it is learnt; weighted on real items it is then kept (the mini-options and
mini-letters stages). A recipe asks for it in place of the plain SFT objective:

    data:
      objective: {_component_: salmonn_o1_mini.option_letters.OptionLetterObjective, weight: 5.0}
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from salmonn_o1.chat import IGNORE_INDEX
from salmonn_o1.processor import SalmonnO1Processor
from salmonn_o1.train.sft_data import SFTObjective

OPTION_WORD = " option"  # the letter is the token after this word in the gold steps


class OptionLetterObjective(SFTObjective):
    """The SFT loss plus `weight` times the mean loss on the option letters (0: the plain loss)."""

    def __init__(self, processor: SalmonnO1Processor, weight: float = 1.0):
        super().__init__(processor)
        self.weight = weight
        self.option_id = processor.tokenizer(OPTION_WORD, add_special_tokens=False).input_ids[-1]

    def option_letters(self, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mask of the target tokens that follow " option" (the letters the weight trains)."""
        after_option = torch.zeros_like(labels, dtype=torch.bool)
        after_option[:, 1:] = input_ids[:, :-1] == self.option_id
        return after_option & (labels != IGNORE_INDEX)

    def weighted_tokens(self, input_ids: torch.Tensor, labels: torch.Tensor) -> list[tuple[str, float, torch.Tensor]]:
        """(metric name, weight, mask of target tokens) for each term added to the plain loss."""
        return [("option_letter_loss", self.weight, self.option_letters(input_ids, labels))]

    def loss(self, model, batch: dict) -> tuple:
        inputs = {k: v for k, v in batch.items() if k != "num_tokens"}
        labels = inputs.pop("labels")
        terms = [term for term in self.weighted_tokens(inputs["input_ids"], labels) if term[1] > 0]
        if not terms:
            return super().loss(model, batch)
        logits = model(**inputs).logits[:, :-1].float()
        targets = labels[:, 1:]
        per_token = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=IGNORE_INDEX, reduction="none")
        plain = per_token.sum() / (targets != IGNORE_INDEX).sum().clamp(min=1)
        loss, metrics = plain, {"loss": float(plain.detach())}
        for name, weight, mask in terms:
            shifted = mask[:, 1:]  # aligned with `targets`
            term = per_token[shifted].mean() if shifted.any() else plain.new_zeros(())
            loss = loss + weight * term
            metrics[name] = float(term.detach())
        return loss, metrics
