"""Contrastive step scores: zero for identical inputs, high where the tokens lean on the
frames, one batched pass equal to step-by-step passes; the three selection strategies."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from salmonn_o1.pdpo.perturb import Perturbation
from salmonn_o1.pdpo.scoring import (
    ScoredPath,
    StepSelector,
    encode_media_once,
    path_kl_scores,
    step_kl_scores,
    token_kl,
)
from salmonn_o1.pdpo.steps import path_ids, step_segments

MEDIA_ID = 3


class MediaSensitiveLM(nn.Module):
    """A toy causal LM: the distribution after token t is a fixed row of `table`, shifted by
    (mean media value so far) x gain[t]. gain is zero except for the `sensitive` tokens, so
    only tokens that follow a sensitive token depend on the media."""

    def __init__(self, vocab: int = 16, sensitive: tuple[int, ...] = (5, 6)):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.vocab = vocab
        self.table = torch.randn(vocab, vocab, generator=generator)
        self.gain = torch.zeros(vocab, vocab)
        for t in sensitive:
            self.gain[t] = 3 * torch.randn(vocab, generator=generator)
        self.device = torch.device("cpu")

    def encode_media(self, media) -> list[torch.Tensor]:
        """One media value per frame: its mean pixel."""
        return [media.pixel_values.mean(dim=(1, 2, 3))]

    def splice_media(self, ids: torch.Tensor, sequences: list) -> torch.Tensor:
        # Channels: one-hot token (vocab), media value, media flag.
        embeds = torch.zeros(*ids.shape, self.vocab + 2)
        embeds[..., : self.vocab] = nn.functional.one_hot(ids, self.vocab).float()
        for b, sequence in enumerate(sequences):
            positions = (ids[b] == MEDIA_ID).nonzero().squeeze(1)
            embeds[b, positions, self.vocab] = sequence
            embeds[b, positions, self.vocab + 1] = 1.0
        return embeds

    def forward(self, inputs_embeds, attention_mask, logits_to_keep=0):
        onehot = inputs_embeds[..., : self.vocab]
        mask = attention_mask.unsqueeze(-1).float()
        values = (inputs_embeds[..., self.vocab : self.vocab + 1] * mask).cumsum(1)
        counts = (inputs_embeds[..., self.vocab + 1 :] * mask).cumsum(1).clamp(min=1)
        logits = onehot @ self.table + (values / counts) * (onehot @ self.gain)
        return SimpleNamespace(logits=logits[:, -logits_to_keep:] if logits_to_keep else logits)


def test_token_kl_is_zero_for_equal_logits_and_positive_otherwise():
    logits = torch.randn(3, 7)
    assert torch.all(token_kl(logits, logits) == 0)
    assert torch.all(token_kl(logits, logits + torch.randn(3, 7)) > 0)
    p, q = logits[0].softmax(-1), (logits[0] + 1.5 * torch.arange(7)).softmax(-1)
    assert token_kl(logits[0], logits[0] + 1.5 * torch.arange(7)).item() == pytest.approx(
        float((p * (p.log() - q.log())).sum()), rel=1e-5)


def test_the_step_that_depends_on_the_frames_scores_highest_and_is_selected(synth_features):
    model = MediaSensitiveLM()
    real = encode_media_once(model, synth_features)
    perturbed = encode_media_once(model, Perturbation("frames-noise", noise_step=500)(synth_features))
    prompt = [1] + [MEDIA_ID] * synth_features.num_frames + [2]
    steps = [[7, 8, 7], [5, 10, 6, 11], [8, 7, 9]]  # step 2's tokens 10 and 11 follow sensitive tokens
    ids = [t for s in steps for t in s]
    spans = [(0, 3), (3, 7), (7, 10)]
    scores = step_kl_scores(model, prompt, real, perturbed, [(ids, spans)], pad_id=0)[0]
    assert scores[0] == 0 and scores[2] == 0 and scores[1] > 1e-3
    assert StepSelector("contrastive", top_t=1).select(3, scores) == [1]
    assert step_kl_scores(model, prompt, real, real, [(ids, spans)], pad_id=0)[0] == [0.0, 0.0, 0.0]


TEXTS = [
    "1. A buzz plays.<end_of_step>\n2. A green square shows.<end_of_step>\n3. The answer is A.<end_of_step>",
    "1. A tone.<end_of_step>\n2. The answer is B.<end_of_step>",
    "1. The screen is red at 2 s, then blue.<end_of_step>\n2. So C.",
]


def test_identical_inputs_score_zero_on_the_real_model(tiny_model, processor, synth_features):
    paths = [path_ids(processor.tokenizer, step_segments(t), True, 2) for t in TEXTS]
    prompt = processor.encode("What was on screen?", synth_features).input_ids
    media = encode_media_once(tiny_model, synth_features)
    scores = step_kl_scores(tiny_model, prompt, media, media, paths, pad_id=0)
    assert all(s == 0.0 for path in scores for s in path)


@torch.no_grad()
def _step_by_step(model, prompt, real, perturbed, ids, spans):
    """The definition, literally: one pair of passes per step over prompt + path up to that step."""
    scores = []
    for a, b in spans:
        row = torch.tensor([prompt + ids[:b]])
        mask = torch.ones_like(row)
        logits = [model(inputs_embeds=model.splice_media(row, [m]), attention_mask=mask).logits[0]
                  for m in (real, perturbed)]
        start = len(prompt) + a - 1  # logits at position i predict token i + 1
        scores.append(float(token_kl(logits[0][start:start + b - a], logits[1][start:start + b - a]).mean()))
    return scores


def test_one_batched_pass_equals_step_by_step(tiny_model, processor, synth_features):
    model = tiny_model.double()  # float64: the scores of a random model are small
    features = synth_features
    perturbed = Perturbation("frames-noise", noise_step=900)(features)
    prompt = processor.encode("What was on screen?", features).input_ids
    real_media = encode_media_once(model, features)
    perturbed_media = encode_media_once(model, perturbed)
    paths = [path_ids(processor.tokenizer, step_segments(t), i != 2, 2) for i, t in enumerate(TEXTS)]
    batched = step_kl_scores(model, prompt, real_media, perturbed_media, paths, pad_id=0)
    alone = step_kl_scores(model, prompt, real_media, perturbed_media, paths[1:2], pad_id=0)
    for (ids, spans), scores in zip(paths, batched):
        expected = _step_by_step(model, prompt, real_media, perturbed_media, ids, spans)
        assert scores == pytest.approx(expected, rel=1e-6, abs=1e-15)
        assert all(s > 0 for s in scores)
    assert alone[0] == pytest.approx(batched[1], rel=1e-6)


def test_selectors():
    scores = [0.1, 0.5, 0.2, 0.5, 0.0]
    assert StepSelector("contrastive", top_t=3).select(5, scores) == [1, 2, 3]
    assert StepSelector("contrastive", top_t=9).select(5, scores) == [0, 1, 2, 3, 4]
    assert StepSelector("all").select(4) == [0, 1, 2, 3]
    random_a = StepSelector("random", top_t=2, seed=0).select(5, key="q/0")
    assert random_a == StepSelector("random", top_t=2, seed=0).select(5, key="q/0")
    assert len(random_a) == 2 and random_a == sorted(random_a)
    assert {tuple(StepSelector("random", top_t=2).select(5, key=f"q/{i}")) for i in range(20)} != {tuple(random_a)}
    assert not StepSelector("random").needs_scores and StepSelector("contrastive").needs_scores
    with pytest.raises(ValueError):
        StepSelector("contrastive").select(3, None)
    with pytest.raises(ValueError):
        StepSelector("best")


def test_paths_of_several_questions_in_one_call_score_as_each_question_alone(tiny_model, processor,
                                                                              synth_features):
    """Different prompts, media and lengths in one call (a text-only row shorter than the kept tail
    among them, so the tail holds its padding) give each question's own scores."""
    model = tiny_model.double()
    tokenizer = processor.tokenizer
    real = encode_media_once(model, synth_features)
    perturbed = encode_media_once(model, Perturbation("frames-noise", noise_step=900)(synth_features))
    long_path = path_ids(tokenizer, step_segments(TEXTS[0] * 4), True, 2)
    questions = [
        (processor.encode("What was on screen?", synth_features).input_ids, real, perturbed,
         [long_path, path_ids(tokenizer, step_segments(TEXTS[2]), False, 2)]),
        (processor.encode("Hi?", None).input_ids, None, None, [path_ids(tokenizer, step_segments(TEXTS[1]), True, 2)]),
        (processor.encode("Which colour came first?", synth_features).input_ids, real, real,
         [path_ids(tokenizer, step_segments(TEXTS[1]), True, 2)]),
    ]
    assert len(questions[1][0]) + len(questions[1][3][0][0]) < len(long_path[0]) + 1
    alone = [step_kl_scores(model, prompt, r, p, paths, pad_id=0) for prompt, r, p, paths in questions]
    rows = [ScoredPath(prompt, r, p, ids, spans) for prompt, r, p, paths in questions for ids, spans in paths]
    together = path_kl_scores(model, rows, pad_id=0)
    expected = [s for scores in alone for s in scores]
    assert [len(s) for s in together] == [len(s) for s in expected]
    for got, want in zip(together, expected):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert all(s > 0 for s in together[0]) and together[2] == [0.0, 0.0] and together[3] == [0.0, 0.0]
