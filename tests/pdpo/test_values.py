"""Step values: a scripted policy with known success rates, and the model policy's continuations
starting exactly from the given assistant prefix."""

import random

import pytest
import torch

from salmonn_o1 import decoding as decoding_module
from salmonn_o1.pdpo.judge import Target, exact_match_judge
from salmonn_o1.pdpo.pairs import Continuation, continuation_ids, prefix_ids
from salmonn_o1.pdpo.values import (
    Completion,
    CompletionRequest,
    ModelPolicy,
    SampledStep,
    Site,
    StepRequest,
    label_sites,
    step_values,
)

RATES = {"\n2. The tone is high.<end_of_step>": 0.8, "\n2. The tone is low.<end_of_step>": 0.3}


class ScriptedPolicy:
    """Completions after a step reach answer "A" with that step's known rate, each row by its own seed."""

    def __init__(self, alternatives=("\n2. The tone is low.<end_of_step>",)):
        self.alternatives = list(alternatives)
        self.calls = []

    def prepare(self, prompt, features):
        return None

    def sample_steps(self, requests):
        self.calls.append(("steps", len(requests)))
        return [SampledStep(Continuation(self.alternatives.pop(0) if len(self.alternatives) > 1
                                         else self.alternatives[0]), generated=5) for _ in requests]

    def complete(self, requests):
        self.calls.append(("complete", len(requests)))
        return [Completion("...", "A" if random.Random(r.seed).random() < RATES[r.step.text] else "C", 3)
                for r in requests]


TARGET = Target("A", ["red", "green", "blue"])
ORIGINAL = Continuation("\n2. The tone is high.<end_of_step>")


def test_values_converge_to_the_known_success_rates():
    result = step_values(ScriptedPolicy(), None, ["1. x<end_of_step>"], ORIGINAL, TARGET, num_rollouts=4000, seed=1)
    assert result.original.value == pytest.approx(0.8, abs=0.03)
    assert result.alternative.value == pytest.approx(0.3, abs=0.03)
    assert result.generated == 5 + 2 * 4000 * 3


def test_six_rollouts_are_unbiased_over_many_steps():
    estimates = [step_values(ScriptedPolicy(), None, [], ORIGINAL, TARGET, num_rollouts=6, seed=s)
                 for s in range(400)]
    assert sum(e.original.value for e in estimates) / 400 == pytest.approx(0.8, abs=0.03)
    assert sum(e.alternative.value for e in estimates) / 400 == pytest.approx(0.3, abs=0.03)
    assert all(e.original.value * 6 == round(e.original.value * 6) for e in estimates)


def test_an_alternative_equal_to_the_original_is_resampled():
    policy = ScriptedPolicy(["\n2.  The tone is  high.<end_of_step>", "\n2. The tone is low.<end_of_step>"])
    result = step_values(policy, None, [], ORIGINAL, TARGET, num_rollouts=2, seed=0)
    assert result.alternative_tries == 2 and result.alternative.text == "\n2. The tone is low.<end_of_step>"
    stuck = step_values(ScriptedPolicy(["\n3. The tone is high.<end_of_step>"]), None, [], ORIGINAL, TARGET,
                        num_rollouts=2, alternative_tries=3)
    assert stuck.alternative is None and stuck.alternative_tries == 3 and stuck.generated == 15


def test_only_the_sites_whose_sample_equals_the_original_are_retried():
    """The alternatives of all steps in one call, then only the rows that sampled the original again;
    the completions of every (step, branch) in calls of batch_size rows."""
    policy = ScriptedPolicy(["\n2. The tone is low.<end_of_step>", "\n2.  The tone is high.<end_of_step>",
                             "\n2. The tone is low.<end_of_step>", "\n2. The tone is low.<end_of_step>"])
    sites = [Site(None, [], ORIGINAL, TARGET, (0, "q", p, 1)) for p in range(3)]
    values = label_sites(policy, sites, num_rollouts=4, batch_size=8)
    assert [v.alternative_tries for v in values] == [1, 2, 1]
    assert policy.calls == [("steps", 3), ("steps", 1), ("complete", 8), ("complete", 8), ("complete", 8)]
    # A site's values depend on its key only: alone, in another batch size, with other sites.
    for i, site in enumerate(sites):
        alone = label_sites(ScriptedPolicy(), [site], num_rollouts=4, batch_size=3)[0]
        assert (alone.original, alone.original_answers) == (values[i].original, values[i].original_answers)
        assert alone.alternative_answers == values[i].alternative_answers


def test_judge_reads_the_answer_turn_then_the_reasoning():
    assert exact_match_judge("", "B", Target("B", ["x", "y"])).correct
    assert exact_match_judge("1. So the answer is B.", "hmm", Target("B", ["x", "y"])).correct
    assert exact_match_judge("", "So the answer is YES.", Target("YES")).answer == "YES"
    assert exact_match_judge("", "The answer is a red square.", Target("red square")).correct


def test_model_policy_continues_from_the_prefix(pipeline, synth_features, monkeypatch):
    policy = ModelPolicy(pipeline.model, pipeline.processor, max_new_tokens=6, answer_max_new_tokens=2,
                         max_step_tokens=6)
    context = policy.prepare("What was on screen?", synth_features)
    prefix = ["1. A buzz plays.<end_of_step>", "\n2. A square shows.<end_of_step>"]
    calls = []
    real_decode = decoding_module.decode

    def spy(model, embeds, mask, *args, **kwargs):
        calls.append((embeds, mask, kwargs.get("state")))
        return real_decode(model, embeds, mask, *args, **kwargs)

    monkeypatch.setattr(decoding_module, "decode", spy)
    [sampled] = policy.sample_steps([StepRequest(context, prefix, seed=0)])
    expected_ids = context.prompt_ids + prefix_ids(pipeline.processor, prefix)
    expected = pipeline.model.splice_media(torch.tensor([expected_ids]), [context.media])
    # The prompt was prefilled once by prepare (pinned): the call feeds only what follows it.
    pinned = len(context.prompt_ids) - 1
    assert policy.decoder.pinned[0].ids == tuple(context.prompt_ids[:pinned])
    assert torch.equal(calls[0][0], expected[:, pinned:]) and calls[0][2].attention_mask.sum() == pinned
    assert calls[0][1].sum() == len(expected_ids) - pinned
    assert sampled.step is not None and sampled.generated >= 1

    calls.clear()
    rows_seen = []
    real_generate = decoding_module.Decoder.generate

    def generate_spy(self, rows, media, *args, **kwargs):
        rows_seen.append([list(row) for row in rows])
        return real_generate(self, rows, media, *args, **kwargs)

    # The rows, as ids: the decoder feeds their shared prefix once and only each row's rest after it.
    monkeypatch.setattr(decoding_module.Decoder, "generate", generate_spy)
    steps = [Continuation("\n3. It is green.<end_of_step>"), Continuation("\n3. The answer is A.", ends_turn=True)]
    requests = [CompletionRequest(context, prefix, step, seed=10 * k + r) for k, step in enumerate(steps)
                for r in range(3)]
    done = policy.complete(requests)
    completions = [done[:3], done[3:]]
    row_ids = expected_ids + continuation_ids(pipeline.processor, steps[0])
    closed_ids = expected_ids + continuation_ids(pipeline.processor, steps[1]) + policy.follow_up
    assert rows_seen == [[row_ids] * 3, [closed_ids] * 3]
    assert calls[1][2] is not None and calls[1][0].shape[0] == 3  # the answer turn continues turn 1's cache
    assert all(c.reasoning == "".join(prefix) + steps[1].text for c in completions[1])
    assert all(c.reasoning.startswith("".join(prefix) + steps[0].text) for c in completions[0])
    assert all(1 <= c.generated <= 8 for c in completions[0])
    # Each row by its own seed: the same rows one at a time give the same completions, pinned prompt or not.
    assert [policy.complete([r])[0] for r in requests] == done
    policy.release()
    assert policy.decoder.pinned == [] and [policy.complete([r])[0] for r in requests] == done
