"""Contrastive step scores and the step-selection strategies.

Score of step k of a path:

    s_k = mean over the step's tokens y_i of  KL( P(. | y_<i, real media) || P(. | y_<i, perturbed media) )

with teacher forcing: the path is fed whole, once with the real media and once
with the perturbed media, and the two next-token distributions are compared at
every assistant position. Causal attention makes one forward pass per
(path, input) give every step's score at once; the step's tokens are its
segment's span in the assistant ids (`steps.path_ids`). Paths are batched,
those of several questions in one call (`path_kl_scores`; left-padded so that only
the assistant tail's logits are kept), and run through `decoding.Decoder.tail_logits`,
the pipeline's own path to the logits.

Selection strategies share one interface so their costs compare on equal
terms: `contrastive` (top-T by score; the only one that needs the scores),
`all` (every step: Monte-Carlo values everywhere, Math-Shepherd style) and
`random` (T steps uniformly, seeded).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from salmonn_o1.decoding import Decoder, ProtocolIds
from salmonn_o1.pdpo.batching import tail_calls
from salmonn_o1.processor import MediaFeatures

SELECTIONS = ("contrastive", "all", "random")


def token_kl(real_logits: torch.Tensor, perturbed_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(real) || softmax(perturbed)) over the last dim: (..., V) -> (...)."""
    real = real_logits.float().log_softmax(-1)
    perturbed = perturbed_logits.float().log_softmax(-1)
    return F.kl_div(perturbed, real, log_target=True, reduction="none").sum(-1)


def encode_media_once(model: nn.Module, features: MediaFeatures | None) -> torch.Tensor | None:
    """(N, H) interleaved media sequence of one input, for splicing into many rows."""
    return Decoder(model).encode_media([features])[0]


@dataclass
class ScoredPath:
    """One row of contrastive scoring: a path (assistant ids, step spans as `steps.path_ids` gives them)
    after its question's prompt, with that question's real and perturbed media (`encode_media_once`)."""

    prompt_ids: list[int]
    real_media: torch.Tensor | None
    perturbed_media: torch.Tensor | None
    ids: list[int]
    spans: list[tuple[int, int]]


@torch.no_grad()
def path_kl_scores(model: nn.Module, rows: list[ScoredPath], pad_id: int) -> list[list[float]]:
    """Per-step scores of each row in one call: one real and one perturbed teacher-forced pass over
    all the rows, which may belong to several questions (each question's prompt is prefilled once per
    media input and pinned for its rows)."""
    if not rows:
        return []
    decoder = Decoder(model, ProtocolIds(pad_id=pad_id))
    # Each question's prompt is pinned once per media input (its last position predicts the path's
    # first token: it stays with the rows), and rows of similar path lengths go together.
    scores: list[list[float]] = [[] for _ in rows]
    for chunk, keep, (real, perturbed) in tail_calls(
            decoder, [row.prompt_ids + row.ids for row in rows],
            [[row.real_media for row in rows], [row.perturbed_media for row in rows]],
            [len(row.ids) + 1 for row in rows], len(rows)):
        # (B, keep): position j predicts the token after it. One small host copy per call, not one per step.
        kl = token_kl(real, perturbed).cpu()
        del real, perturbed
        for b, i in enumerate(chunk):
            row = rows[i]
            # Assistant token t sits at kept index keep - len(ids) + t; it is predicted one position earlier.
            offset = keep - len(row.ids) - 1
            per_token = kl[b, offset:offset + len(row.ids)]
            scores[i] = [float(per_token[a:z].mean()) if z > a else 0.0 for a, z in row.spans]
    return scores


def step_kl_scores(
    model: nn.Module,
    prompt_ids: list[int],
    real_media: torch.Tensor | None,
    perturbed_media: torch.Tensor | None,
    paths: list[tuple[list[int], list[tuple[int, int]]]],
    pad_id: int,
    batch_size: int = 16,
) -> list[list[float]]:
    """Per-step scores of one question's paths: `path_kl_scores` over batch_size paths at a time.

    paths: (assistant ids, step spans) as `steps.path_ids` returns them.
    real_media / perturbed_media: `encode_media_once` outputs for the two inputs.
    """
    rows = [ScoredPath(prompt_ids, real_media, perturbed_media, ids, spans) for ids, spans in paths]
    scores: list[list[float]] = []
    for start in range(0, len(rows), batch_size):
        scores += path_kl_scores(model, rows[start:start + batch_size], pad_id)
    return scores


@dataclass(frozen=True)
class StepSelector:
    """Which steps of a path get a pairwise rollout."""

    strategy: str = "contrastive"
    top_t: int = 3
    seed: int = 0

    def __post_init__(self):
        if self.strategy not in SELECTIONS:
            raise ValueError(f"unknown selection {self.strategy!r}; choose from {', '.join(SELECTIONS)}")
        if self.top_t < 1:
            raise ValueError(f"top_t must be >= 1, got {self.top_t}")

    @property
    def needs_scores(self) -> bool:
        return self.strategy == "contrastive"

    def select(self, num_steps: int, scores: list[float] | None = None, key: str = "") -> list[int]:
        """Indices of the selected steps, in path order. `key` (e.g. "question/path") seeds `random`."""
        if self.strategy == "all":
            return list(range(num_steps))
        if self.strategy == "random":
            rng = random.Random(f"{self.seed}/{key}")
            return sorted(rng.sample(range(num_steps), min(self.top_t, num_steps)))
        if scores is None or len(scores) != num_steps:
            raise ValueError("contrastive selection needs one score per step")
        # Highest score first; ties go to the earlier step.
        ranked = sorted(range(num_steps), key=lambda k: (-scores[k], k))
        return sorted(ranked[: self.top_t])
