"""Asking the model about a video: the released two-turn reasoning protocol.

Turn 1 generates the reasoning steps; turn 2 appends the user turn "What is
the final answer to the question based on your thinking steps?" to the same
conversation and generates the answer, continuing from turn 1's KV cache
instead of re-encoding the video (the release re-encodes everything).
Many questions about one video share one encoding of its frames and audio.
The pipeline turns files and questions into prompt ids and reads the answers
out; the decoding itself is `salmonn_o1.decoding.Decoder`'s.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from salmonn_o1.decoding import Decoder, turn_text
from salmonn_o1.eval.extract import read_answer
from salmonn_o1.generation import SamplingConfig
from salmonn_o1.processor import MediaFeatures, MediaInput, SalmonnO1Processor
from salmonn_o1.prompts import DEFAULT_REASONING_PROMPT, format_question, reasoning_instruction
from salmonn_o1.reasoning import split_steps

DEFAULT_MODEL_DIR = Path(__file__).parent / "assets" / "mini"


@dataclass
class Question:
    """One question about one media input (None = text only)."""

    media: MediaInput | MediaFeatures
    question: str
    options: list[str] | None = None
    reasoning: bool = True
    prompt: str | None = None  # reasoning instruction (preset name or text); None: the pipeline's


@dataclass
class AnswerResult:
    question: str
    options: list[str] | None
    reasoning: str | None  # turn-1 text, None for direct answers
    steps: list[str]
    answer_text: str  # turn-2 text (or the direct answer)
    answer: str | None  # read by the one rule (`read_answer`): letter / YES / NO / phrase; None if unreadable
    raw_text: str  # "Reasoning: ...\nAnswer: ..." as the release writes it
    timings: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class MajorityResult:
    """Major@k: the most frequent readable answer over k sampled paths."""

    answer: str | None  # None when no path gave a readable answer
    counts: dict[str, int]  # answer -> votes (unreadable answers do not vote)
    results: list[AnswerResult]

    def to_dict(self) -> dict:
        return {"answer": self.answer, "counts": self.counts, "results": [r.to_dict() for r in self.results]}


def majority_vote(answers: list[str | None]) -> tuple[str | None, dict[str, int]]:
    """The most frequent non-None answer and the vote counts; a tie goes to the answer seen first."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None, {}
    best = max(counts.values())
    winner = next(a for a in answers if a is not None and counts[a] == best)
    return winner, dict(counts)


def default_model_source() -> str:
    """The shipped miniature model; the tiny random model (with a warning) until it exists."""
    if (DEFAULT_MODEL_DIR / "config.json").exists():
        return str(DEFAULT_MODEL_DIR)
    warnings.warn("no shipped model found: using the tiny *random* model; answers are meaningless",
                  stacklevel=2)
    return "tiny"


class SalmonnO1Pipeline:
    """`pipe.ask(video, question, options)` -> steps + answer, on CPU or GPU.

    `prompt`: the reasoning instruction, a preset name of
    `salmonn_o1.prompts.REASONING_PROMPTS` ("release", "step-marked") or the
    text itself; by default the one the model's config names, so each model
    is asked in the wording it was trained with.
    """

    def __init__(self, model, processor: SalmonnO1Processor, prompt: str | None = None):
        self.model = model
        self.processor = processor
        self.prompt = prompt if prompt is not None else getattr(model.config, "reasoning_prompt",
                                                                DEFAULT_REASONING_PROMPT)
        self.decoder = Decoder.from_tokenizer(model, processor.tokenizer)

    @property
    def im_end_id(self) -> int:
        return self.decoder.ids.im_end_id

    @property
    def stop_ids(self) -> set[int]:
        return self.decoder.ids.stop_ids

    @property
    def pad_id(self) -> int:
        return self.decoder.ids.pad_id

    @classmethod
    def from_pretrained(
        cls, source: str | None = None, device: str = "auto", dtype: str = "auto", prompt: str | None = None,
        **kwargs
    ) -> SalmonnO1Pipeline:
        from salmonn_o1.checkpoints import load_model_and_processor

        model, processor = load_model_and_processor(source or default_model_source(), device=device, dtype=dtype,
                                                    **kwargs)
        return cls(model, processor, prompt=prompt)

    @property
    def prompt(self) -> str:
        """The reasoning instruction's preset name or text (checked when set)."""
        return self._prompt

    @prompt.setter
    def prompt(self, value: str) -> None:
        reasoning_instruction(value)
        self._prompt = value

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def encoder_calls(self) -> int:
        """Media encodings run so far (for tests and benchmarks)."""
        return self.decoder.encoder_calls

    # ---- public API ----
    def ask(self, media: MediaInput, question: str, options: list[str] | None = None, reasoning: bool = True,
            stream=None, prompt: str | None = None, **generation) -> AnswerResult:
        """One question. `generation`: max_new_tokens, do_sample, temperature, top_p, top_k, seed,
        answer_max_new_tokens. `stream(text_piece)` receives turn-1 text as it is generated.
        `prompt`: this question's reasoning instruction (default: the pipeline's)."""
        if prompt is not None:
            reasoning_instruction(prompt)
        return self.ask_batch([Question(media, question, options, reasoning, prompt)], stream=stream,
                              **generation)[0]

    def ask_many(self, media: MediaInput, questions: list[tuple[str, list[str] | None]], reasoning: bool = True,
                 **generation) -> list[AnswerResult]:
        """Several questions about one video: it is decoded and encoded once."""
        features = self.features(media)
        return self.ask_batch([Question(features, q, o, reasoning) for q, o in questions], **generation)

    def sample(self, media: MediaInput, question: str, options: list[str] | None = None,
               num_return_sequences: int = 1, **generation) -> list[AnswerResult]:
        """`num_return_sequences` sampled reasoning paths for one question (rollouts, Major@k)."""
        generation.setdefault("do_sample", True)
        features = self.features(media)
        return self.ask_batch([Question(features, question, options, True)] * num_return_sequences, **generation)

    def ask_majority(self, media: MediaInput, question: str, options: list[str] | None = None, k: int = 20,
                     **generation) -> MajorityResult:
        """Major@k (the paper's strongest non-training baseline, k = 20): sample k reasoning paths
        (do_sample on unless turned off) and vote on their extracted answers."""
        results = self.sample(media, question, options, num_return_sequences=k, **generation)
        answer, counts = majority_vote([r.answer for r in results])
        return MajorityResult(answer, counts, results)

    def features(self, media: MediaInput | MediaFeatures) -> MediaFeatures | None:
        if media is None or isinstance(media, MediaFeatures):
            return media
        return self.processor.media_features(media)

    # ---- the work ----
    @torch.no_grad()
    def ask_batch(self, questions: list[Question], stream=None, answer_max_new_tokens: int | None = None,
                  reuse_cache: bool = True, on_token: Callable[[int, int], None] | None = None,
                  row_seeds: Sequence[int] | None = None, media: Sequence[torch.Tensor | None] | None = None,
                  **generation) -> list[AnswerResult]:
        """Questions about any mix of media, answered as one left-padded batch.

        reuse_cache=False runs the answer turn as the release does: the media is
        encoded again and the whole conversation is prefilled from scratch.
        on_token(row, token_id) sees every turn-1 token of every row as it is sampled (`stream` only
        streams a lone question's text), so a server can stream each request of a shared batch; an
        exception raised in it abandons the batch.
        row_seeds (sampling): one seed per question; each samples both turns from its own stream, so its
        answer does not depend on the rest of the batch (pDPO's rollouts batch many questions so).
        media: each question's media already encoded (`decoder.encode_media`), for a caller that spreads
        one input's rows over several calls and encodes it once; the questions then carry its features.
        """
        if stream is not None and on_token is not None:
            raise ValueError("give stream (one question's text) or on_token (every row's tokens), not both")
        sampling = SamplingConfig(**generation)
        started = time.perf_counter()
        features = [self.features(q.media) for q in questions]
        rows = [self.processor.encode(self._prompt_text(q), f).input_ids for q, f in zip(questions, features)]
        if media is not None and len(media) != len(questions):
            raise ValueError(f"{len(media)} encoded media for {len(questions)} questions")
        media = self.decoder.encode_media(features) if media is None else list(media)
        encoded = time.perf_counter()

        if stream is not None and len(questions) == 1:
            on_token = _Streamer(self.processor.tokenizer, stream, self.stop_ids)
        first = self.decoder.generate(rows, media, sampling, on_token=on_token, row_seeds=row_seeds)
        turn1 = time.perf_counter()
        texts = [self._text(t) for t in first.tokens]

        answers = texts
        second = None
        needs_answer = [q.reasoning for q in questions]
        if any(needs_answer):
            answer_sampling = replace(sampling, max_new_tokens=answer_max_new_tokens or sampling.max_new_tokens)
            if reuse_cache:
                second = self.decoder.answer_turn(first, answer_sampling)
            else:
                second = self.decoder.answer_turn_from_scratch(rows, first, features, answer_sampling)
            answers = [self._text(t) if needs else text
                       for t, needs, text in zip(second.tokens, needs_answer, texts)]
        finished = time.perf_counter()

        results = []
        for i, q in enumerate(questions):
            reasoning = texts[i] if q.reasoning else None
            answer_text = answers[i]
            answer = read_answer(answer_text, reasoning, q.options)
            raw = f"Reasoning: {reasoning}\nAnswer: {answer_text}" if reasoning is not None else answer_text
            results.append(AnswerResult(
                question=q.question, options=q.options, reasoning=reasoning,
                steps=split_steps(reasoning) if reasoning else [], answer_text=answer_text, answer=answer,
                raw_text=raw,
                timings={"encode_s": encoded - started, "reasoning_s": turn1 - encoded,
                         "answer_s": finished - turn1, "total_s": finished - started},
                tokens={"prompt": len(rows[i]), "reasoning": len(first.tokens[i]),
                        "answer": len(second.tokens[i]) if second is not None and q.reasoning else 0},
            ))
        return results

    def _prompt_text(self, q: Question) -> str:
        return format_question(q.question, q.options, reasoning=q.reasoning,
                               prompt=q.prompt if q.prompt is not None else self.prompt)

    def _text(self, tokens: list[int]) -> str:
        return turn_text(self.processor.tokenizer, tokens, self.stop_ids).strip()


class TokenText:
    """Token ids in, new text out, decoded as `SalmonnO1Pipeline` decodes its answers (stop ids dropped);
    a piece ending inside a multi-byte character waits for the rest of it. Streams one row's text
    (`ask(stream=...)` here, each request of a server's batch)."""

    def __init__(self, tokenizer, stop_ids: set[int] | frozenset[int]):
        self.tokenizer, self.stop_ids = tokenizer, stop_ids
        self.ids: list[int] = []
        self.sent = 0

    def add(self, token: int) -> str:
        if token in self.stop_ids:
            return ""
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=False)
        if text.endswith("\ufffd"):
            return ""
        piece, self.sent = text[self.sent:], len(text)
        return piece


class _Streamer:
    """`on_token` for one question: its new text goes to `sink` as it is decoded."""

    def __init__(self, tokenizer, sink, stop_ids: set[int]):
        self.text, self.sink = TokenText(tokenizer, stop_ids), sink

    def __call__(self, index: int, token: int) -> None:
        piece = self.text.add(token)
        if piece:
            self.sink(piece)
