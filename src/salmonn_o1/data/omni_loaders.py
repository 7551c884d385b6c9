"""Loaders for the audio-visual benchmarks video-SALMONN 2, Qwen2.5-Omni and the AV-reasoning papers report.

Each reads the benchmark's published annotation file (a local copy) and returns `Item`s; fields
were taken from the files the benchmarks publish and from how lmms-eval's tasks read them
(docs/data.md, "Benchmark loaders", names each field and where it comes from). Media the
benchmark ships separately from the video (an audio track beside a silent video, an image with
its audio clip) is named in `extras` so nothing is lost; the item's `video` is the file our
media decoder reads.

- WorldSense: {"index", "video_path", "question", "candidates": ["A. ..", ..], "answer": "A",
  "task_type", "task_domain", "duration", "audio_class"}.
- Daily-Omni (qa.json): {"video_id", "Question", "Choice": ["A. ..", ..], "Answer": "A", "Type",
  "video_duration", "content_parent_category", "video_category"}; videos at
  Videos/<id>/<id>_video.mp4 with the audio track at Videos/<id>/<id>_audio.wav.
- Video-Holmes: {"video ID", "Question ID", "Question", "Options": {"A": "..", ..}, "Answer": "A",
  "Question Type", "Explanation"}; videos at videos/<video ID>.mp4.
- AV-Odyssey: {"question_id", "question" with [img1]/[video1]/[audio1] tags, "options":
  ["A: ..", ..], "answer": "A", "subfield", "data_type", "image_path", "video_path", "audio_path"}.
- OmniBench: {"index", "task type", "audio type", "question", "options": [..], "answer": option
  text, "audio_path", "image_path", "audio content", "image content"}.
- Video-MME with subtitles: Video-MME's annotation plus subtitle/<videoID>.srt; the subtitle
  text goes in the question as lmms-eval's `videomme_w_subtitle` prompt puts it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from salmonn_o1 import prompts
from salmonn_o1.data.loaders import (
    _field,
    _parquet_records,
    _records,
    _video_path,
    answer_to_letter,
    load_videomme,
    strip_option_letter,
)
from salmonn_o1.data.schema import Item, validate_item
from salmonn_o1.errors import DataError

_MEDIA_TAG = re.compile(r"\[(audio|video|img)\d+\]")
_FONT_TAG = re.compile(r"<[^>]+>")
SUBTITLE_PROMPT = "This video's subtitles are listed below:"
NO_SUBTITLES = "No subtitles available"


def _rows(path: Path) -> Iterable[tuple[str, Any]]:
    return _parquet_records(path) if path.suffix == ".parquet" else _records(path)


def _choice_item(where: str, *, id: str, video: str | None, question: str, options: list[str], answer: str,
                 category: str, source: str, extras: dict[str, Any], strip_letters: bool = True) -> Item:
    """An item from lettered options ("A. x") and a gold letter or option text; errors name the field."""
    if strip_letters:
        options = [strip_option_letter(str(o), letter) for o, letter in zip(options, prompts.OPTION_LETTERS)]
    try:
        letter = answer_to_letter(str(answer), options)
    except ValueError as error:
        raise DataError(f"{where}: field 'answer': {error}") from None
    item = Item(id=id, video=video, question=question.strip(), options=options, answer=letter,
                category=category, source=source, extras={k: v for k, v in extras.items() if v not in (None, "")})
    validate_item(item, where)
    return item


def load_worldsense(path: str | Path, video_dir: str | Path | None = None) -> list[Item]:
    """WorldSense (lmms-lab/worldsense): video with audio; category = task_type."""
    path = Path(path)
    items = []
    for index, (where, record) in enumerate(_rows(path)):
        video = _field(record, "video_path", where)
        items.append(_choice_item(
            where, id=str(record.get("index", f"worldsense-{index:05d}")),
            video=_video_path(video, video_dir, path.parent),
            question=_field(record, "question", where), options=_field(record, "candidates", where, (list, tuple)),
            answer=_field(record, "answer", where), category=str(record.get("task_type", "")),
            source="worldsense",
            extras={k: record.get(k) for k in ("task_domain", "duration", "audio_class", "subtitle_path")},
        ))
    return items


def load_daily_omni(path: str | Path, video_dir: str | Path | None = None) -> list[Item]:
    """Daily-Omni's qa.json: the video at <dir>/<id>/<id>_video.mp4 (default dir: Videos beside
    the file), its audio track in extras["audio"]; category = Type (the QA type)."""
    path = Path(path)
    base = Path(video_dir) if video_dir is not None else path.parent / "Videos"
    items = []
    for index, (where, record) in enumerate(_rows(path)):
        video_id = str(_field(record, "video_id", where))
        folder = base / video_id
        choices = record.get("Choice", record.get("choices"))
        if not isinstance(choices, (list, tuple)):
            raise DataError(f"{where}: missing field 'Choice' (a list of lettered options)")
        items.append(_choice_item(
            where, id=str(record.get("id", f"{video_id}-{index:05d}")), video=str(folder / f"{video_id}_video.mp4"),
            question=_field(record, "Question", where), options=list(choices),
            answer=_field(record, "Answer", where), category=str(record.get("Type", record.get("qa_type", ""))),
            source="daily-omni",
            extras={"audio": str(folder / f"{video_id}_audio.wav"), "video_id": video_id,
                    **{k: record.get(k) for k in ("video_duration", "content_parent_category", "video_category")}},
        ))
    return items


def load_video_holmes(path: str | Path, video_dir: str | Path | None = None, video_ext: str = ".mp4") -> list[Item]:
    """Video-Holmes' test_Video-Holmes.json: options as a letter -> text object; category =
    Question Type (SR, IMC, TCI, TA, MHR, PAR, CTI); videos at videos/<video ID>.mp4 by default."""
    path = Path(path)
    base = Path(video_dir) if video_dir is not None else path.parent / "videos"
    items = []
    for index, (where, record) in enumerate(_rows(path)):
        video_id = str(_field(record, "video ID", where))
        raw = _field(record, "Options", where, dict)
        letters = sorted(raw)
        if letters != list(prompts.OPTION_LETTERS[: len(letters)]):
            raise DataError(f"{where}: field 'Options' keys are {''.join(letters)}; expected A, B, C... in order")
        items.append(_choice_item(
            where, id=str(record.get("Question ID", f"{video_id}-{index:05d}")),
            video=_video_path(video_id, base, path.parent, video_ext),
            question=_field(record, "Question", where), options=[str(raw[k]).strip() for k in letters],
            answer=str(_field(record, "Answer", where)).strip().upper(),
            category=str(record.get("Question Type", "")), source="video-holmes", strip_letters=False,
            extras={"video_id": video_id, "explanation": record.get("Explanation")},
        ))
    return items


def load_av_odyssey(path: str | Path, media_dir: str | Path | None = None) -> list[Item]:
    """AV-Odyssey: the question's [img1]/[video1]/[audio1] tags are removed; `video` is the first
    video (or image) and every media path is kept in extras; category = subfield."""
    path = Path(path)
    base = Path(media_dir) if media_dir is not None else path.parent
    items = []
    for index, (where, record) in enumerate(_rows(path)):
        paths = {kind: [str(base / p) for p in (record.get(f"{kind}_path") or [])] for kind in ("video", "image", "audio")}
        visual = (paths["video"] or paths["image"] or [None])[0]
        question = re.sub(r"[ \t]{2,}", " ", _MEDIA_TAG.sub("", _field(record, "question", where))).strip()
        items.append(_choice_item(
            where, id=str(record.get("question_id", f"av-odyssey-{index:05d}")), video=visual,
            question=question, options=_field(record, "options", where, (list, tuple)),
            answer=_field(record, "answer", where), category=str(record.get("subfield", "")),
            source="av-odyssey",
            extras={"data_type": record.get("data_type"), "task_name": record.get("task_name"),
                    **{f"{kind}_paths": value for kind, value in paths.items() if value}},
        ))
    return items


def load_omnibench(path: str | Path, media_dir: str | Path | None = None) -> list[Item]:
    """OmniBench (an image with an audio clip): `video` is the image, extras["audio"] the clip; the
    gold answer is an option's text, as OmniBench ships it; category = task type."""
    path = Path(path)
    base = Path(media_dir) if media_dir is not None else path.parent
    items = []
    for index, (where, record) in enumerate(_rows(path)):
        image = record.get("image_path")
        audio = record.get("audio_path")
        items.append(_choice_item(
            where, id=str(record.get("index", f"omnibench-{index:05d}")),
            video=str(base / image) if isinstance(image, str) and image else None,
            question=_field(record, "question", where),
            options=[str(o).strip() for o in _field(record, "options", where, (list, tuple))],
            answer=str(_field(record, "answer", where)), category=str(record.get("task type", "")),
            source="omnibench", strip_letters=False,
            extras={"audio": str(base / audio) if isinstance(audio, str) and audio else None,
                    "audio_type": record.get("audio type"), "audio_content": record.get("audio content"),
                    "image_content": record.get("image content")},
        ))
    return items


def read_srt(path: Path) -> list[tuple[float, float, str]]:
    """(start s, end s, text) of each SRT cue, markup (Video-MME's <font> tags) removed."""
    cues = []
    for block in re.split(r"\n\s*\n", path.read_text(encoding="utf-8-sig").replace("\r\n", "\n")):
        lines = [line for line in block.strip().split("\n") if line.strip()]
        timing = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if timing is None:
            continue
        try:
            start, end = (_srt_seconds(t) for t in lines[timing].split("-->"))
        except ValueError:
            raise DataError(f"{path}: unreadable cue time {lines[timing]!r}") from None
        text = " ".join(_FONT_TAG.sub("", line).strip() for line in lines[timing + 1 :]).strip()
        if text:
            cues.append((start, end, text))
    return sorted(cues)


def _srt_seconds(text: str) -> float:
    hours, minutes, seconds = text.strip().split()[0].replace(",", ".").split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def subtitle_question(question: str, cues: list[tuple[float, float, str]]) -> str:
    """The question with the subtitles above it, worded as lmms-eval's videomme_w_subtitle prompt."""
    lines: list[str] = []
    for _, _, text in cues:
        if not lines or lines[-1] != text:  # consecutive repeats (rolling captions) once
            lines.append(text)
    subtitles = "\n".join(lines) if lines else NO_SUBTITLES
    return f"{SUBTITLE_PROMPT}\n{subtitles}\n{question}"


def load_videomme_subtitles(path: str | Path, video_dir: str | Path | None = None,
                            subtitle_dir: str | Path | None = None, video_ext: str = ".mp4") -> list[Item]:
    """Video-MME with subtitles: each question carries its video's subtitle/<videoID>.srt text
    (every cue, in time order; "No subtitles available" when the video has none, as lmms-eval)."""
    path = Path(path)
    subtitles = Path(subtitle_dir) if subtitle_dir is not None else path.parent / "subtitle"
    items = load_videomme(path, video_dir=video_dir, video_ext=video_ext)
    cache: dict[str, list[tuple[float, float, str]]] = {}
    for item in items:
        video_id = Path(item.video or item.id).stem
        srt = subtitles / f"{video_id}.srt"
        if video_id not in cache:
            cache[video_id] = read_srt(srt) if srt.is_file() else []
        item.question = subtitle_question(item.question, cache[video_id])
        item.source = "videomme-subtitles"
        item.extras["subtitle_path"] = str(srt) if srt.is_file() else None
    return items


LOADERS = {
    "worldsense": load_worldsense,
    "daily-omni": load_daily_omni,
    "video-holmes": load_video_holmes,
    "av-odyssey": load_av_odyssey,
    "omnibench": load_omnibench,
    "videomme-subtitles": load_videomme_subtitles,
}
