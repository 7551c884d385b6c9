"""The wire format: OpenAI's chat completion shapes, with vLLM's multimodal content parts.

Requests are validated strictly (an unknown field is an error, not silently ignored): a typo such
as `max_token` would otherwise run with the default and surprise the caller. Fields OpenAI
clients commonly send with their neutral value (`presence_penalty: 0`, `logprobs: false`, ...)
are accepted at that value and refused otherwise, since the server cannot honour them.

Extensions, named as reasoning servers name them:
- `chat_template_kwargs: {"enable_thinking": false}` (vLLM / Qwen3): answer directly, one turn,
  no `reasoning_content`;
- `mm_processor_kwargs: {"use_audio_in_video": false}` (vLLM / Qwen2.5-Omni): the video's own
  audio track is not used (it is used by default);
- `options: [...]`: multiple-choice options, listed after the question as the model was trained.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_STOP_STRINGS = 4  # OpenAI's limit


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- content parts (vLLM's shapes) ----
class URLRef(_Strict):
    url: str
    detail: str | None = None  # OpenAI's image detail hint; the model's own frame size is used


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: URLRef


class VideoPart(_Strict):
    type: Literal["video_url"]
    video_url: URLRef


class AudioURLPart(_Strict):
    type: Literal["audio_url"]
    audio_url: URLRef


class InputAudio(_Strict):
    data: str  # base64
    format: str  # "wav", "mp3", ... (the container; decoded by PyAV)


class InputAudioPart(_Strict):
    type: Literal["input_audio"]
    input_audio: InputAudio


ContentPart = Annotated[TextPart | ImagePart | VideoPart | AudioURLPart | InputAudioPart,
                        Field(discriminator="type")]


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None
    name: str | None = None


class ChatTemplateKwargs(_Strict):
    enable_thinking: bool = True


class MediaProcessorKwargs(_Strict):
    use_audio_in_video: bool = True


class StreamOptions(_Strict):
    include_usage: bool = False


class ChatCompletionRequest(_Strict):
    model: str
    messages: list[Message] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0)  # None or 0: greedy (the model's default)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)  # OpenAI's newer name for max_tokens
    n: int = Field(default=1, ge=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    # extensions (module docstring)
    chat_template_kwargs: ChatTemplateKwargs | None = None
    mm_processor_kwargs: MediaProcessorKwargs | None = None
    options: list[str] | None = None
    # accepted only at their neutral value (module docstring)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: dict[str, float] | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, value: str | list[str] | None) -> list[str]:
        stops = [value] if isinstance(value, str) else list(value or [])
        if len(stops) > MAX_STOP_STRINGS:
            raise ValueError(f"at most {MAX_STOP_STRINGS} stop strings, got {len(stops)}")
        if any(not s for s in stops):
            raise ValueError("a stop string must not be empty")
        return stops

    def unsupported(self) -> list[tuple[str, str]]:
        """(field, why) for each field set to a value this server cannot honour."""
        neutral = {
            "presence_penalty": (None, 0, 0.0), "frequency_penalty": (None, 0, 0.0), "logprobs": (None, False),
            "top_logprobs": (None, 0), "logit_bias": (None, {}), "tools": (None, []),
            "tool_choice": (None, "none", "auto"), "parallel_tool_calls": (None, True, False),
        }
        found = [(name, f"`{name}` is not supported by this server")
                 for name, allowed in neutral.items() if getattr(self, name) not in allowed]
        if self.response_format not in (None, {"type": "text"}):
            found.append(("response_format", "only the `text` response format is supported"))
        return found

    @property
    def reasoning(self) -> bool:
        return self.chat_template_kwargs is None or self.chat_template_kwargs.enable_thinking

    @property
    def use_audio_in_video(self) -> bool:
        return self.mm_processor_kwargs is None or self.mm_processor_kwargs.use_audio_in_video

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


# ---- responses ----
def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


class CompletionTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    completion_tokens_details: CompletionTokensDetails


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    # vLLM's names for the reasoning text: `reasoning_content`, and `reasoning` (its newer name)
    reasoning_content: str | None = None
    reasoning: str | None = None


class Choice(BaseModel):
    index: int
    message: ResponseMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "salmonn-o1"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# ---- errors ----
class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
