"""`GRPOObjective`: questions -> G sampled paths each -> rewards -> the GRPO loss, on the shared `Trainer`.

A batch is a few questions (with their media features, loaded in `collate`). `loss`
samples G paths per question with the current policy through `decoding.Decoder`, exactly
as `SalmonnO1Pipeline.sample` / `ask_batch` do (the same prompt, one decode call for every
path of the batch, the answer turn over the reasoning turn's KV cache, one seed per call),
so a question's group equals `pipeline.sample(..., num_return_sequences=G, seed=s)`. The
seed is derived from the run seed and the batch's plan positions, so a resumed run samples
the same paths. Each path is judged (`rewards.path_reward`), advantages are normalised per
group, and the completions (reasoning-turn tokens and answer-turn tokens, not the follow-up
question between them) are scored teacher-forced: the media is encoded once per question
and spliced into every row of its group, then one forward over the rows gives the policy's
per-token log-probs (with gradient) and, when beta > 0, one more without gradient gives the
reference's (the starting model: a frozen copy, or the policy with its LoRA adapters off).

The objective keeps one counter across steps, the tokens sampled so far (`state_dict`, saved
with each checkpoint); once it reaches `generation_budget`, `finished` tells the Trainer to
stop and export the model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from salmonn_o1.decoding import Decoder
from salmonn_o1.generation import SamplingConfig
from salmonn_o1.grpo.loss import completion_logps, group_advantages, grpo_loss
from salmonn_o1.grpo.rewards import Reward, path_reward
from salmonn_o1.model.media_batch import MediaBatch
from salmonn_o1.pdpo.folder import question_seed
from salmonn_o1.pdpo.loss import adapters_disabled, disable_dropout, has_adapters
from salmonn_o1.pdpo.media import FeatureCache
from salmonn_o1.pdpo.questions import PDPOQuestion
from salmonn_o1.pdpo.steps import clean_generated
from salmonn_o1.processor import MediaFeatures, SalmonnO1Processor
from salmonn_o1.prompts import DEFAULT_REASONING_PROMPT, format_question
from salmonn_o1.train.recipe import GRPOSettings


def _unwrap(model: nn.Module) -> nn.Module:
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    return model


@dataclass
class Group:
    """The G paths of one question: token ids of both turns, texts and rewards."""

    question: PDPOQuestion
    prompt_ids: list[int]
    reasoning_tokens: list[list[int]]
    answer_tokens: list[list[int]]
    reasoning: list[str]
    answers: list[str]
    rewards: list[Reward]


def prompt_text(question: PDPOQuestion, model: nn.Module) -> str:
    """The user turn exactly as `SalmonnO1Pipeline` asks it (the model's own reasoning prompt)."""
    prompt = getattr(model.config, "reasoning_prompt", DEFAULT_REASONING_PROMPT)
    return format_question(question.question, question.options or None, reasoning=True, prompt=prompt)


class GRPOObjective:
    """collate(plan entries) -> batch; loss(model, batch) -> (loss, metrics). See the module docstring."""

    name = "grpo"
    progress_keys = ("reward", "kl", "completion_length")

    def __init__(self, processor: SalmonnO1Processor, settings: GRPOSettings, seed: int = 0,
                 reference: nn.Module | None = None, media_cache_size: int = 64):
        self.processor = processor
        self.settings = settings
        self.seed = settings.seed if settings.seed is not None else seed
        self.reference = reference
        self.features = FeatureCache(processor, media_cache_size)
        self.generated_total = 0  # tokens sampled over the run (reasoning + answer), resumed from checkpoints
        self._dropout_off: set[int] = set()

    # ---- state the Trainer checkpoints ----
    def state_dict(self) -> dict[str, Any]:
        return {"generated_tokens_total": self.generated_total}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generated_total = int(state["generated_tokens_total"])

    @property
    def finished(self) -> bool:
        budget = self.settings.generation_budget
        return budget is not None and self.generated_total >= budget

    # ---- the engine's interface ----
    def collate(self, examples: list[dict[str, Any]]) -> dict[str, Any] | None:
        questions = [e["question"] for e in examples]
        return {"questions": questions, "positions": [int(e["position"]) for e in examples],
                "features": [self.features(q.media) for q in questions]}

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        policy = _unwrap(model)
        if id(policy) not in self._dropout_off:  # sampling and scoring must see one distribution
            disable_dropout(policy)
            self._dropout_off.add(id(policy))
        started = time.perf_counter()
        groups = self.sample(policy, batch["questions"], batch["features"],
                             question_seed(self.seed, "grpo", *batch["positions"]))
        sampled = time.perf_counter()
        settings, G = self.settings, self.settings.num_generations
        rewards = torch.tensor([r.total for g in groups for r in g.rewards], dtype=torch.float32)
        advantages = group_advantages(rewards, G, settings.scale_rewards)
        rows, mask, prompt_lengths = self.rows(groups)
        features = batch["features"]
        logps = self.score(model, policy, rows, mask, prompt_lengths, features)
        ref = None
        if settings.beta > 0:
            with torch.no_grad():
                if self.reference is not None:
                    ref = self.score(self.reference, self.reference, rows, mask, prompt_lengths, features)
                elif has_adapters(policy):
                    with adapters_disabled(policy):
                        ref = self.score(model, policy, rows, mask, prompt_lengths, features)
                else:
                    raise ValueError("grpo.beta > 0 needs a reference: a frozen copy of the starting model or LoRA")
        completion_mask = mask.to(logps.device)
        out = grpo_loss(logps, advantages.to(logps.device), completion_mask, ref_logps=ref, beta=settings.beta,
                        epsilon=settings.epsilon, epsilon_high=settings.epsilon_high, loss_type=settings.loss_type,
                        max_completion_length=settings.max_new_tokens + settings.answer_max_new_tokens)
        lengths = [len(a) + len(b) for g in groups for a, b in zip(g.reasoning_tokens, g.answer_tokens)]
        generated = sum(lengths)
        self.generated_total += generated
        grouped = rewards.view(-1, G)
        metrics = {
            "loss": float(out.loss.detach()),
            "reward": float(rewards.mean()),
            "reward_std": float(grouped.std(dim=1).mean()),
            "accuracy": sum(r.correct for g in groups for r in g.rewards) / len(lengths),
            "format": sum(r.formatted for g in groups for r in g.rewards) / len(lengths),
            "frac_reward_zero_std": float((grouped.std(dim=1) == 0).float().mean()),
            "kl": float(out.kl),
            "clip_ratio": float(out.clip_ratio),
            "completion_length": generated / len(lengths),
            "cut_at_max_tokens": sum(len(t) >= settings.max_new_tokens for g in groups for t in g.reasoning_tokens)
            / len(lengths),
            "generated_tokens": float(generated),
            "generated_tokens_total": float(self.generated_total),
            "sample_s": round(sampled - started, 3),
        }
        return out.loss, metrics

    # ---- pieces ----
    @torch.no_grad()
    def sample(self, model: nn.Module, questions: list[PDPOQuestion], features: list[MediaFeatures | None],
               seed: int) -> list[Group]:
        """G paths per question, all in one two-turn decode call (as `SalmonnO1Pipeline.ask_batch`)."""
        settings, G = self.settings, self.settings.num_generations
        decoder = Decoder.from_tokenizer(model, self.processor.tokenizer)
        prompts = [self.processor.encode(prompt_text(q, model), f).input_ids for q, f in zip(questions, features)]
        rows = [prompts[i] for i in range(len(questions)) for _ in range(G)]
        media = decoder.encode_media([features[i] for i in range(len(questions)) for _ in range(G)])
        sampling = SamplingConfig(max_new_tokens=settings.max_new_tokens, do_sample=True,
                                  temperature=settings.temperature, top_p=settings.top_p, seed=seed)
        first = decoder.generate(rows, media, sampling)
        second = decoder.answer_turn(first, replace(sampling, max_new_tokens=settings.answer_max_new_tokens))
        stop = decoder.ids.stop_ids
        groups = []
        for i, question in enumerate(questions):
            span = range(i * G, (i + 1) * G)
            reasoning = [clean_generated(self._text(first.tokens[k], stop)) for k in span]
            answers = [self._text(second.tokens[k], stop) for k in span]
            rewards = [path_reward(r, a, question.target, settings.format_weight) for r, a in zip(reasoning, answers)]
            groups.append(Group(question, prompts[i], [list(first.tokens[k]) for k in span],
                                [list(second.tokens[k]) for k in span], reasoning, answers, rewards))
        self._follow_up = list(decoder.ids.follow_up)
        return groups

    def _text(self, tokens: list[int], stop_ids) -> str:
        tokens = [t for t in tokens if t not in stop_ids]
        return self.processor.tokenizer.decode(tokens, skip_special_tokens=False).strip()

    def rows(self, groups: list[Group]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Right-padded ids (N, L) of prompt + reasoning + follow-up + answer, the completion mask
        (reasoning and answer tokens, as sampled, stop tokens included) and each row's prompt length."""
        sequences, masks, prompt_lengths = [], [], []
        for group in groups:
            for reasoning, answer in zip(group.reasoning_tokens, group.answer_tokens):
                ids = group.prompt_ids + reasoning + self._follow_up + answer
                marks = ([0] * len(group.prompt_ids) + [1] * len(reasoning) + [0] * len(self._follow_up)
                         + [1] * len(answer))
                sequences.append(ids)
                masks.append(marks)
                prompt_lengths.append(len(group.prompt_ids))
        length = max(len(s) for s in sequences)
        pad = self.processor.tokenizer.pad_token_id or 0
        ids = torch.full((len(sequences), length), pad, dtype=torch.long)
        mask = torch.zeros((len(sequences), length), dtype=torch.long)
        for i, (s, m) in enumerate(zip(sequences, masks)):
            ids[i, :len(s)] = torch.tensor(s)
            mask[i, :len(m)] = torch.tensor(m)
        return ids, mask, prompt_lengths

    def score(self, model: nn.Module, inner: nn.Module, ids: torch.Tensor, mask: torch.Tensor,
              prompt_lengths: list[int], features: list[MediaFeatures | None]) -> torch.Tensor:
        """Per-token log-probs (N, L) of the completion tokens under `model` (zero elsewhere).

        Each question's media is encoded once (`inner.encode_media`, with gradient into the trained
        aligners) and spliced over the placeholders of its prompt only: a placeholder id sampled
        in a completion stays the plain token embedding the decoder fed.
        """
        device = next(inner.parameters()).device
        G = self.settings.num_generations
        present = [f for f in features if f is not None]
        encoded = iter(inner.encode_media(MediaBatch.collate(present).to(device)) if present else [])
        sequences = [None if f is None else next(encoded) for f in features]
        ids = ids.to(device)
        attention = torch.zeros_like(ids)
        for i, (row_mask, length) in enumerate(zip(mask, prompt_lengths)):
            last = int(row_mask.nonzero().max()) + 1 if row_mask.any() else length
            attention[i, :last] = 1
        media_id = inner.config.media_token_id
        is_media = torch.zeros_like(ids, dtype=torch.bool)
        for i, length in enumerate(prompt_lengths):
            is_media[i, :length] = ids[i, :length] == media_id
        embeds = inner.get_input_embeddings()(ids.masked_fill(is_media, 0))
        for i in range(ids.shape[0]):
            sequence = sequences[i // G]
            if sequence is not None:
                embeds[i, is_media[i].nonzero().squeeze(1)] = sequence.to(embeds.dtype)
        logits = model(inputs_embeds=embeds, attention_mask=attention).logits
        return completion_logps(logits, ids, mask.to(device), self.settings.temperature)
