"""The times a reasoning step mentions, and the pictures they are laid on (pure functions).

Reasoning about time is where an audio-visual model is checked: "At 9.0 s the screen shows...",
"the chirp plays from 2.5 s to 3.5 s". `find_times` reads those mentions out of a step's text as
(start, end) spans (a moment is a span of zero length); `frame_strip` draws the sampled frames
with their timestamps and `audio_picture` draws the log-mel features the model hears, with the
0.2 s windows its Q-Former pools and the 30 s chunks Whisper encodes; both highlight the spans.
They return PIL images and take plain arrays, so the page and the tests use the same code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Span = tuple[float, float]

HIGHLIGHT = (255, 196, 0)  # the colour a mentioned time is drawn in, on both pictures
WINDOW_LINE = (255, 255, 255)
CHUNK_LINE = (0, 200, 255)
BACKGROUND = (24, 24, 27)
TEXT = (230, 230, 230)
MIN_WINDOW_SPACING_PX = 3  # closer window lines would paint the picture solid: they are left out

_NUMBER = r"(\d+(?:\.\d+)?)"
_CLOCK = r"(\d{1,2}):([0-5]\d(?:\.\d+)?)"  # 0:09, 01:30.5
_UNIT = r"(?:s|sec|secs|second|seconds)\b"
_UNIT_OPT = rf"(?:\s*{_UNIT})?"
# A span: "from 2.5 s to 3.5 s", "between 1 and 2 seconds", "2.5-3.5 s", "0:02 - 0:04". A unit (or a
# clock) must appear on at least one end, so "from 2 to 3 options" is no span.
_TIME = rf"(?:{_CLOCK}|{_NUMBER}{_UNIT_OPT})"
_SPAN = re.compile(
    rf"\b(?:from|between)\s+(?P<a>{_TIME})\s*(?:to|and|until|till|-|–)\s*(?P<b>{_TIME})"
    rf"|(?P<c>{_TIME})\s*(?:-|–|to)\s*(?P<d>{_TIME})",
    re.IGNORECASE,
)
_POINT = re.compile(rf"(?<![\w.:])(?:{_CLOCK}(?![\w:])|{_NUMBER}\s*{_UNIT})", re.IGNORECASE)
_HAS_UNIT = re.compile(rf"{_UNIT}|:", re.IGNORECASE)


def _seconds(text: str) -> float:
    clock = re.fullmatch(rf"\s*{_CLOCK}\s*", text)
    if clock:
        return int(clock.group(1)) * 60 + float(clock.group(2))
    return float(re.match(rf"\s*{_NUMBER}", text).group(1))


@dataclass(frozen=True)
class Mention:
    """One time the text mentions: where it is written (`text[start:end]`) and the span it means."""

    start: int
    end: int
    span: Span


def find_mentions(text: str) -> list[Mention]:
    """Every time or interval the text mentions, in the order it mentions them (see `find_times`)."""
    found: list[Mention] = []
    for match in _SPAN.finditer(text):
        a, b = (match.group("a"), match.group("b")) if match.group("a") else (match.group("c"), match.group("d"))
        if not (_HAS_UNIT.search(a) or _HAS_UNIT.search(b)):
            continue
        found.append(Mention(match.start(), match.end(), tuple(sorted((_seconds(a), _seconds(b))))))
    taken = [(m.start, m.end) for m in found]
    for match in _POINT.finditer(text):
        if not any(lo <= match.start() < hi for lo, hi in taken):
            t = _seconds(match.group(0))
            found.append(Mention(match.start(), match.end(), (t, t)))
    return sorted(found, key=lambda m: m.start)


def find_times(text: str) -> list[Span]:
    """The (start, end) spans of every time the text mentions; a moment is a span of zero length.

    `"At 9.0 s ..."` -> `[(9.0, 9.0)]`; `"from 2.5 s to 3.5 s"` -> `[(2.5, 3.5)]`;
    `"between 1 and 2 seconds"` -> `[(1.0, 2.0)]`; clock times (`0:09`) count too. A bare number
    is no time (frame counts, option numbers): a span needs a unit or a clock on one end, a moment
    its own. A span written backwards is put in order. A duration ("lasts 1.5 s") reads as a
    moment: the text alone cannot tell them apart.
    """
    return [m.span for m in find_mentions(text)]


@dataclass(frozen=True)
class Axis:
    """Seconds <-> pixel columns of a picture `width` wide that shows `duration` seconds."""

    duration: float
    width: int

    def x(self, t: float) -> int:
        if self.duration <= 0:
            return 0
        return int(round(min(max(t, 0.0), self.duration) / self.duration * (self.width - 1)))

    def columns(self, span: Span, min_width: int = 3) -> tuple[int, int]:
        """The columns a span covers (inclusive), at least `min_width` wide so a moment shows."""
        left, right = self.x(span[0]), self.x(span[1])
        if right - left + 1 < min_width:
            middle = (left + right) // 2
            left, right = middle - min_width // 2, middle + (min_width - 1) // 2
        return max(left, 0), min(right, self.width - 1)


def highlighted_frames(frame_times: Sequence[float], spans: Sequence[Span], duration: float) -> list[int]:
    """Indices of the frames a span points at.

    A frame stands for the time from its timestamp to the next frame's (the last one to the
    end): a span highlights every frame whose stretch it overlaps, so "At 9.0 s" lights the
    frame shown at 9.0 s even when the frames were sampled at 8.5 s and 9.5 s.
    """
    times = [float(t) for t in frame_times]
    stretches = [(t, times[i + 1] if i + 1 < len(times) else max(duration, t)) for i, t in enumerate(times)]
    last = len(times) - 1
    return [i for i, (start, end) in enumerate(stretches)
            if any(_overlaps(span, start, end, closed=i == last) for span in spans)]


def _overlaps(span: Span, start: float, end: float, closed: bool) -> bool:
    """Whether a span touches the stretch [start, end) ([start, end] for the last frame, which holds the end)."""
    a, b = span
    if a == b:
        return start <= a < end or (closed and start <= a <= end)
    return (a < end and b > start) or (start == end and a <= start <= b)


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def frame_strip(frames: np.ndarray, frame_times: Sequence[float], spans: Sequence[Span] = (),
                duration: float | None = None, width: int = 1200, max_thumb_height: int = 80) -> Image.Image:
    """The sampled frames on the time axis the audio picture uses (`Axis(duration, width)`).

    Frame i fills the columns of its stretch (its timestamp to the next frame's), so the frames
    line up with the sounds drawn below them; its time is written under it where there is room.
    A frame a span points at (`highlighted_frames`) gets a HIGHLIGHT band over its stretch and a
    HIGHLIGHT frame around it. frames: (F, H, W, 3) uint8.
    """
    count = int(frames.shape[0])
    times = [float(t) for t in frame_times]
    duration = float(duration if duration is not None else (times[-1] if times else 0.0))
    band, border, label = 10, 2, 17
    if count == 0 or duration <= 0:
        return Image.new("RGB", (width, band + max_thumb_height + label), BACKGROUND)
    axis = Axis(duration, width)
    height, frame_width = frames.shape[1:3]
    slots = [(axis.x(t), axis.x(times[i + 1]) if i + 1 < count else width) for i, t in enumerate(times)]
    widest = max(right - left for left, right in slots)
    thumb_height = max(8, min(max_thumb_height, int(round((widest - 2 * border - 1) * height / frame_width))))
    strip = Image.new("RGB", (width, band + thumb_height + 2 * border + label), BACKGROUND)
    draw = ImageDraw.Draw(strip)
    lit = set(highlighted_frames(times, spans, duration))
    font = _font(13)
    next_free = 0  # the first column a label may start at (labels never overlap)
    for i, (left, right) in enumerate(slots):
        thumb_width = max(2, min(right - left - 2 * border - 1, int(round(thumb_height * frame_width / height))))
        if i in lit:
            draw.rectangle([left, 0, right - 1, band - 2], fill=HIGHLIGHT)
            draw.rectangle([left, band, left + thumb_width + 2 * border - 1, band + thumb_height + 2 * border - 1],
                           fill=HIGHLIGHT)
        thumb = Image.fromarray(frames[i]).resize((thumb_width, thumb_height), Image.BILINEAR)
        strip.paste(thumb, (left + border, band + border))
        text = f"{times[i]:g}s"
        if left >= next_free:
            draw.text((left + border, band + thumb_height + 2 * border), text,
                      fill=HIGHLIGHT if i in lit else TEXT, font=font)
            next_free = left + border + draw.textlength(text, font=font) + 4
    return strip


def timeline(strip: Image.Image | None, audio: Image.Image) -> Image.Image:
    """The frame strip over the audio picture: one picture, one time axis."""
    if strip is None:
        return audio
    both = Image.new("RGB", (max(strip.width, audio.width), strip.height + audio.height), BACKGROUND)
    both.paste(strip, (0, 0))
    both.paste(audio, (0, strip.height))
    return both


def log_mel_image(input_features: np.ndarray, duration: float, frames_per_second: float = 100.0) -> np.ndarray:
    """The chunks' log-mel features (C, mel, T) laid end to end and cut to the media's duration:
    a (mel, time) array, low frequencies in the last row (as a spectrogram is drawn)."""
    mel = np.concatenate(list(np.asarray(input_features, dtype=np.float32)), axis=-1)
    keep = max(1, min(mel.shape[-1], int(round(duration * frames_per_second))))
    return mel[::-1, :keep]


def audio_picture(mel: np.ndarray | None, duration: float, spans: Sequence[Span] = (), width: int = 1200,
                  height: int = 120, window_seconds: float = 0.2, chunk_seconds: float = 30.0) -> Image.Image:
    """The log-mel picture over the media's duration, with the windows, chunks and spans marked.

    mel: (mel bins, time) as `log_mel_image` gives it, or None (no audio track: a blank band).
    Thin lines under the picture mark each `window_seconds` window (left out when they would be
    under MIN_WINDOW_SPACING_PX apart), full-height CHUNK_LINE lines each `chunk_seconds` chunk
    boundary, and HIGHLIGHT bands above and below the picture each span (a moment: 3 px).
    """
    axis = Axis(duration, width)
    ruler, band, label = 8, 10, 17
    top = band
    picture = Image.new("RGB", (width, top + height + ruler + band + label), BACKGROUND)
    if mel is not None and mel.size:
        from matplotlib import colormaps

        low, high = float(mel.min()), float(mel.max())
        scaled = (mel - low) / (high - low) if high > low else np.zeros_like(mel)
        rgb = (colormaps["magma"](scaled)[..., :3] * 255).astype(np.uint8)
        picture.paste(Image.fromarray(rgb).resize((width, height), Image.BILINEAR), (0, top))
    draw = ImageDraw.Draw(picture)
    font = _font(13)
    if mel is None:
        draw.text((8, top + height / 2 - 6), "no audio track: the model hears silence", fill=TEXT, font=font)
    ruler_top = top + height
    if duration > 0 and window_seconds > 0 and width / (duration / window_seconds) >= MIN_WINDOW_SPACING_PX:
        for k in range(int(duration / window_seconds + 1e-6) + 1):
            x = axis.x(k * window_seconds)
            draw.line([x, ruler_top, x, ruler_top + ruler // 2], fill=WINDOW_LINE)
    for k in range(1, int(np.ceil(duration / chunk_seconds - 1e-6))):  # boundaries inside the media
        x = axis.x(k * chunk_seconds)
        draw.line([x, top, x, ruler_top + ruler], fill=CHUNK_LINE, width=2)
    for span in spans:
        left, right = axis.columns(span)
        draw.rectangle([left, 0, right, band - 2], fill=HIGHLIGHT)
        draw.rectangle([left, ruler_top + ruler, right, ruler_top + ruler + band - 2], fill=HIGHLIGHT)
        if span[0] == span[1]:
            draw.line([axis.x(span[0]), top, axis.x(span[0]), ruler_top], fill=HIGHLIGHT, width=1)
    step = _tick_step(duration)
    label_top = ruler_top + ruler + band
    for k in range(int(duration / step + 1e-6) + 1):
        x = axis.x(k * step)
        text = f"{k * step:g}s"
        draw.text((min(max(x - draw.textlength(text, font=font) / 2, 0), width - draw.textlength(text, font=font)),
                   label_top), text, fill=TEXT, font=font)
    return picture


def _tick_step(duration: float) -> float:
    """Seconds between time labels: about ten labels whatever the length."""
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if duration / step <= 12:
            return float(step)
    return 1200.0
