"""Stage 3: the value of a step = the fraction of rollouts from it that reach the reference answer.

At a selected step k of a path, one alternative step s'_k is sampled from the
same prefix (decoding stops at `<end_of_step>` or at the end of the turn), then
N completions are rolled out from (prefix, s_k) and N from (prefix, s'_k), each
with the two-turn protocol (finish the reasoning, then "What is the final
answer...?"); p and p' are the fractions judged correct.

`label_sites` values many steps (of many questions) at once: the alternatives of
every step in one batch, then only the rows whose sample equals the original
again, then every branch's completions, `batch_size` rows a call. Every row is
seeded by where it is (the step's key, the try; or the branch and the rollout
index), so the values do not depend on the batch size or on which steps share
a batch.

The policy is an interface (`RolloutPolicy`, one batch of rows a call) so the
estimator can be tested with a scripted policy whose success rates are known;
`ModelPolicy` is the real one. A continuation always starts from the given
assistant prefix: its ids are the prompt ids followed by the prefix segments'
ids, built exactly as the pair records will be (`pairs.prefix_ids` /
`pairs.continuation_ids`), and decoded by the same `decoding.Decoder` the
inference pipeline uses (media encoded and the prompt prefilled once per
question for all its calls; the N copies of a branch prefilled once; the answer
turn over the reasoning turn's KV cache).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import torch

from salmonn_o1.decoding import Decoder, turn_text
from salmonn_o1.generation import SamplingConfig
from salmonn_o1.pdpo.costs import Cost, count_forward
from salmonn_o1.pdpo.folder import question_seed
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


@dataclass(frozen=True)
class StepRequest:
    """One row to sample an alternative step for: after `prefix`, seeded by `seed` alone."""

    context: Any
    prefix: list[str]
    seed: int


@dataclass(frozen=True)
class CompletionRequest:
    """One row to complete: after (prefix, step), seeded by `seed` alone."""

    context: Any
    prefix: list[str]
    step: Continuation
    seed: int


class RolloutPolicy(Protocol):
    """What the value estimator needs from a policy: batched calls, one result per row, each row's
    samples depending on its own seed only. `context` is whatever `prepare` returned."""

    def prepare(self, prompt: str, features: MediaFeatures | None) -> Any: ...

    def sample_steps(self, requests: Sequence[StepRequest]) -> list[SampledStep]: ...

    def complete(self, requests: Sequence[CompletionRequest]) -> list[Completion]: ...


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


@dataclass
class Site:
    """One step to value: its context and prefix, the original step, the reference answer.

    key: where it is (seed, question id, path, step): every row's seed derives from it.
    cost: where its share of the forward passes goes (steps of one question share one).
    """

    context: Any
    prefix: list[str]
    original: Continuation
    target: Target
    key: tuple
    cost: Cost | None = None


def value_of(completions: list[Completion], target: Target, judge: Judge) -> tuple[float, list[str | None]]:
    verdicts = [judge(c.reasoning, c.answer_text, target) for c in completions]
    return sum(v.correct for v in verdicts) / max(len(verdicts), 1), [v.answer for v in verdicts]


def label_sites(
    policy: RolloutPolicy,
    sites: Sequence[Site],
    num_rollouts: int = 6,
    judge: Judge = exact_match_judge,
    alternative_tries: int = 3,
    batch_size: int = 16,
) -> list[StepValues]:
    """Sample an alternative to each site's original step, roll out both branches, return their values.

    An alternative equal to the original (up to whitespace and numbering) is resampled, at most
    `alternative_tries` times in all (try t of a site seeded by (key, t)); a site none of whose tries
    differs spends no rollouts and gets alternative None. Completion r of branch b (0 original,
    1 alternative) is seeded by (key, b, r). batch_size: rows per policy call.
    """
    generated = [0] * len(sites)
    tries = [0] * len(sites)
    found: dict[int, SampledStep] = {}
    pin = getattr(policy, "pin_prefixes", None)  # a policy that can keep prefilled prefixes for later calls
    if pin is not None:
        distinct = {(id(s.context), tuple(s.prefix)): s for s in sites if s.prefix}
        order = sorted(distinct.values(), key=lambda s: sum(map(len, s.prefix)))
        _batched(policy, pin, [StepRequest(s.context, s.prefix, 0) for s in order], order, batch_size)
    for t in range(1, alternative_tries + 1):
        todo = sorted((i for i in range(len(sites)) if i not in found), key=lambda i: sum(map(len, sites[i].prefix)))
        if not todo:
            break
        requests = [StepRequest(sites[i].context, sites[i].prefix, question_seed(*sites[i].key, t)) for i in todo]
        sampled = _batched(policy, policy.sample_steps, requests, [sites[i] for i in todo], batch_size)
        for i, s in zip(todo, sampled):
            generated[i] += s.generated
            tries[i] = t
            if s.step is not None and not same_step(s.step.text, sites[i].original.text):
                found[i] = s
    rows: list[tuple[int, int]] = []  # (site, branch) of each completion row
    requests = []
    for i in sorted(found):
        for b, step in enumerate((sites[i].original, found[i].step)):
            for r in range(num_rollouts):
                rows.append((i, b))
                requests.append(CompletionRequest(sites[i].context, sites[i].prefix, step,
                                                  question_seed(*sites[i].key, b, r)))
    # Rows that close the turn take a shorter path (the answer turn only): keep them together; and
    # steps with prefixes of like length, so a call's left padding (holes every row attends past) is short.
    order = sorted(range(len(rows)), key=lambda j: (requests[j].step.ends_turn,
                                                    sum(map(len, requests[j].prefix)) + len(requests[j].step.text)))
    done = _batched(policy, policy.complete, [requests[j] for j in order], [sites[rows[j][0]] for j in order],
                    batch_size)
    completions: dict[tuple[int, int], list[Completion]] = {}
    for j, completion in sorted(zip(order, done), key=lambda x: x[0]):
        completions.setdefault(rows[j], []).append(completion)
        generated[rows[j][0]] += completion.generated
    out = []
    for i, site in enumerate(sites):
        if i not in found:
            out.append(StepValues(site.original, None, generated=generated[i], alternative_tries=tries[i],
                                  note="no alternative differing from the original step"))
            continue
        alternative = found[i].step
        p, original_answers = value_of(completions.get((i, 0), []), site.target, judge)
        q, alternative_answers = value_of(completions.get((i, 1), []), site.target, judge)
        out.append(StepValues(
            Continuation(site.original.text, site.original.ends_turn, p),
            Continuation(alternative.text, alternative.ends_turn, q),
            original_answers, alternative_answers, generated[i], tries[i],
            note="alternative cut at max_step_tokens" if found[i].truncated else "",
        ))
    return out


def _batched(policy: RolloutPolicy, call, requests: list, sites: list[Site], batch_size: int) -> list:
    """call(requests) in pieces of batch_size rows; each piece's forward passes shared out among the
    sites' costs by rows (`Cost.split`)."""
    out = []
    for start in range(0, len(requests), batch_size):
        piece, owners = requests[start:start + batch_size], sites[start:start + batch_size]
        with _metered(getattr(policy, "model", None), [s.cost for s in owners]):
            out.extend(call(piece))
    return out


@contextmanager
def _metered(model, costs: list[Cost | None]) -> Iterator[None]:
    """Count one call's forwards and add each cost's share (by its rows in the call) to it."""
    call = Cost()
    with count_forward(model, call):
        yield
    distinct = {id(c): c for c in costs if c is not None}
    if not distinct:
        return
    weights = [sum(1 for c in costs if c is owner) for owner in distinct.values()]
    for owner, share in zip(distinct.values(), call.split(weights)):
        owner.add(share)


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
    batch_size: int = 16,
) -> StepValues:
    """One step's values (`label_sites` of one site, keyed by `seed`)."""
    site = Site(context, prefix, original, target, (seed,))
    return label_sites(policy, [site], num_rollouts, judge, alternative_tries, batch_size)[0]


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

    def _sampling(self, max_new_tokens: int) -> SamplingConfig:
        return SamplingConfig(max_new_tokens=max_new_tokens, do_sample=True, temperature=self.temperature,
                              top_p=self.top_p)

    def prepare(self, prompt: str, features: MediaFeatures | None) -> ModelContext:
        """Encode the media once and prefill the prompt once (pinned in the decoder until `release`):
        every row of the question (alternatives, retries, completions) begins with it."""
        context = ModelContext(self.processor.encode(prompt, features).input_ids,
                               self.decoder.encode_media([features])[0])
        self.decoder.pin_prefix(context.prompt_ids[:-1], context.media)  # a row needs one position of its own
        return context

    def pin_prefixes(self, requests: Sequence[StepRequest]) -> list[None]:
        """Prefill each (prompt, prefix) once, pinned until `release`: its alternatives, their retries
        and both branches' completions all continue it."""
        rows = [r.context.prompt_ids + prefix_ids(self.processor, r.prefix) for r in requests]
        self.decoder.pin_prefixes([row[:-1] for row in rows], [r.context.media for r in requests])
        return [None] * len(requests)

    def release(self) -> None:
        """Free the prompts `prepare` pinned."""
        self.decoder.unpin()

    def _text(self, tokens: list[int]) -> str:
        return clean_generated(turn_text(self.processor.tokenizer, tokens, self.stop_ids))

    def sample_steps(self, requests: Sequence[StepRequest]) -> list[SampledStep]:
        """One alternative step per row, one batch (rows of several questions and steps together)."""
        rows = [r.context.prompt_ids + prefix_ids(self.processor, r.prefix) for r in requests]
        result = self.decoder.generate(rows, [r.context.media for r in requests],
                                       self._sampling(self.max_step_tokens), stop_ids=self.step_stop_ids,
                                       row_seeds=[r.seed for r in requests])
        return [self._step(tokens) for tokens in result.tokens]

    def _step(self, tokens: list[int]) -> SampledStep:
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

    def complete(self, requests: Sequence[CompletionRequest]) -> list[Completion]:
        """One completion after (prefix, step) per row: rows whose step closed the reasoning turn get the
        answer turn only, the others both turns (one batch per kind; repeated rows prefilled once)."""
        rows = [r.context.prompt_ids + prefix_ids(self.processor, r.prefix) + continuation_ids(self.processor, r.step)
                for r in requests]
        out: list[Completion | None] = [None] * len(rows)
        open_rows = [i for i, r in enumerate(requests) if not r.step.ends_turn]
        closed_rows = [i for i, r in enumerate(requests) if r.step.ends_turn]
        if open_rows:
            done = self._two_turns([rows[i] for i in open_rows], [requests[i] for i in open_rows])
            for i, completion in zip(open_rows, done):
                out[i] = completion
        if closed_rows:
            # The step closed the reasoning turn: only the answer turn is left.
            done = self._answer_only([rows[i] + self.follow_up for i in closed_rows],
                                     [requests[i] for i in closed_rows])
            for i, completion in zip(closed_rows, done):
                out[i] = completion
        return [Completion("".join(r.prefix) + r.step.text + c.reasoning, c.answer_text, c.generated)
                for r, c in zip(requests, out)]

    def _two_turns(self, rows: list[list[int]], requests: list[CompletionRequest]) -> list[Completion]:
        first = self.decoder.generate(rows, [r.context.media for r in requests], self._sampling(self.max_new_tokens),
                                      row_seeds=[r.seed for r in requests])
        second = self.decoder.answer_turn(first, self._sampling(self.answer_max_new_tokens))  # same streams
        return [Completion(self._text(a), self._text(b), len(a) + len(b))
                for a, b in zip(first.tokens, second.tokens)]

    def _answer_only(self, rows: list[list[int]], requests: list[CompletionRequest]) -> list[Completion]:
        result = self.decoder.generate(rows, [r.context.media for r in requests],
                                       self._sampling(self.answer_max_new_tokens),
                                       row_seeds=[r.seed for r in requests])
        return [Completion("", self._text(t), len(t)) for t in result.tokens]
