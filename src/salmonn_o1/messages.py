"""Chat messages with typed content items (Qwen2.5-Omni's shape) -> our text conversation and its one media input.

transformers' multimodal processors take
`{"role": "user", "content": [{"type": "video", "video": "clip.mp4"}, {"type": "text", "text": "..."}]}`.
Our chat format (`salmonn_o1.chat`) is text with one `<image>` placeholder
where the media goes, and the model takes at most one media input per sample,
so a conversation is split here into the text messages and that one input. A
media item becomes `<image>` + newline at its place in the turn: the release
normalises a turn to that shape, so `[video, text]` gives the same ids as
`processor.encode(text, video)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from salmonn_o1.prompts import MEDIA_TOKEN

MEDIA_TYPES = ("video", "audio", "image")
CONTENT_TYPES = ("text", *MEDIA_TYPES)


@dataclass
class SplitConversation:
    """One conversation as our chat format takes it, and its media input (if any)."""

    messages: list[dict[str, str]]  # {"role", "content": str}, the placeholder where the media item was
    media: Any = None  # the item's value: a path, or decoded media
    kind: str | None = None  # "video", "audio" or "image"


def is_batch(conversation: list) -> bool:
    """A list of conversations (each a list of messages) rather than one conversation."""
    return bool(conversation) and isinstance(conversation[0], list | tuple)


def split_conversation(conversation: list[dict], index: int = 0) -> SplitConversation:
    """Text messages plus the one media item; a clear ValueError naming conversation `index` otherwise."""
    where = f"conversation {index}"
    if not isinstance(conversation, list | tuple) or not conversation:
        raise ValueError(f"{where}: expected a non-empty list of messages, got {conversation!r:.80}")
    messages: list[dict[str, str]] = []
    found: list[tuple[str, Any, int]] = []
    for number, message in enumerate(conversation):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise ValueError(f"{where}, message {number}: each message is a dict with 'role' and 'content'")
        content = message["content"]
        if isinstance(content, str):
            messages.append({"role": message["role"], "content": content})
            continue
        if isinstance(content, dict):
            content = [content]
        pieces: list[str] = []
        for item in content:
            kind = item.get("type") if isinstance(item, dict) else None
            if kind not in CONTENT_TYPES:
                raise ValueError(f"{where}, message {number}: unknown content type {kind!r} in {item!r:.80}; "
                                 f"expected one of {', '.join(CONTENT_TYPES)}")
            if kind == "text":
                pieces.append(str(item.get("text", "")))
                continue
            value = next((item[key] for key in (kind, "path", "url") if item.get(key) is not None), None)
            if value is None:
                raise ValueError(f"{where}, message {number}: a {kind!r} item needs the file under {kind!r} "
                                 f"(or 'path'), got {item!r:.80}")
            if message["role"] != "user":
                raise ValueError(f"{where}, message {number}: media goes in a user turn, "
                                 f"not a {message['role']!r} one")
            found.append((kind, value, number))
            pieces.append(f"{MEDIA_TOKEN}\n")
        messages.append({"role": message["role"], "content": "".join(pieces)})
    if len(found) > 1:
        listed = ", ".join(f"{kind} in message {number}" for kind, _, number in found)
        raise ValueError(f"{where} has {len(found)} media inputs ({listed}); the model takes at most one "
                         "per conversation (a video brings its own audio track)")
    if not found:
        return SplitConversation(messages)
    kind, value, _ = found[0]
    return SplitConversation(messages, value, kind)
