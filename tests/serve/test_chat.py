"""The served answers are the pipeline's: same steps, same answer, streamed or not, through the `openai` client."""

from __future__ import annotations

import base64

import pytest

from serving import MODEL, TOKENS, user_message

GREEDY = {"max_tokens": TOKENS["max_new_tokens"], "temperature": 0}


def expected_steps(steps: list[str]) -> str:
    """reasoning_content: one step a line, numbered unless the step carries its number."""
    return "\n".join(step if step[:1].isdigit() else f"{i}. {step}" for i, step in enumerate(steps, start=1))


def extra(message, name: str):
    """A field the `openai` types do not declare (reasoning_content), as the client keeps it."""
    return getattr(message, name, None) if hasattr(message, name) else (message.model_extra or {}).get(name)


def collect(stream) -> tuple[str, str, list[str], object]:
    """(reasoning, content, finish reasons, usage) of a streamed completion."""
    reasoning, content, finishes, usage = [], [], [], None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            reasoning.append(extra(choice.delta, "reasoning_content") or "")
            content.append(choice.delta.content or "")
            if choice.finish_reason is not None:
                finishes.append(choice.finish_reason)
    return "".join(reasoning), "".join(content), finishes, usage


@pytest.fixture(scope="module")
def expected(reference, counting_clip):
    return reference(counting_clip.path, counting_clip.question, counting_clip.options, **TOKENS)


def test_health_and_models_list_the_served_model(server):
    assert server.health()["status"] == "ok"
    assert [m.id for m in server.client().models.list()] == [MODEL]


def test_the_answer_and_steps_are_the_pipelines(server, counting_clip, expected):
    response = server.client().chat.completions.create(
        model=MODEL, messages=user_message(counting_clip), extra_body={"options": counting_clip.options}, **GREEDY)
    message = response.choices[0].message
    assert message.content == expected.answer_text
    assert extra(message, "reasoning_content") == expected_steps(expected.steps)
    assert response.usage.prompt_tokens == expected.tokens["prompt"]
    assert response.usage.completion_tokens == expected.tokens["reasoning"] + expected.tokens["answer"]
    assert response.usage.completion_tokens_details.reasoning_tokens == expected.tokens["reasoning"]
    assert response.model == MODEL and response.id.startswith("chatcmpl-")


def test_streaming_yields_the_same_text(server, counting_clip, expected):
    stream = server.client().chat.completions.create(
        model=MODEL, messages=user_message(counting_clip), stream=True, stream_options={"include_usage": True},
        extra_body={"options": counting_clip.options}, **GREEDY)
    reasoning, content, finishes, usage = collect(stream)
    assert reasoning == expected_steps(expected.steps)
    assert content == expected.answer_text
    assert len(finishes) == 1
    assert usage.completion_tokens == expected.tokens["reasoning"] + expected.tokens["answer"]


def test_a_file_url_under_the_allowed_folder_is_read(server, counting_clip, expected):
    response = server.client().chat.completions.create(
        model=MODEL, messages=user_message(counting_clip, url=counting_clip.path.as_uri()),
        extra_body={"options": counting_clip.options}, **GREEDY)
    assert response.choices[0].message.content == expected.answer_text


def test_thinking_off_answers_directly(server, reference, counting_clip):
    direct = reference(counting_clip.path, counting_clip.question, counting_clip.options, reasoning=False,
                          **TOKENS)
    body = {"options": counting_clip.options, "chat_template_kwargs": {"enable_thinking": False}}
    client = server.client()
    response = client.chat.completions.create(model=MODEL, messages=user_message(counting_clip), extra_body=body,
                                              **GREEDY)
    message = response.choices[0].message
    assert message.content == direct.answer_text and extra(message, "reasoning_content") is None
    assert response.usage.completion_tokens_details.reasoning_tokens == 0
    streamed = client.chat.completions.create(model=MODEL, messages=user_message(counting_clip), extra_body=body,
                                              stream=True, **GREEDY)
    reasoning, content, _, _ = collect(streamed)
    assert (reasoning, content) == ("", direct.answer_text)


def test_without_the_videos_audio_the_answer_is_the_silent_videos(server, reference, media_dir, sound_clip):
    from serving import write_avr_clip

    silent = write_avr_clip(media_dir / "sounds-silent.mp4", 4, audio=False)
    alone = reference(silent.path, silent.question, silent.options, **TOKENS)
    heard = reference(sound_clip.path, sound_clip.question, sound_clip.options, **TOKENS)
    response = server.client().chat.completions.create(
        model=MODEL, messages=user_message(sound_clip), **GREEDY,
        extra_body={"options": sound_clip.options, "mm_processor_kwargs": {"use_audio_in_video": False}})
    assert extra(response.choices[0].message, "reasoning_content") == expected_steps(alone.steps)
    assert alone.reasoning != heard.reasoning, "the clip's sounds change what the model says"


def test_an_audio_clip_alone_is_answered_as_the_pipeline_answers_it(server, reference, media_dir):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "media"))
    from avgen import write_audio

    path = media_dir / "tones.wav"
    write_audio(path, [(0.0, 440.0), (1.0, 1000.0)], 2.0, 16_000, codec="pcm_s16le", container_format="wav")
    question = "Which sound played first?"
    alone = reference(path, question, **TOKENS)
    audio = {"type": "input_audio", "input_audio": {"data": base64.b64encode(path.read_bytes()).decode(),
                                                    "format": "wav"}}
    response = server.client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": [audio, {"type": "text", "text": question}]}], **GREEDY)
    assert response.choices[0].message.content == alone.answer_text
    assert response.usage.prompt_tokens == alone.tokens["prompt"]


def test_n_stop_and_length(server, counting_clip, expected):
    client = server.client()
    two = client.chat.completions.create(model=MODEL, messages=user_message(counting_clip), n=2,
                                         extra_body={"options": counting_clip.options}, **GREEDY)
    assert [c.index for c in two.choices] == [0, 1]
    assert {c.message.content for c in two.choices} == {expected.answer_text}
    assert two.usage.completion_tokens == 2 * (expected.tokens["reasoning"] + expected.tokens["answer"])
    cut_at = expected.answer_text[len(expected.answer_text) // 2:][:2]
    stopped = client.chat.completions.create(model=MODEL, messages=user_message(counting_clip), stop=[cut_at],
                                             extra_body={"options": counting_clip.options}, **GREEDY)
    assert stopped.choices[0].message.content == expected.answer_text.split(cut_at)[0].strip()
    assert stopped.choices[0].finish_reason == "stop"
    short = client.chat.completions.create(model=MODEL, messages=user_message(counting_clip), max_tokens=2,
                                           temperature=0, extra_body={"options": counting_clip.options})
    assert short.choices[0].finish_reason == "length"
    assert short.usage.completion_tokens_details.reasoning_tokens == 2


def test_a_seed_makes_sampling_repeatable(server, counting_clip):
    client = server.client()

    def sample(seed: int) -> list[str]:
        # 40 tokens: the model shipped on 2026-12-04 starts this clip's steps the same way whatever it samples
        response = client.chat.completions.create(model=MODEL, messages=user_message(counting_clip), n=3,
                                                  temperature=1.5, seed=seed, max_tokens=40)
        return [extra(c.message, "reasoning_content") for c in response.choices]

    first = sample(11)
    assert sample(11) == first
    assert len(set(first)) > 1, "three sampled paths differ"
