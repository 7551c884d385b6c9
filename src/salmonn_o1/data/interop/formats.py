"""The three tools' record shapes -> one normalised chat: turns, one media file, and a preference.

- LLaMA-Factory (`llamafactory`): `messages` with role/content, or sharegpt `conversations` with
  from/value (human/gpt/system), or alpaca `instruction` / `input` / `output` / `history`; an optional
  `system`; media in `videos` / `audios` / `images` lists,
  placed by `<video>` `<audio>` `<image>` tags in the text; preference records add `chosen` and
  `rejected` (a turn object with from/value or role/content, or a string).
- ms-swift (`ms-swift`): `messages` with role/content, `videos` / `audios` / `images` (lists or a
  string), the same tags, and `rejected_response` for preference records (the last assistant turn
  of `messages` is the chosen response).
- video-SALMONN 2 (`video-salmonn2`): `video` and/or `audio` paths and sharegpt `conversations`
  whose human turn carries `<image>` as the media placeholder; a DPO record has a `reject_gpt` turn
  after the `gpt` turn (the chosen response).

Our model takes one media input per sample (a video with its own audio track, an audio file, or an
image). A record with a video and a separate audio file uses the video and its own track
(`separate_audio="ignore"`, the default; the audio path is kept in the item's extras), or is refused
(`separate_audio="error"`). Two videos, two images, or an image with an audio file are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from salmonn_o1.errors import DataError
from salmonn_o1.prompts import MEDIA_TOKEN

FORMATS = ("llamafactory", "ms-swift", "video-salmonn2")
SEPARATE_AUDIO = ("ignore", "error")
MEDIA_KEYS = {"videos": "<video>", "audios": "<audio>", "images": "<image>"}
_TAG = re.compile(r"<(?:video|audio|image)>")
_ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant", "system": "system"}


@dataclass
class Chat:
    """One record, normalised: ChatML turns (media placeholder `<image>` where the tag was)."""

    messages: list[dict[str, str]]
    media: str | None  # absolute path of the one media file, or None for text only
    media_kind: str | None  # "video" | "audio" | "image"
    chosen: str | None = None  # preference records: the preferred and the dispreferred final turn
    rejected: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def is_preference(self) -> bool:
        return self.rejected is not None


def parse_record(record: Any, fmt: str, where: str, media_dir: Path | None,
                 separate_audio: str = "ignore") -> Chat:
    """Normalise one record of format `fmt`; DataError names `where` (file and record) and the field."""
    if fmt not in FORMATS:
        raise DataError(f"unknown import format {fmt!r}; choose from {', '.join(FORMATS)}")
    if separate_audio not in SEPARATE_AUDIO:
        raise DataError(f"separate_audio must be one of {', '.join(SEPARATE_AUDIO)}, got {separate_audio!r}")
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected an object, got {type(record).__name__}")
    if fmt == "video-salmonn2":
        return _video_salmonn2(record, where, media_dir, separate_audio)
    return _tagged(record, fmt, where, media_dir, separate_audio)


def _turns(record: dict, where: str) -> tuple[str, list[dict[str, str]]]:
    """(field name, [{"role", "content"}]) from `messages` or sharegpt `conversations`."""
    # columnar sources (parquet, datasets) fill a record's absent fields with None
    name = next((k for k in ("messages", "conversations") if record.get(k) is not None), None)
    if name is None and record.get("instruction") is not None:
        return "instruction", _alpaca(record, where)
    if name is None:
        raise DataError(f"{where}: missing field 'messages' (or sharegpt 'conversations')")
    turns = record[name]
    if not isinstance(turns, list) or not turns:
        raise DataError(f"{where}: field '{name}' must be a non-empty list of turns")
    return name, [_turn(t, f"{where}: field '{name}' turn {i}") for i, t in enumerate(turns)]


def _alpaca(record: dict, where: str) -> list[dict[str, str]]:
    """LLaMA-Factory's alpaca shape: `history` pairs, then `instruction` + `input`, then `output`."""
    turns: list[dict[str, str]] = []
    for i, pair in enumerate(record.get("history") or []):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
            raise DataError(f"{where}: field 'history' entry {i} must be [question, answer]")
        turns += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    parts = [record.get("instruction"), record.get("input")]
    if not all(p is None or isinstance(p, str) for p in parts):
        raise DataError(f"{where}: fields 'instruction' and 'input' must be strings")
    turns.append({"role": "user", "content": "\n".join(p for p in parts if p)})
    output = record.get("output")
    if output is not None:
        if not isinstance(output, str):
            raise DataError(f"{where}: field 'output' must be a string")
        turns.append({"role": "assistant", "content": output})
    return turns


def _turn(turn: Any, where: str, allow: tuple[str, ...] = tuple(_ROLES)) -> dict[str, str]:
    if not isinstance(turn, dict):
        raise DataError(f"{where}: expected an object, got {type(turn).__name__}")
    role = turn.get("role", turn.get("from"))
    content = turn.get("content", turn.get("value"))
    if role not in allow:
        raise DataError(f"{where}: role {role!r} is not supported (expected one of {', '.join(allow)})")
    if not isinstance(content, str):
        raise DataError(f"{where}: 'content' (or 'value') must be a string, got {type(content).__name__}")
    return {"role": role, "content": content}


def _paths(record: dict, key: str, where: str) -> list[str]:
    value = record.get(key)
    if value is None:
        return []
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise DataError(f"{where}: field '{key}' must be a path or a list of paths")
    return list(values)


def _resolve(path: str, media_dir: Path | None) -> str:
    p = Path(path)
    if not p.is_absolute() and media_dir is not None:
        p = media_dir / p
    return str(p.resolve())


def _one_media(videos: list[str], audios: list[str], images: list[str], where: str, names: tuple[str, str, str],
               media_dir: Path | None, separate_audio: str, extras: dict) -> tuple[str | None, str | None]:
    """The record's one media input (see the module docstring for the rule)."""
    video_key, audio_key, image_key = names
    for values, key in ((videos, video_key), (audios, audio_key), (images, image_key)):
        if len(values) > 1:
            raise DataError(f"{where}: field '{key}' has {len(values)} entries; the model takes one media input "
                            "per sample")
    if videos and images:
        raise DataError(f"{where}: fields '{video_key}' and '{image_key}' are both given; the model takes one "
                        "media input per sample")
    if images and audios:
        raise DataError(f"{where}: fields '{image_key}' and '{audio_key}' are both given; an image has no audio "
                        "track, and the model takes one media input per sample")
    if videos and audios:
        if separate_audio == "error":
            raise DataError(f"{where}: fields '{video_key}' and '{audio_key}' are both given; the model hears the "
                            "video's own audio track (separate_audio='ignore' uses it and drops the audio file)")
        extras["ignored_audio"] = _resolve(audios[0], media_dir)
    if videos:
        return _resolve(videos[0], media_dir), "video"
    if audios:
        return _resolve(audios[0], media_dir), "audio"
    if images:
        return _resolve(images[0], media_dir), "image"
    return None, None


def _place_media(messages: list[dict[str, str]], tags: re.Pattern[str], has_media: bool, where: str,
                 field_name: str, expected: dict[str, int]) -> list[dict[str, str]]:
    """Replace the media tags by one `<image>` placeholder at the first tag; check the tag counts."""
    counts = {tag: sum(m["content"].count(tag) for m in messages) for tag in expected}
    for tag, n in expected.items():
        if counts[tag] and counts[tag] != n:
            raise DataError(f"{where}: field '{field_name}' has {counts[tag]} {tag} tag(s) for {n} file(s)")
    if not has_media and any(counts.values()):
        tag = next(t for t, n in counts.items() if n)
        raise DataError(f"{where}: field '{field_name}' has a {tag} tag but the record names no media file")
    out, placed = [], False
    for message in messages:
        content = message["content"]
        if message["role"] == "assistant" and tags.search(content):
            raise DataError(f"{where}: field '{field_name}': a media tag in an assistant turn")
        if tags.search(content):
            first = tags.search(content)
            before, after = content[: first.start()], tags.sub("", content[first.end():])
            content = tags.sub("", before) + ("" if placed else MEDIA_TOKEN) + after
            placed = True
        out.append({"role": message["role"], "content": content})
    return out


def _check_order(messages: list[dict[str, str]], where: str, field_name: str, preference: bool) -> None:
    """system? then user/assistant alternating from a user turn; SFT ends on assistant, a preference prompt
    on user (the two responses follow it)."""
    roles = [m["role"] for m in messages]
    body = roles[1:] if roles and roles[0] == "system" else roles
    if "system" in body:
        raise DataError(f"{where}: field '{field_name}': a system turn is allowed only first")
    expected = ["user" if i % 2 == 0 else "assistant" for i in range(len(body))]
    if body != expected:
        raise DataError(f"{where}: field '{field_name}': turns must alternate user/assistant from a user turn "
                        f"(got {', '.join(body)})")
    last = "user" if preference else "assistant"
    if not body or body[-1] != last:
        raise DataError(f"{where}: field '{field_name}' must end with a{'' if last == 'user' else 'n'} {last} turn"
                        + (" (the prompt of the chosen/rejected responses)" if preference else ""))


def _response(value: Any, where: str, name: str) -> str:
    if isinstance(value, str):
        return value
    return _turn(value, f"{where}: field '{name}'", allow=("assistant", "gpt"))["content"]


def _tagged(record: dict, fmt: str, where: str, media_dir: Path | None, separate_audio: str) -> Chat:
    name, messages = _turns(record, where)
    messages = [{"role": _ROLES[m["role"]], "content": m["content"]} for m in messages]
    system = record.get("system")
    if system is not None:
        if not isinstance(system, str):
            raise DataError(f"{where}: field 'system' must be a string")
        if messages[0]["role"] != "system" and system.strip():
            messages.insert(0, {"role": "system", "content": system})
    chosen = rejected = None
    if fmt == "llamafactory" and (record.get("chosen") is not None or record.get("rejected") is not None):
        for key in ("chosen", "rejected"):
            if record.get(key) is None:
                raise DataError(f"{where}: missing field '{key}' (a preference record needs chosen and rejected)")
        chosen, rejected = _response(record["chosen"], where, "chosen"), _response(record["rejected"], where,
                                                                                    "rejected")
    elif fmt == "ms-swift" and record.get("rejected_response") is not None:
        rejected = record["rejected_response"]
        if not isinstance(rejected, str):
            raise DataError(f"{where}: field 'rejected_response' must be a string")
        if messages[-1]["role"] != "assistant":
            raise DataError(f"{where}: field '{name}' must end with the chosen assistant turn")
        chosen = messages.pop()["content"]
    extras: dict[str, Any] = {}
    videos, audios, images = (_paths(record, k, where) for k in MEDIA_KEYS)
    media, kind = _one_media(videos, audios, images, where, tuple(MEDIA_KEYS), media_dir, separate_audio, extras)
    expected = {tag: len(_paths(record, key, where)) for key, tag in MEDIA_KEYS.items()}
    messages = _place_media(messages, _TAG, media is not None, where, name, expected)
    _check_order(messages, where, name, preference=rejected is not None)
    return Chat(messages, media, kind, chosen, rejected, extras)


def _video_salmonn2(record: dict, where: str, media_dir: Path | None, separate_audio: str) -> Chat:
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise DataError(f"{where}: field 'conversations' must be a non-empty list of turns")
    allow = ("human", "gpt", "reject_gpt", "system")
    raw = [_turn(t, f"{where}: field 'conversations' turn {i}", allow=allow) for i, t in enumerate(turns)]
    rejected_turns = [i for i, t in enumerate(raw) if t["role"] == "reject_gpt"]
    chosen = rejected = None
    if rejected_turns:
        i = rejected_turns[0]
        if len(rejected_turns) > 1 or i != len(raw) - 1 or i < 1 or raw[i - 1]["role"] != "gpt":
            raise DataError(f"{where}: field 'conversations': one 'reject_gpt' turn is expected, last, right after "
                            "the chosen 'gpt' turn")
        rejected, chosen = raw[i]["content"], raw[i - 1]["content"]
        raw = raw[: i - 1]
    messages = [{"role": _ROLES[t["role"]], "content": t["content"]} for t in raw]
    extras: dict[str, Any] = {}
    videos, audios = _paths(record, "video", where), _paths(record, "audio", where)
    images = _paths(record, "image", where)
    media, kind = _one_media(videos, audios, images, where, ("video", "audio", "image"), media_dir, separate_audio,
                             extras)
    # video-SALMONN 2 marks the media (video and/or audio) with one <image> placeholder
    placeholder = re.compile(re.escape(MEDIA_TOKEN))
    messages = _place_media(messages, placeholder, media is not None, where, "conversations",
                            {MEDIA_TOKEN: 1})
    _check_order(messages, where, "conversations", preference=rejected is not None)
    return Chat(messages, media, kind, chosen, rejected, extras)
