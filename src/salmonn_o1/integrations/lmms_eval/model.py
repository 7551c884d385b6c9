"""`lmms-eval --model salmonn_o1`: our pipeline behind lmms-eval's `lmms` interface.

    lmms-eval --model salmonn_o1 --model_args pretrained=PATH,reasoning=true --tasks videomme

Model args (all optional): `pretrained` (a checkpoint directory, a preset or the released
layout; default the shipped miniature model), `reasoning` (true: the two-turn reasoning
protocol; false: a direct answer), `reasoning_max_new_tokens` (512), `max_new_tokens` (64,
when a task sets none), `prompt` (the reasoning instruction: a preset name or the text;
default the model's own), `think_tags` (true: return `<think>reasoning</think>answer`;
false: the answer alone), `device` (auto), `dtype` (auto), `threads` (torch's CPU threads,
as `--threads` sets them), `seed` (0, for sampled generation), `batch_size` (1). How a
request's text, token limits and returned text relate to our protocol: `protocol`'s docstring.

A video keeps its audio track: the file's path goes to our media loader, which decodes
frames and audio alike (lmms-eval's video-SALMONN-2 wrapper drops the audio).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from lmms_eval.api.instance import GenerationResult, Instance, TokenCounts
from lmms_eval.api.model import lmms
from lmms_eval.utils import Collator
from loguru import logger
from tqdm import tqdm

from salmonn_o1.errors import MediaError
from salmonn_o1.inference import Question, SalmonnO1Pipeline
from salmonn_o1.integrations.lmms_eval.protocol import cut_at_stop, join_reasoning, turn_settings, user_turn
from salmonn_o1.media_types import SAMPLE_RATE, DecodedMedia
from salmonn_o1.processor import MediaFeatures
from salmonn_o1.runtime import configure_threads


class TaskPromptPipeline(SalmonnO1Pipeline):
    """The pipeline asked with the task's own prompt: `Question.question` is the whole user turn.

    lmms-eval tasks write their prompts themselves (question, options, instructions), so the
    question is not formatted again (`protocol.user_turn` has already placed the reasoning
    instruction); the media placeholder, chat template and both turns are the pipeline's.
    """

    def _prompt_text(self, q: Question) -> str:
        return q.question


def _flag(value: bool | str | int) -> bool:
    """A model arg read as a boolean: lmms-eval passes true/false as bools, other spellings as text."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _batch_size(value: int | str) -> int:
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"salmonn_o1: batch_size must be a whole number, got {value!r} "
                         "(automatic batch sizes are not supported)") from None
    if size < 1:
        raise ValueError(f"salmonn_o1: batch_size must be at least 1, got {size}")
    return size


def to_media(visuals: Sequence | None, where: str):
    """One request's lmms-eval visuals -> our one media input (None for text only).

    A file path (video with its audio, audio, image), a PIL image, or an audio dict
    (`{"array", "sampling_rate"}`, lmms-eval's audio tasks). The model reads one media
    input per question, so several are refused.
    """
    visuals = [v for v in (visuals or []) if v is not None]
    if not visuals:
        return None
    if len(visuals) > 1:
        raise ValueError(f"{where}: salmonn_o1 takes one video, audio or image per question; got {len(visuals)}")
    visual = visuals[0]
    if isinstance(visual, str | Path | DecodedMedia):
        return visual
    if isinstance(visual, dict) and "array" in visual:
        return _audio(np.asarray(visual["array"], dtype=np.float32), int(visual.get("sampling_rate", SAMPLE_RATE)))
    if hasattr(visual, "convert"):  # a PIL image
        frame = np.asarray(visual.convert("RGB"), dtype=np.uint8)
        return DecodedMedia(frame[None], np.zeros(1), None, 0.0, False, "image", where)
    raise ValueError(f"{where}: unsupported visual of type {type(visual).__name__} "
                     "(expected a file path, a PIL image or an audio dict)")


def _audio(samples: np.ndarray, rate: int) -> DecodedMedia:
    """Mono float audio at our 16 kHz (PyAV's resampler for other rates)."""
    if samples.ndim > 1:
        samples = samples.mean(axis=0 if samples.shape[0] < samples.shape[-1] else -1)
    if rate != SAMPLE_RATE:
        import av

        frame = av.AudioFrame.from_ndarray(samples[None, :].astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = rate
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        parts = [f.to_ndarray()[0] for f in resampler.resample(frame)] + \
                [f.to_ndarray()[0] for f in resampler.resample(None)]
        samples = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return DecodedMedia(None, np.zeros(0), samples.astype(np.float32), len(samples) / SAMPLE_RATE, True, "audio")


class SalmonnO1(lmms):
    """salmonn-o1 for lmms-eval: `generate_until` (reasoning or direct) and `loglikelihood`."""

    is_simple = True

    def __init__(
        self,
        pretrained: str | None = None,
        reasoning: bool | str = True,
        reasoning_max_new_tokens: int = 512,
        max_new_tokens: int = 64,
        prompt: str | None = None,
        think_tags: bool | str = True,
        device: str | None = "auto",
        dtype: str = "auto",
        threads: int | None = None,
        seed: int = 0,
        batch_size: int | str = 1,
        max_batch_size: int | None = None,
    ) -> None:
        super().__init__()
        self.reasoning = _flag(reasoning)
        self.think_tags = _flag(think_tags)
        self.reasoning_max_new_tokens = int(reasoning_max_new_tokens)
        self.default_max_new_tokens = int(max_new_tokens)
        if self.reasoning_max_new_tokens < 1 or self.default_max_new_tokens < 1:
            raise ValueError("salmonn_o1: reasoning_max_new_tokens and max_new_tokens must be at least 1")
        self.seed = int(seed)
        self._batch_size = _batch_size(batch_size)
        self.pipeline = TaskPromptPipeline.from_pretrained(pretrained, device=device or "auto", dtype=dtype,
                                                           prompt=prompt)
        # CPU threads as `salmonn-o1 infer --threads` sets them (None: OMP_NUM_THREADS, else by model size)
        model = self.pipeline.model
        configure_threads(int(threads) if threads is not None else None,
                          num_parameters=sum(p.numel() for p in model.parameters()), device=model.device)

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @property
    def device(self) -> torch.device:
        return self.pipeline.device

    @property
    def tokenizer(self):
        return self.pipeline.processor.tokenizer

    # ---- requests ----
    def _media(self, doc_to_visual, doc_id, task: str, split: str):
        doc = self.task_dict[task][split][doc_id]
        return to_media(doc_to_visual(doc), f"task {task}, doc {doc_id}")

    def _features(self, media, cache: dict) -> MediaFeatures | None:
        """Each distinct media input of a batch decoded and featurised once."""
        key = str(media) if isinstance(media, str | Path) else id(media)
        if key not in cache:
            cache[key] = self.pipeline.features(media)
        return cache[key]

    def generate_until(self, requests: list[Instance]) -> list[GenerationResult]:
        """Each request answered by the two-turn protocol (or directly), batched by `batch_size`
        among requests with the same generation settings."""
        results: list[GenerationResult] = []
        arguments = [request.args for request in requests]
        # grouped by generation kwargs (one batch, one setting), longest prompts first
        collator = Collator(arguments, lambda args: (-len(args[0]), args[0]), grouping=True)
        bar = tqdm(total=len(requests), disable=self.rank != 0, desc="salmonn_o1")
        for chunk in collator.get_batched(n=self.batch_size):
            contexts, all_gen_kwargs, doc_to_visual, doc_ids, tasks, splits = zip(*chunk)
            settings = turn_settings(dict(all_gen_kwargs[0]), self.reasoning, self.reasoning_max_new_tokens,
                                     self.default_max_new_tokens)
            cache: dict = {}
            questions: list[Question | None] = []
            for context, to_visual, doc_id, task, split in zip(contexts, doc_to_visual, doc_ids, tasks, splits):
                try:
                    features = self._features(self._media(to_visual, doc_id, task, split), cache)
                except MediaError as error:  # as `infer` does: this item fails (scored wrong), the run goes on
                    logger.warning(f"salmonn_o1: task {task}, doc {doc_id}: {error}; answering ''")
                    questions.append(None)
                    continue
                questions.append(Question(features, user_turn(context, self.reasoning, self.pipeline.prompt),
                                          reasoning=self.reasoning))
            asked = [q for q in questions if q is not None]
            answers = iter(self.pipeline.ask_batch(asked, **settings.generation(self.seed)) if asked else [])
            for context, gen_kwargs, question in zip(contexts, all_gen_kwargs, questions):
                if question is None:
                    results.append(GenerationResult(""))
                    continue
                answer = next(answers)
                text = cut_at_stop(answer.answer_text, list(settings.until))
                returned = join_reasoning(answer.reasoning if self.think_tags else None, text)
                counts = TokenCounts(input_tokens=answer.tokens["prompt"],
                                     output_tokens=answer.tokens["reasoning"] + answer.tokens["answer"],
                                     reasoning_tokens=answer.tokens["reasoning"] if self.reasoning else None)
                results.append(GenerationResult(returned, counts))
                self.cache_hook.add_partial("generate_until", (context, gen_kwargs), returned)
            bar.update(len(chunk))
        bar.close()
        return collator.get_original(results)

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError("salmonn_o1 answers one question per request (reasoning turn + answer turn); "
                                  "multi-round tasks are not supported")

    @torch.no_grad()
    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        """log p(continuation | the task's prompt as the user turn, with the media), teacher-forced in
        the assistant turn; the reasoning mode does not change it (no reasoning turn is decoded)."""
        results: list[tuple[float, bool]] = []
        bar = tqdm(total=len(requests), disable=self.rank != 0, desc="salmonn_o1 loglikelihood")
        pipeline = self.pipeline
        for start in range(0, len(requests), self.batch_size):
            batch = requests[start:start + self.batch_size]
            cache: dict = {}
            rows, conts, features = [], [], []
            for request in batch:
                if len(request.args) == 2:  # an unconditional request (multiple choice's mutual information)
                    (context, continuation), feature = request.args, None
                else:
                    context, continuation, to_visual, doc_id, task, split = request.args
                    if callable(continuation):  # loglikelihood tasks pass doc_to_target itself
                        continuation = continuation(self.task_dict[task][split][doc_id])
                    feature = self._features(self._media(to_visual, doc_id, task, split), cache)
                prompt = pipeline.processor.encode(user_turn(context, False), feature).input_ids
                cont = self.tokenizer.encode(str(continuation), add_special_tokens=False)
                if not cont:
                    raise ValueError(f"loglikelihood of an empty continuation {continuation!r}")
                rows.append(list(prompt) + cont)
                conts.append(cont)
                features.append(feature)
            keep = max(len(c) for c in conts) + 1
            logits = pipeline.decoder.tail_logits(rows, pipeline.decoder.encode_media(features), keep)
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            for i, cont in enumerate(conts):
                # positions -len(cont)-1 .. -2 predict the continuation's tokens
                predicting = logprobs[i, keep - len(cont) - 1: keep - 1]
                target = torch.tensor(cont, device=predicting.device)
                total = predicting.gather(-1, target[:, None]).sum().item()
                greedy = bool((predicting.argmax(-1) == target).all().item())
                results.append((total, greedy))
            bar.update(len(batch))
        bar.close()
        return results
