"""Preference pairs: records a person can read, labels, and their token ids.

A pair is (prompt + media, shared assistant prefix, chosen continuation,
rejected continuation). Step pairs continue a path's first k steps with the
original step k or a sampled alternative; full-path pairs continue the empty
prefix with a correct or a wrong whole path. Pairs are oriented so `chosen` has
the higher value; the label a in [0, 1] says how much the loss trusts that
order: hard a = 1[p > p'] (always 1 once oriented), soft a = sigma((p - p') / mu).
Equal values carry no preference and make no pair.

Token ids are rebuilt from the text: the prompt by the processor, the prefix
segment by segment (`steps.piece_ids`), then the continuation, so chosen and
rejected share prompt and prefix token for token by construction.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from salmonn_o1.chat import IGNORE_INDEX
from salmonn_o1.pdpo.steps import piece_ids
from salmonn_o1.processor import EncodedSample, MediaFeatures, SalmonnO1Processor
from salmonn_o1.prompts import IM_END

LABEL_MODES = ("hard", "soft")
DEFAULT_MU = 0.1  # the paper does not publish mu; see docs/pdpo.md


def hard_label(value: float, other: float) -> float:
    """1[p > p']."""
    return 1.0 if value > other else 0.0


def soft_label(value: float, other: float, mu: float = DEFAULT_MU) -> float:
    """sigma((p - p') / mu)."""
    if mu <= 0:
        raise ValueError(f"mu must be > 0, got {mu}")
    return 1.0 / (1.0 + math.exp(-(value - other) / mu))


def pair_label(chosen_value: float, rejected_value: float, mode: str = "hard", mu: float = DEFAULT_MU) -> float:
    if mode == "hard":
        return hard_label(chosen_value, rejected_value)
    if mode == "soft":
        return soft_label(chosen_value, rejected_value, mu)
    raise ValueError(f"unknown label mode {mode!r}; choose from {', '.join(LABEL_MODES)}")


@dataclass
class Continuation:
    """Assistant text after the prefix; `ends_turn` appends `<|im_end|>` (the path stops here)."""

    text: str
    ends_turn: bool = False
    value: float | None = None  # fraction of rollouts reaching the reference answer


@dataclass
class PairRecord:
    pair_id: str
    kind: str  # "step" | "path"
    question_id: str
    prompt: str  # the user-turn text the model was asked with
    reference: str  # the gold answer
    media: dict[str, Any] | None
    prefix: list[str]  # assistant text before the continuation, one raw segment per step
    chosen: Continuation
    rejected: Continuation
    label: float
    label_mode: str = "hard"
    mu: float | None = None
    step_index: int | None = None  # the step the pair branches at (step pairs)
    kl: float | None = None  # that step's contrastive score, when one was computed
    ref_logps: dict[str, float] | None = None  # {"chosen": ..., "rejected": ...} under the reference model
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def value_gap(self) -> float | None:
        if self.chosen.value is None or self.rejected.value is None:
            return None
        return self.chosen.value - self.rejected.value

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["value_gap"] = self.value_gap
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> PairRecord:
        # Derived and bookkeeping fields (value_gap, a stage's cost) are not part of the pair.
        names = {f.name for f in fields(cls)}
        record = {k: v for k, v in record.items() if k in names}
        record["chosen"] = Continuation(**record["chosen"])
        record["rejected"] = Continuation(**record["rejected"])
        return cls(**record)


def oriented_pair(
    original: Continuation, alternative: Continuation, mode: str = "hard", mu: float = DEFAULT_MU
) -> tuple[Continuation, Continuation, float] | None:
    """(chosen, rejected, label) with chosen the higher-valued one; None for a tie."""
    if original.value is None or alternative.value is None or original.value == alternative.value:
        return None
    chosen, rejected = (original, alternative) if original.value > alternative.value else (alternative, original)
    return chosen, rejected, pair_label(chosen.value, rejected.value, mode, mu)


def as_record(record: PairRecord | dict[str, Any]) -> PairRecord:
    return record if isinstance(record, PairRecord) else PairRecord.from_dict(record)


def continuation_ids(processor: SalmonnO1Processor, continuation: Continuation) -> list[int]:
    ids = piece_ids(processor.tokenizer, continuation.text)
    if continuation.ends_turn:
        ids.append(processor.tokenizer.convert_tokens_to_ids(IM_END))
    return ids


def prefix_ids(processor: SalmonnO1Processor, prefix: list[str]) -> list[int]:
    return [t for segment in prefix for t in piece_ids(processor.tokenizer, segment)]


def encode_pair(
    processor: SalmonnO1Processor, record: PairRecord, features: MediaFeatures | None
) -> tuple[EncodedSample, EncodedSample]:
    """Chosen and rejected samples: prompt + prefix + continuation, labels on the continuation only."""
    prompt = processor.encode(record.prompt, features).input_ids
    shared = prompt + prefix_ids(processor, record.prefix)
    samples = []
    for continuation in (record.chosen, record.rejected):
        ids = continuation_ids(processor, continuation)
        samples.append(EncodedSample(shared + ids, [IGNORE_INDEX] * len(shared) + ids, features))
    return samples[0], samples[1]
