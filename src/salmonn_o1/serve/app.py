"""The HTTP API: FastAPI routes over the batcher, OpenAI's shapes in and out.

    POST /v1/chat/completions   a question about a video, image or audio clip (streamed with stream: true)
    GET  /v1/models             the one model served
    GET  /health                liveness, with the queue and batch counters

Media is decoded and featurised in a thread pool, never on the event loop, so a long decode does
not hold up other requests; the model runs on the batcher's one thread. Every error a request can
cause is a 4xx in OpenAI's error shape naming the problem (`APIError`); anything else is a 500
whose body says only that the server failed (the traceback goes to the server's log).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from salmonn_o1.inference import AnswerResult, Question, TokenText
from salmonn_o1.prompts import format_question
from salmonn_o1.serve.batching import BatchAbandoned, Batcher, Job, ServerClosing
from salmonn_o1.serve.errors import APIError
from salmonn_o1.serve.media_urls import MediaLimits, MediaResolver
from salmonn_o1.serve.plan import ChatPlan, Limits, plan_chat
from salmonn_o1.serve.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    CompletionTokensDetails,
    Delta,
    ModelCard,
    ModelList,
    ResponseMessage,
    Usage,
    completion_id,
    now,
)
from salmonn_o1.serve.text_streams import AnswerStream, StepStream, final_content, numbered_steps

log = logging.getLogger("salmonn_o1.serve")
DISCONNECT_POLL_S = 0.25  # how often a waiting non-streaming request checks that its client is still there


@dataclass(frozen=True)
class ServeSettings:
    model_name: str
    api_key: str | None = None
    allowed_local_media_path: Path | None = None
    max_video_seconds: float | None = None
    max_request_bytes: int = 64 << 20
    max_batch_size: int = 16
    batch_wait_s: float = 0.03
    max_tokens: int = 512
    answer_max_tokens: int = 64
    media_cache_bytes: int = 256 << 20
    media_workers: int = 2


class Server:
    """What the routes share: the pipeline, the batcher, the media resolver and its thread pool."""

    def __init__(self, pipeline, settings: ServeSettings):
        self.pipeline = pipeline
        self.settings = settings
        self.limits = Limits(settings.max_tokens, settings.answer_max_tokens, settings.max_batch_size)
        self.batcher = Batcher(pipeline, settings.max_batch_size, settings.batch_wait_s)
        self.resolver = MediaResolver(pipeline.processor,
                                      MediaLimits(settings.allowed_local_media_path, settings.max_video_seconds),
                                      settings.media_cache_bytes)
        self.media_pool = ThreadPoolExecutor(settings.media_workers, thread_name_prefix="salmonn-o1-media")
        self.created = now()
        self.context_length = _context_length(pipeline)

    def prepare(self, plan: ChatPlan) -> list[Question]:
        """The plan's media decoded and its questions built (run in the media pool)."""
        features = self.resolver.features(plan.media, plan.audio, plan.use_audio_in_video)
        question = Question(features, plan.question, plan.options, plan.reasoning)
        if self.context_length is not None:
            prompt = len(self.pipeline.processor.encode(
                format_question(plan.question, plan.options, reasoning=plan.reasoning, prompt=self.pipeline.prompt),
                features).input_ids)
            generation = plan.generation
            needed = prompt + generation.max_new_tokens
            if plan.reasoning:
                needed += len(self.pipeline.decoder.ids.follow_up) + generation.answer_max_new_tokens
            if needed > self.context_length:
                raise APIError(f"the prompt ({prompt} tokens, media included) and the tokens asked for ({needed - prompt}) "
                               f"exceed the model's context of {self.context_length} tokens: lower max_tokens or send "
                               "shorter media", param="max_tokens", code="context_length_exceeded")
        return [question] * plan.n

    def close(self) -> None:
        self.batcher.stop()
        self.media_pool.shutdown(wait=False, cancel_futures=True)


def _context_length(pipeline) -> int | None:
    text_config = getattr(pipeline.model.config, "text_config", None)
    return getattr(text_config, "max_position_embeddings", None)


def create_app(pipeline, settings: ServeSettings) -> FastAPI:
    server = Server(pipeline, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        server.batcher.start()
        try:
            yield
        finally:
            server.close()

    app = FastAPI(title="salmonn-o1", summary="video-SALMONN-o1 behind OpenAI's chat completions API",
                  lifespan=lifespan)
    app.state.server = server
    _add_error_handlers(app, settings)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    if settings.api_key:  # added last: it runs first, so a request without the key is refused unread
        app.add_middleware(APIKeyMiddleware, api_key=settings.api_key)

    @app.get("/health")
    async def health() -> dict:
        stats = server.batcher.stats
        return {"status": "ok", "model": settings.model_name, "waiting": server.batcher.waiting,
                "running_rows": server.batcher.running_rows, "media_decoded": server.resolver.decoded,
                **{key: stats[key] for key in ("batches", "requests", "rows", "largest_batch", "cancelled",
                                               "abandoned", "failed")}}

    @app.get("/v1/models")
    async def models() -> ModelList:
        return ModelList(data=[ModelCard(id=settings.model_name, created=server.created)])

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> JSONResponse | StreamingResponse:
        if body.model != settings.model_name:
            raise APIError(f"the model `{body.model}` does not exist; this server serves `{settings.model_name}`",
                           status=404, param="model", code="model_not_found")
        plan = plan_chat(body, server.limits)
        with server.batcher.preparing_request():
            questions = await asyncio.get_running_loop().run_in_executor(server.media_pool, server.prepare, plan)
        reply = Reply(settings.model_name, plan, body.stream_options is not None and body.stream_options.include_usage)
        if body.stream:
            return StreamingResponse(_stream(server, reply, questions), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        job = _submit(server, Job(questions, plan.generation))
        results = await _wait(job, request)
        return JSONResponse(reply.completion(results).model_dump(exclude_none=False))

    return app


def _submit(server: Server, job: Job) -> Job:
    try:
        return server.batcher.submit(job)
    except ServerClosing as error:
        raise APIError(str(error), status=503, code="server_closing") from None


async def _wait(job: Job, request: Request) -> list[AnswerResult]:
    """The job's results; a client that goes away meanwhile cancels it (the response goes nowhere)."""
    waiting = asyncio.wrap_future(job.future)
    try:
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=DISCONNECT_POLL_S)
            if done:
                return _results(job)
            if await request.is_disconnected():
                job.cancel()
                raise APIError("the client went away", status=400, code="client_closed")
    finally:
        if not job.future.done():
            job.cancel()


def _results(job: Job) -> list[AnswerResult]:
    try:
        return job.future.result()
    except (BatchAbandoned, ServerClosing) as error:
        raise APIError(str(error), status=503, code="request_dropped") from None


async def _stream(server: Server, reply: Reply, questions: list[Question]) -> AsyncIterator[str]:
    """Server-sent events: the role, reasoning deltas, content deltas, the finish reason, [DONE]."""
    loop = asyncio.get_running_loop()
    tokens: asyncio.Queue = asyncio.Queue()

    def emit(choice: int | None, token: int | None) -> None:  # on the model thread
        with contextlib.suppress(RuntimeError):  # a closed event loop (the server is stopping): nobody listens
            loop.call_soon_threadsafe(tokens.put_nowait, (choice, token))

    job = Job(questions, reply.plan.generation, emit=emit)
    try:
        _submit(server, job)
    except APIError as error:
        yield _event(error.body())
        yield "data: [DONE]\n\n"
        return
    pipeline = server.pipeline
    texts = [TokenText(pipeline.processor.tokenizer, pipeline.stop_ids) for _ in questions]
    streams = [StepStream() if reply.plan.reasoning else AnswerStream(reply.plan.stop) for _ in questions]
    try:
        yield reply.chunk([ChunkChoice(index=i, delta=Delta(role="assistant", content=""))
                           for i in range(len(questions))])
        while True:
            choice, token = await tokens.get()
            if choice is None:
                break
            piece = streams[choice].feed(texts[choice].add(token))
            if piece:
                yield reply.chunk([ChunkChoice(index=choice, delta=reply.delta(piece))])
        try:
            results = _results(job)
        except APIError as error:
            yield _event(error.body())
            yield "data: [DONE]\n\n"
            return
        except Exception:
            log.exception("a streamed request failed")
            yield _event(APIError("the server failed to answer this request", status=500,
                                  code="server_error").body())
            yield "data: [DONE]\n\n"
            return
        for i, (result, stream) in enumerate(zip(results, streams)):
            # The last reasoning step (held back until the turn ended), then the answer turn's content.
            rest = stream.close()
            if rest:
                yield reply.chunk([ChunkChoice(index=i, delta=reply.delta(rest))])
            content, finish = reply.content(result)
            if reply.plan.reasoning and content:
                yield reply.chunk([ChunkChoice(index=i, delta=Delta(content=content))])
            yield reply.chunk([ChunkChoice(index=i, delta=Delta(), finish_reason=finish)])
        if reply.include_usage:
            yield reply.chunk([], usage=reply.usage(results))
        yield "data: [DONE]\n\n"
    finally:
        if not job.future.done():
            job.cancel()


def _event(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


class Reply:
    """Builds one request's response objects (the same text whether streamed or not)."""

    def __init__(self, model: str, plan: ChatPlan, include_usage: bool = False):
        self.model, self.plan, self.include_usage = model, plan, include_usage
        self.id, self.created = completion_id(), now()

    def content(self, result: AnswerResult) -> tuple[str, str]:
        """(content, finish_reason): "length" when the answer used every token it was allowed."""
        text, stopped = final_content(result.answer_text, self.plan.stop)
        generation = self.plan.generation
        used, allowed = ((result.tokens["answer"], generation.answer_max_new_tokens) if self.plan.reasoning
                         else (result.tokens["reasoning"], generation.max_new_tokens))
        return text, "length" if used >= allowed and not stopped else "stop"

    def delta(self, piece: str) -> Delta:
        if self.plan.reasoning:
            return Delta(reasoning_content=piece, reasoning=piece)
        return Delta(content=piece)

    def usage(self, results: list[AnswerResult]) -> Usage:
        reasoning = sum(r.tokens["reasoning"] for r in results) if self.plan.reasoning else 0
        completion = sum(r.tokens["reasoning"] + r.tokens["answer"] for r in results)
        prompt = results[0].tokens["prompt"] if results else 0
        return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
                     completion_tokens_details=CompletionTokensDetails(reasoning_tokens=reasoning))

    def completion(self, results: list[AnswerResult]) -> ChatCompletion:
        choices = []
        for i, result in enumerate(results):
            content, finish = self.content(result)
            steps = numbered_steps(result.steps) if self.plan.reasoning else None
            message = ResponseMessage(content=content, reasoning_content=steps, reasoning=steps)
            choices.append(Choice(index=i, message=message, finish_reason=finish))
        return ChatCompletion(id=self.id, created=self.created, model=self.model, choices=choices,
                              usage=self.usage(results))

    def chunk(self, choices: list[ChunkChoice], usage: Usage | None = None) -> str:
        chunk = ChatCompletionChunk(id=self.id, created=self.created, model=self.model, choices=choices,
                                    usage=usage).model_dump()
        for choice in chunk["choices"]:  # a delta carries only what it adds; finish_reason stays, null until the end
            choice["delta"] = {key: value for key, value in choice["delta"].items() if value is not None}
        if chunk["usage"] is None:
            del chunk["usage"]
        return _event(chunk)


# ---- errors and authentication ----
def _add_error_handlers(app: FastAPI, settings: ServeSettings) -> None:
    @app.exception_handler(APIError)
    async def api_error(request: Request, error: APIError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        return api_error_response(describe_validation_error(error.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 413:
            return api_error_response(too_large(settings.max_request_bytes))
        return api_error_response(APIError(f"{request.method} {request.url.path}: {error.detail}",
                                           status=error.status_code))

    @app.exception_handler(Exception)
    async def server_error(request: Request, error: Exception) -> JSONResponse:
        log.error("request failed", exc_info=error)
        return api_error_response(APIError("the server failed to answer this request (see its log)", status=500,
                                           code="server_error"))


def api_error_response(error: APIError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


_TYPE_LABELS = {"str", "int", "float", "bool", "list", "dict", "none"}  # union members pydantic names in a loc
_PART_TAGS = {"text", "image_url", "video_url", "audio_url", "input_audio"}  # content parts' discriminator tags


def describe_validation_error(errors: list[dict]) -> APIError:
    """pydantic's most specific complaint as one sentence naming the field (`messages[0].content[1].video_url`).

    A field with a union type (`content`: a string or a list of parts) gets one complaint per member;
    the deepest one is about the member the request meant."""
    if not errors:
        return APIError("invalid request", code="invalid_request")
    first = max(errors, key=lambda e: len(e.get("loc", ())))
    loc = [part for part in first.get("loc", ()) if part != "body"]
    if first["type"] == "json_invalid":
        return APIError(f"the request body is not valid JSON ({first.get('ctx', {}).get('error', first['msg'])})",
                        code="invalid_json")
    param = field_path(loc)
    if first["type"] == "extra_forbidden":
        return APIError(f"unknown field `{param}`", param=param, code="unknown_field")
    if first["type"] == "missing":
        return APIError(f"`{param}` is required", param=param, code="missing_field")
    if not param:
        return APIError(f"the request body must be a JSON object ({first['msg']})", code="invalid_request")
    return APIError(f"`{param}`: {first['msg']}", param=param, code="invalid_value")


def field_path(loc: list[str | int]) -> str:
    """('messages', 0, 'content', 'list[...]', 1, 'video_url', 'url') -> messages[0].content[1].video_url.url"""
    path = ""
    after_index = False
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
            after_index = True
            continue
        if "[" in part or part in _TYPE_LABELS:
            continue
        if after_index and part in _PART_TAGS:  # the tag pydantic puts before a tagged union member's fields
            after_index = False
            continue
        after_index = False
        path += f".{part}" if path else part
    return path


class APIKeyMiddleware:
    """`Authorization: Bearer KEY` on /v1 routes (as vLLM's --api-key); /health stays open for probes."""

    def __init__(self, app: ASGIApp, api_key: str):
        self.app = app
        self.expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1"):
            given = Headers(scope=scope).get("authorization", "").encode()
            if not secrets.compare_digest(given, self.expected):
                error = APIError("a wrong or missing API key (send `Authorization: Bearer KEY`)", status=401,
                                 code="invalid_api_key")
                await api_error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def too_large(max_bytes: int) -> APIError:
    return APIError(f"the request body is larger than this server takes ({max_bytes / (1 << 20):g} MB, "
                    "--max-request-mb)", status=413, code="request_too_large")


class BodyLimitMiddleware:
    """Refuses a body over `max_bytes` with a 413: at once when its Content-Length says so, else as soon as
    the bytes read pass the limit (a chunked upload), before the body is parsed."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            await api_error_response(too_large(self.max_bytes))(scope, receive, send)
            return
        received = 0

        async def limited() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise StarletteHTTPException(413)  # answered by the app's handler, in OpenAI's shape
            return message

        await self.app(scope, limited, send)
