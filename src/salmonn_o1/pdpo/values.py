"""Stage 3: the value of a step = the fraction of rollouts from it that reach the reference answer.

At a selected step k of a path, one alternative step s'_k is sampled from the
same prefix (decoding stops at `<end_of_step>` or at the end of the turn), then
N completions are rolled out from (prefix, s_k) and N from (prefix, s'_k), each
with the two-turn protocol (finish the reasoning, then "What is the final
answer...?"); p and p' are the fractions judged correct.

The policy is an interface (`RolloutPolicy`) so the estimator can be tested
with a scripted policy whose success rates are known; `ModelPolicy` is the real
one. A continuation always starts from the given assistant prefix: its ids are
the prompt ids followed by the prefix segments' ids, built exactly as the pair
records will be (`pairs.prefix_ids` / `pairs.continuation_ids`), and decoded
by the same `decoding.Decoder` the inference pipeline uses (media encoded once
per question, the answer turn over the reasoning turn's KV cache).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import torch

from salmonn_o1.decoding import Decoder
from salmonn_o1.generation import SamplingConfig
from salmonn_o1.pdpo.judge import Judge, Target, exact_match_judge
from salmonn_o1.pdpo.pairs import Continuation, continuation_ids, prefix_ids
from salmonn_o1.pdpo.steps import clean_generated, same_step, step_segments
from salmonn_o1.processor import MediaFeatures, SalmonnO1Processor


@dataclass
class Completion:
    """One rollout: the rest of the reasoning and the answer turn."""

    reasoning: str  # the whole reasoning turn: prefix, step and what was sampled after it
    answer_text: str
    generated: int  # tokens sampled for it (both turns)


@dataclass
class SampledStep:
    step: Continuation | None  # None: nothing usable was generated
    generated: int
    truncated: bool = False  # cut at max_step_tokens before <end_of_step> or the end of the turn


class RolloutPolicy(Protocol):
    """What the value estimator needs from a policy. `context` is whatever `prepare` returned."""

    def prepare(self, prompt: str, features: MediaFeatures | None) -> Any: ...

    def sample_step(self, context: Any, prefix: list[str], seed: int) -> SampledStep: ...

    def complete(self, context: Any, prefix: list[str], steps: list[Continuation], n: int,
                 seed: int) -> list[list[Completion]]: ...


@dataclass
class StepValues:
    """The outcome at one selected step."""

    original: Continuation
    alternative: Continuation | None
    original_answers: list[str | None] = field(default_factory=list)
    alternative_answers: list[str | None] = field(default_factory=list)
    generated: int = 0
    alternative_tries: int = 0
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def value_of(completions: list[Completion], target: Target, judge: Judge) -> tuple[float, list[str | None]]:
    verdicts = [judge(c.reasoning, c.answer_text, target) for c in completions]
    return sum(v.correct for v in verdicts) / max(len(verdicts), 1), [v.answer for v in verdicts]


def step_values(
    policy: RolloutPolicy,
    context: Any,
    prefix: list[str],
    original: Continuation,
    target: Target,
    num_rollouts: int = 6,
    seed: int = 0,
    judge: Judge = exact_match_judge,
    alternative_tries: int = 3,
) -> StepValues:
    """Sample an alternative to `original` after `prefix`, roll out both, return their values.

    An alternative equal to the original (up to whitespace and numbering) is
    resampled, at most `alternative_tries` times in all; if none differs, no
    rollouts are spent and `alternative` is None.
    """
    generated = 0
    alternative = None
    truncated = False
    tries = 0
    for tries in range(1, alternative_tries + 1):
        sampled = policy.sample_step(context, prefix, seed=seed * 1000 + tries)
        generated += sampled.generated
        if sampled.step is not None and not same_step(sampled.step.text, original.text):
            alternative = sampled.step
            truncated = sampled.truncated
            break
    if alternative is None:
        return StepValues(original, None, generated=generated, alternative_tries=tries,
                          note="no alternative differing from the original step")
    completions = policy.complete(context, prefix, [original, alternative], num_rollouts, seed=seed)
    generated += sum(c.generated for group in completions for c in group)
    p, original_answers = value_of(completions[0], target, judge)
    q, alternative_answers = value_of(completions[1], target, judge)
    return StepValues(
        Continuation(original.text, original.ends_turn, p), Continuation(alternative.text, alternative.ends_turn, q),
        original_answers, alternative_answers, generated, tries,
        note="alternative cut at max_step_tokens" if truncated else "",
    )


@dataclass
class ModelContext:
    prompt_ids: list[int]
    media: torch.Tensor | None  # (N, H) encoded once per question


class ModelPolicy:
    """The SFT model as a rollout policy: seeded sampling through the pipeline's `Decoder`.

    max_step_tokens bounds an alternative step; max_new_tokens / answer_max_new_tokens
    bound a completion's two turns.
    """

    def __init__(self, model, processor: SalmonnO1Processor, temperature: float = 1.0, top_p: float = 1.0,
                 max_new_tokens: int = 512, answer_max_new_tokens: int = 64, max_step_tokens: int = 128):
        self.model = model
        self.processor = processor
        self.decoder = Decoder.from_tokenizer(model, processor.tokenizer)
        ids = self.decoder.ids
        self.stop_ids = ids.stop_ids
        self.step_stop_ids = ids.stop_ids | {ids.end_of_step_id}  # an alternative step ends at <end_of_step>
        self.follow_up = list(ids.follow_up)
        self.temperature, self.top_p = temperature, top_p
        self.max_new_tokens, self.answer_max_new_tokens = max_new_tokens, answer_max_new_tokens
        self.max_step_tokens = max_step_tokens

    def _sampling(self, max_new_tokens: int, seed: int) -> SamplingConfig:
        return SamplingConfig(max_new_tokens=max_new_tokens, do_sample=True, temperature=self.temperature,
                              top_p=self.top_p, seed=seed)

    def prepare(self, prompt: str, features: MediaFeatures | None) -> ModelContext:
        return ModelContext(self.processor.encode(prompt, features).input_ids,
                            self.decoder.encode_media([features])[0])

    def _text(self, tokens: list[int]) -> str:
        tokens = [t for t in tokens if t not in self.stop_ids]
        return clean_generated(self.processor.tokenizer.decode(tokens, skip_special_tokens=False))

    def sample_step(self, context: ModelContext, prefix: list[str], seed: int) -> SampledStep:
        row = context.prompt_ids + prefix_ids(self.processor, prefix)
        result = self.decoder.generate([row], [context.media], self._sampling(self.max_step_tokens, seed),
                                       stop_ids=self.step_stop_ids)
        tokens = result.tokens[0]
        ends_turn = bool(tokens) and tokens[-1] in self.stop_ids
        text = self._text(tokens)
        # A model that numbers its steps without markers runs on past the step: keep the first one.
        segments = step_segments(text)
        if not segments:
            return SampledStep(None, len(tokens))
        if len(segments) > 1:
            return SampledStep(Continuation(segments[0], False), len(tokens))
        stopped = bool(tokens) and tokens[-1] in self.step_stop_ids
        return SampledStep(Continuation(text, ends_turn), len(tokens), truncated=not stopped)

    def complete(self, context: ModelContext, prefix: list[str], steps: list[Continuation], n: int,
                 seed: int) -> list[list[Completion]]:
        """n completions after (prefix, step) for each step, all in one batch per kind of row."""
        shared = context.prompt_ids + prefix_ids(self.processor, prefix)
        rows = [shared + continuation_ids(self.processor, step) for step in steps for _ in range(n)]
        done = [step.ends_turn for step in steps for _ in range(n)]
        out: list[Completion | None] = [None] * len(rows)
        open_rows = [i for i, d in enumerate(done) if not d]
        closed_rows = [i for i, d in enumerate(done) if d]
        if open_rows:
            for i, completion in zip(open_rows, self._two_turns(context, [rows[i] for i in open_rows], seed)):
                out[i] = completion
        if closed_rows:
            # The step closed the reasoning turn: only the answer turn is left.
            answers = self._answer_only(context, [rows[i] + self.follow_up for i in closed_rows], seed)
            for i, completion in zip(closed_rows, answers):
                out[i] = completion
        heads = ["".join(prefix) + step.text for step in steps]
        return [[Completion(heads[k] + c.reasoning, c.answer_text, c.generated) for c in out[k * n:(k + 1) * n]]
                for k in range(len(steps))]

    def _two_turns(self, context: ModelContext, rows: list[list[int]], seed: int) -> list[Completion]:
        media = [context.media] * len(rows)
        first = self.decoder.generate(rows, media, self._sampling(self.max_new_tokens, seed))
        second = self.decoder.answer_turn(first, self._sampling(self.answer_max_new_tokens, seed + 1))
        return [Completion(self._text(a), self._text(b), len(a) + len(b))
                for a, b in zip(first.tokens, second.tokens)]

    def _answer_only(self, context: ModelContext, rows: list[list[int]], seed: int) -> list[Completion]:
        result = self.decoder.generate(rows, [context.media] * len(rows),
                                       self._sampling(self.answer_max_new_tokens, seed))
        return [Completion("", self._text(t), len(t)) for t in result.tokens]
