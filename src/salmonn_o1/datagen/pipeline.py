"""The datagen loop: generate, check, regenerate up to K times, append, resume.

Two files grow side by side: OUT (the accepted items, the toolkit's item schema with steps, so
`train sft` reads it as it is) and OUT's `.failures.jsonl` (a video that found no accepted
question in 1 + K attempts, with every attempt's reason). A video in either file is done, so a
killed run picks up at the next video, and a video is written exactly once.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from salmonn_o1.data.schema import Item, validate_item
from salmonn_o1.datagen.content import AudioMode, VideoContent, video_content
from salmonn_o1.datagen.replies import ReplyError, parse_generated, parse_verdict
from salmonn_o1.errors import DataError, MediaError, SalmonnError
from salmonn_o1.records import RecordWriter, read_records, record_ids

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")
SOURCE = "datagen"


@dataclass
class Endpoint:
    """An OpenAI-compatible chat completions endpoint and how to sample from it."""

    base_url: str
    model: str
    api_key: str = "EMPTY"
    max_tokens: int = 1024
    temperature: float = 0.7
    timeout: float = 300.0

    def client(self):
        from openai import OpenAI

        return OpenAI(base_url=self.base_url, api_key=self.api_key, timeout=self.timeout, max_retries=2)


@dataclass
class DatagenSettings:
    generator: Endpoint
    checker: Endpoint
    generate_prompt: str
    check_prompt: str
    frames: int = 8
    audio: AudioMode = "input_audio"
    retries: int = 2  # regenerations after a failed attempt (K)
    options: int = 4
    workers: int = 1  # videos in flight at once (requests to a remote endpoint mostly wait)


@dataclass
class Summary:
    accepted: int = 0
    failed: int = 0
    skipped: int = 0
    attempts: int = 0
    failures: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        return (f"{self.accepted} accepted, {self.failed} failed, {self.skipped} already done; "
                f"{self.attempts} generation attempts")


def default_prompt(name: str) -> str:
    """A shipped prompt (package data: salmonn_o1/datagen/prompts/<name>.txt)."""
    return resources.files("salmonn_o1.datagen").joinpath("prompts", f"{name}.txt").read_text(encoding="utf-8")


def read_prompt(path: str | Path | None, name: str) -> str:
    """The prompt file a user gave, else the shipped one; it must keep its $placeholders."""
    if path is None:
        return default_prompt(name)
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such prompt file")
    text = path.read_text(encoding="utf-8")
    needed = ["$item_json"] if name == "check" else []
    missing = [p for p in needed if p not in text and p.replace("$", "${") + "}" not in text]
    if missing:
        raise DataError(f"{path}: the {name} prompt must contain {', '.join(missing)} (where the question goes)")
    try:
        Template(text).substitute(audio_note="", item_json="")
    except (KeyError, ValueError) as error:
        raise DataError(f"{path}: bad placeholder {error} (use $audio_note, $item_json; write $$ for a dollar)") from None
    return text


def collect_videos(paths: list[str | Path]) -> list[Path]:
    """Video files named, or found (sorted, recursively) in folders named."""
    videos: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            videos.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()))
        elif path.is_file():
            videos.append(path)
        else:
            raise DataError(f"{path}: no such video file or folder")
    if not videos:
        raise DataError(f"{', '.join(map(str, paths))}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    return videos


def video_ids(videos: list[Path]) -> list[str]:
    """A stable id per video: its file stem, with a hash of its path where stems repeat."""
    stems = [v.stem for v in videos]
    ids = []
    for video, stem in zip(videos, stems):
        if stems.count(stem) > 1:
            stem = f"{stem}-{hashlib.sha1(str(video.resolve()).encode()).hexdigest()[:8]}"
        ids.append(f"{SOURCE}-{stem}")
    return ids


def failures_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(f"{out.stem}.failures.jsonl")


def _chat(endpoint: Endpoint, client: Any, content: list[dict[str, Any]]) -> str | None:
    """One chat completion; connection, authentication and unknown-model problems stop the run (every video would
    fail the same way), any other refusal of the request is this attempt's failure."""
    import openai

    try:
        response = client.chat.completions.create(
            model=endpoint.model, messages=[{"role": "user", "content": content}],
            max_tokens=endpoint.max_tokens, temperature=endpoint.temperature,
        )
    except (openai.APIConnectionError, openai.AuthenticationError, openai.PermissionDeniedError,
            openai.NotFoundError) as error:
        raise DataError(f"{endpoint.base_url}: {type(error).__name__}: {error}") from None
    except openai.APIStatusError as error:
        raise ReplyError(f"the endpoint refused the request ({error.status_code}): {_message(error)}") from None
    if not response.choices:
        raise ReplyError("the reply has no choices")
    return response.choices[0].message.content


def _message(error: Any) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:200]
    return str(error)[:200]


class Datagen:
    """Generates and checks one video's question; `run` does a list of videos, resumably."""

    def __init__(self, settings: DatagenSettings):
        self.settings = settings
        self.generator = settings.generator.client()
        same = (settings.checker.base_url, settings.checker.api_key) == (settings.generator.base_url,
                                                                          settings.generator.api_key)
        self.checker = self.generator if same else settings.checker.client()

    def attempt(self, content: VideoContent) -> tuple[dict[str, Any], str]:
        """One generate-then-check round: the accepted question with the check's reason, or ReplyError."""
        s = self.settings
        prompt = Template(s.generate_prompt).substitute(audio_note=content.audio_note, item_json="")
        generated = parse_generated(_chat(s.generator, self.generator, [*content.parts, {"type": "text",
                                                                                         "text": prompt}]),
                                    n_options=s.options)
        check = Template(s.check_prompt).substitute(audio_note=content.audio_note,
                                                    item_json=json.dumps(generated.to_dict(), ensure_ascii=False))
        verdict = parse_verdict(_chat(s.checker, self.checker, [*content.parts, {"type": "text", "text": check}]))
        if not verdict.accepted:
            failed = " and ".join(n for n, ok in (("supported", verdict.supported),
                                                  ("consistent", verdict.consistent)) if not ok)
            raise ReplyError(f"the check found it not {failed}: {verdict.reason}")
        return generated.to_dict(), verdict.reason

    def one(self, video: Path, item_id: str, out_dir: Path) -> dict[str, Any]:
        """The record for one video: an item, or a failure with each attempt's reason."""
        s = self.settings
        reasons: list[str] = []
        try:
            content = video_content(video, frames=s.frames, audio=s.audio)
        except (MediaError, DataError) as error:
            return {"id": item_id, "video": str(video), "error": str(error), "attempts": []}
        for attempt in range(1, s.retries + 2):
            try:
                generated, reason = self.attempt(content)
            except ReplyError as error:
                reasons.append(str(error))
                continue
            item = Item(id=item_id, video=os.path.relpath(video.resolve(), out_dir.resolve()),
                        question=generated["question"], options=generated["options"], answer=generated["answer"],
                        steps=generated["steps"], category="", source=SOURCE,
                        extras={"generator": s.generator.model, "checker": s.checker.model, "attempts": attempt,
                                "check": reason})
            validate_item(item, f"{video}: the generated item")
            return item.to_dict()
        return {"id": item_id, "video": str(video), "error": f"no accepted question in {len(reasons)} attempts",
                "attempts": reasons}

    def _records(self, todo: list[tuple[Path, str]], out_dir: Path) -> Iterator[dict[str, Any]]:
        """Each video's record as it is finished; with several workers, in the order they finish.
        Only this (the calling) thread writes, so each record is one whole append."""
        if self.settings.workers <= 1:
            for video, item_id in todo:
                yield self.one(video, item_id, out_dir)
            return
        from concurrent.futures import ThreadPoolExecutor, as_completed

        pool = ThreadPoolExecutor(max_workers=self.settings.workers)
        try:
            futures = [pool.submit(self.one, video, item_id, out_dir) for video, item_id in todo]
            for future in as_completed(futures):
                yield future.result()
        finally:  # a fatal error or an interrupt: drop the queued videos, a rerun does them
            pool.shutdown(wait=True, cancel_futures=True)

    def run(self, videos: list[Path], out: str | Path, progress: bool = True) -> Summary:
        out = Path(out)
        failed_path = failures_path(out)
        items, failures = RecordWriter(out), RecordWriter(failed_path)
        done = record_ids(read_records(out)) | record_ids(read_records(failed_path))
        summary = Summary()
        todo = [(v, i) for v, i in zip(videos, video_ids(videos)) if i not in done]
        summary.skipped = len(videos) - len(todo)
        from tqdm import tqdm

        bar = tqdm(total=len(videos), initial=summary.skipped, disable=not progress, desc="datagen", unit="video")
        try:
            for record in self._records(todo, out.parent):
                summary.attempts += record["extras"]["attempts"] if "extras" in record else len(record["attempts"])
                if "error" in record:
                    failures.write([record])
                    summary.failed += 1
                else:
                    items.write([record])
                    summary.accepted += 1
                bar.update(1)
                bar.set_postfix(accepted=summary.accepted, failed=summary.failed)
        finally:
            bar.close()
        return summary


def run_datagen(videos: list[str | Path], out: str | Path, settings: DatagenSettings,
                progress: bool = True) -> Summary:
    """Generate a checked question with steps for each video into `out` (see module docstring)."""
    if settings.retries < 0:
        raise SalmonnError(f"retries must be >= 0, got {settings.retries}")
    return Datagen(settings).run(collect_videos(videos), out, progress=progress)
