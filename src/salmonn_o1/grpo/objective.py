"""`GRPOObjective`: questions -> G sampled paths each -> rewards -> the GRPO loss, on the shared `Trainer`.

A batch is a few questions (with their media features, loaded in `collate`). `loss`
samples G paths per question with the current policy through `decoding.Decoder`, exactly
as `SalmonnO1Pipeline.ask_batch` does (the same prompt, one decode call for every path of
the batch, the answer turn over the reasoning turn's KV cache), each path from its own
seeded stream: path k of the question at plan position p is seeded `question_seed(seed,
"grpo", p, k)` (per question and step, as pDPO's rollouts seed per question and path), so a
resumed run samples the same paths and a path does not depend on the rest of its batch. Each path is judged (`rewards.path_reward`), advantages are normalised per
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

from salmonn_o1.decoding import Decoder, ProtocolIds, turn_text
from salmonn_o1.generation import SamplingConfig
from salmonn_o1.grpo.loss import group_advantages, grpo_loss, token_logps
from salmonn_o1.grpo.rewards import Reward, path_reward
from salmonn_o1.model.media_batch import MediaBatch
from salmonn_o1.pdpo.costs import unwrapped
from salmonn_o1.pdpo.folder import question_seed
from salmonn_o1.pdpo.loss import adapters_disabled, disable_dropout, has_adapters
from salmonn_o1.pdpo.media import FeatureCache
from salmonn_o1.pdpo.questions import PDPOQuestion
from salmonn_o1.pdpo.steps import clean_generated
from salmonn_o1.processor import MediaFeatures, SalmonnO1Processor
from salmonn_o1.prompts import DEFAULT_REASONING_PROMPT, format_question
from salmonn_o1.train.recipe import GRPOSettings


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
        self._follow_up = list(ProtocolIds.from_tokenizer(processor.tokenizer).follow_up)  # between the turns

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
        policy = unwrapped(model)
        if id(policy) not in self._dropout_off:  # sampling and scoring must see one distribution
            disable_dropout(policy)
            self._dropout_off.add(id(policy))
        started = time.perf_counter()
        G = self.settings.num_generations
        seeds = [question_seed(self.seed, "grpo", position, k) for position in batch["positions"] for k in range(G)]
        groups = self.sample(policy, batch["questions"], batch["features"], seeds)
        sampled = time.perf_counter()
        settings = self.settings
        rewards = torch.tensor([r.total for g in groups for r in g.rewards], dtype=torch.float32)
        advantages = group_advantages(rewards, G, settings.scale_rewards)
        ids, mask = self.completions(groups)
        features = batch["features"]
        logps = self.score(model, policy, groups, ids, mask, features)
        ref = None
        if settings.beta > 0:
            with torch.no_grad():
                if self.reference is not None:
                    ref = self.score(self.reference, self.reference, groups, ids, mask, features)
                elif has_adapters(policy):
                    with adapters_disabled(policy):
                        ref = self.score(model, policy, groups, ids, mask, features)
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
               row_seeds: list[int]) -> list[Group]:
        """G paths per question, all in one two-turn decode call (as `SalmonnO1Pipeline.ask_batch`), path k
        of question i from its own seeded stream `row_seeds[i * G + k]` (both turns), so its samples do not
        depend on the rest of the batch."""
        settings, G = self.settings, self.settings.num_generations
        decoder = Decoder.from_tokenizer(model, self.processor.tokenizer)
        prompts = [self.processor.encode(prompt_text(q, model), f).input_ids for q, f in zip(questions, features)]
        rows = [prompts[i] for i in range(len(questions)) for _ in range(G)]
        media = decoder.encode_media([features[i] for i in range(len(questions)) for _ in range(G)])
        sampling = SamplingConfig(max_new_tokens=settings.max_new_tokens, do_sample=True,
                                  temperature=settings.temperature, top_p=settings.top_p)
        first = decoder.generate(rows, media, sampling, row_seeds=row_seeds)
        second = decoder.answer_turn(first, replace(sampling, max_new_tokens=settings.answer_max_new_tokens))
        stop, tokenizer = decoder.ids.stop_ids, self.processor.tokenizer
        groups = []
        for i, question in enumerate(questions):
            span = range(i * G, (i + 1) * G)
            reasoning = [clean_generated(turn_text(tokenizer, first.tokens[k], stop).strip()) for k in span]
            answers = [turn_text(tokenizer, second.tokens[k], stop).strip() for k in span]
            rewards = [path_reward(r, a, question.target, settings.format_weight) for r, a in zip(reasoning, answers)]
            groups.append(Group(question, prompts[i], [list(first.tokens[k]) for k in span],
                                [list(second.tokens[k]) for k in span], reasoning, answers, rewards))
        return groups

    def completions(self, groups: list[Group]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded completion ids (N, C): reasoning + follow-up + answer, as the decoder fed them,
        and the mask (N, C) of the tokens trained: the reasoning and answer tokens (stop tokens
        included), not the follow-up question, not the padding."""
        sequences, masks = [], []
        for group in groups:
            for reasoning, answer in zip(group.reasoning_tokens, group.answer_tokens):
                sequences.append(reasoning + self._follow_up + answer)
                masks.append([1] * len(reasoning) + [0] * len(self._follow_up) + [1] * len(answer))
        length = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), length), self.processor.tokenizer.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros((len(sequences), length), dtype=torch.long)
        for i, (s, m) in enumerate(zip(sequences, masks)):
            ids[i, :len(s)] = torch.tensor(s)
            mask[i, :len(m)] = torch.tensor(m)
        return ids, mask

    def score(self, model: nn.Module, inner: nn.Module, groups: list[Group], ids: torch.Tensor, mask: torch.Tensor,
              features: list[MediaFeatures | None]) -> torch.Tensor:
        """Per-token log-probs (N, C) of the completion tokens under `model` (zero elsewhere).

        Per question, the prompt (its media encoded once, with gradient into the trained aligners)
        runs once into a KV cache, which is repeated for the G rows of its group; the completions
        then run over it. Gradients flow through the shared prompt as through G separate copies,
        at about a third of the positions for the miniature model's prompts.
        """
        from transformers import DynamicCache

        device = next(inner.parameters()).device
        G = self.settings.num_generations
        present = [f for f in features if f is not None]
        encoded = iter(inner.encode_media(MediaBatch.collate(present).to(device)) if present else [])
        sequences = [None if f is None else next(encoded) for f in features]
        ids, mask = ids.to(device), mask.to(device)
        embed = inner.get_input_embeddings()
        out = []
        for q, group in enumerate(groups):
            prompt = torch.tensor([group.prompt_ids], device=device)
            prompt_embeds = inner.splice_media(prompt, [sequences[q]])
            length = prompt.shape[1]
            head = model(inputs_embeds=prompt_embeds, attention_mask=torch.ones_like(prompt),
                         position_ids=torch.arange(length, device=device)[None], cache=DynamicCache(),
                         use_cache=True, logits_to_keep=1)
            cache = head.cache
            cache.batch_repeat_interleave(G)
            rows = slice(q * G, (q + 1) * G)
            last = int(mask[rows].nonzero()[:, 1].max()) + 1 if mask[rows].any() else 1
            tokens, marks = ids[rows, :last], mask[rows, :last]
            # Right padding only follows a row's real tokens, so causal attention never sees it.
            attention = torch.ones(G, length + last, dtype=torch.long, device=device)
            tail = model(inputs_embeds=embed(tokens), attention_mask=attention,
                         position_ids=(length + torch.arange(last, device=device))[None].expand(G, last),
                         cache=cache, use_cache=True)
            logits = torch.cat([head.logits[:, -1:].expand(G, 1, -1), tail.logits[:, :-1]], dim=1)
            scored = token_logps(logits, tokens, marks, self.settings.temperature)
            out.append(torch.nn.functional.pad(scored, (0, ids.shape[1] - last)))
        return torch.cat(out)
