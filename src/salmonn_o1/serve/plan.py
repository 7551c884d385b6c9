"""A chat completion request read as what the model can answer: one question about one media input.

video-SALMONN-o1 answers a single user turn about at most one video (its frames and its audio),
image or audio clip, with the two-turn reasoning protocol; a conversation history, a custom system
prompt or several videos have no place in what it was trained on, so they are refused with a
message saying so rather than silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from salmonn_o1.data.schema import validate_question
from salmonn_o1.errors import DataError
from salmonn_o1.serve.batching import Generation
from salmonn_o1.serve.errors import APIError
from salmonn_o1.serve.media_urls import MediaRef, audio_data_url
from salmonn_o1.serve.protocol import (
    AudioURLPart,
    ChatCompletionRequest,
    ImagePart,
    InputAudioPart,
    Message,
    TextPart,
    VideoPart,
)


@dataclass(frozen=True)
class Limits:
    """The server's defaults and bounds for a request."""

    max_tokens: int = 512  # the reasoning turn (or a direct answer) when the request names none
    answer_max_tokens: int = 64  # the answer turn after reasoning (a smaller max_tokens lowers it)
    max_batch_size: int = 16  # also the largest `n`


@dataclass
class ChatPlan:
    question: str
    options: list[str] | None
    reasoning: bool
    media: MediaRef | None
    audio: MediaRef | None
    use_audio_in_video: bool
    generation: Generation
    n: int = 1
    stop: list[str] = field(default_factory=list)


def plan_chat(request: ChatCompletionRequest, limits: Limits) -> ChatPlan:
    for name, why in request.unsupported():
        raise APIError(why, param=name, code="unsupported_parameter")
    if request.n > limits.max_batch_size:
        raise APIError(f"n = {request.n}: at most {limits.max_batch_size} choices (--max-batch-size)",
                       param="n", code="invalid_value")
    index, message = _the_user_message(request.messages)
    question, media, audio = _read_content(message, index)
    try:
        validate_question(question, request.options, None, names=(f"messages[{index}]'s text", "`options`"))
    except DataError as error:
        param = "options" if "`options`" in str(error) else f"messages[{index}].content"
        raise APIError(str(error), param=param, code="invalid_value") from None
    limit = request.token_limit
    generation = Generation.of(
        max_new_tokens=limit if limit is not None else limits.max_tokens,
        answer_max_new_tokens=min(limit, limits.answer_max_tokens) if limit is not None else limits.answer_max_tokens,
        temperature=request.temperature, top_p=request.top_p, seed=request.seed,
    )
    return ChatPlan(question=question, options=request.options, reasoning=request.reasoning, media=media,
                    audio=audio, use_audio_in_video=request.use_audio_in_video, generation=generation,
                    n=request.n, stop=list(request.stop or []))


def _the_user_message(messages: list[Message]) -> tuple[int, Message]:
    for i, message in enumerate(messages):
        if message.role in ("system", "developer"):
            raise APIError(f"messages[{i}]: {message.role} messages are not supported: the model answers under the "
                           "system prompt it was trained with", param=f"messages[{i}].role", code="invalid_value")
        if message.role == "assistant":
            raise APIError(f"messages[{i}]: assistant messages are not supported: each request is one question "
                           "(the two-turn reasoning protocol starts a new conversation)",
                           param=f"messages[{i}].role", code="invalid_value")
    if len(messages) != 1:
        raise APIError(f"{len(messages)} user messages: send one question per request", param="messages",
                       code="invalid_value")
    return 0, messages[0]


def _read_content(message: Message, index: int) -> tuple[str, MediaRef | None, MediaRef | None]:
    """The question text, the video or image, and an audio item."""
    where = f"messages[{index}].content"
    if message.content is None:
        raise APIError(f"{where}: the user message has no content", param=where, code="invalid_value")
    if isinstance(message.content, str):
        return message.content.strip(), None, None
    texts: list[str] = []
    media: MediaRef | None = None
    audio: MediaRef | None = None
    for j, part in enumerate(message.content):
        at = f"{where}[{j}]"
        if isinstance(part, TextPart):
            texts.append(part.text.strip())
            continue
        if isinstance(part, VideoPart | ImagePart):
            kind, url, param = (("video", part.video_url.url, f"{at}.video_url.url") if isinstance(part, VideoPart)
                                else ("image", part.image_url.url, f"{at}.image_url.url"))
            if media is not None:
                raise APIError(f"{at}: a second {kind}: the model takes one video or image per question",
                               param=at, code="too_many_media")
            media = MediaRef(kind, url, param)
            continue
        if audio is not None:
            raise APIError(f"{at}: a second audio item: the model takes one audio track per question",
                           param=at, code="too_many_media")
        if isinstance(part, InputAudioPart):
            audio = MediaRef("audio", audio_data_url(part.input_audio.data, part.input_audio.format),
                             f"{at}.input_audio.data")
        elif isinstance(part, AudioURLPart):
            audio = MediaRef("audio", part.audio_url.url, f"{at}.audio_url.url")
    if media is not None and media.kind == "image" and audio is not None:
        raise APIError(f"{where}: an image with an audio item: the model takes audio with a video, or alone",
                       param=where, code="invalid_value")
    return "\n".join(t for t in texts if t), media, audio
