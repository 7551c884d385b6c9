"""Our pDPO records -> TRL's dataset formats.

- `trl-preference`: one row per pair of `pairs.jsonl`, in TRL's conversational preference format
  (`prompt` / `chosen` / `rejected` message lists) with the media in a `videos`, `audios` or `images`
  list and a `<video>` / `<audio>` / `<image>` tag in the prompt, as LLaMA-Factory and TRL's vision
  DPO name them. A step pair's shared prefix is written at the start of both responses: DPO's
  log-ratio of the two is unchanged by it. `label` (our hard or soft label; TRL's DPO reads none)
  and `id` are kept as extra columns.
- `trl-stepwise`: TRL's stepwise supervision (`prompt`, `completions`, `labels`) from the label
  stage's valued steps (`label.jsonl`): one row per valued branch (the original step and its
  alternative), `completions` = the path's earlier steps + that step, `labels` = `value > threshold`
  (default 0: some completion from the step reached the reference answer, Math-Shepherd's hard
  estimate). An earlier step is labelled good when either branch after it reached the answer;
  when neither did, its status is unknown and the earlier steps go into `prompt` instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from salmonn_o1.errors import DataError, writing
from salmonn_o1.prompts import MEDIA_TOKEN

EXPORT_FORMATS = ("trl-preference", "trl-stepwise")
_AUDIO_SUFFIXES = {".wav", ".mp3", ".flac", ".m4a", ".ogg", ".aac", ".opus"}
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def _media_columns(media: Any, where: str) -> tuple[str | None, dict[str, list[str]]]:
    """(tag, {column: [path]}) of a stage record's media reference; rendered media cannot be exported."""
    if media is None:
        return None, {}
    if not isinstance(media, dict) or "path" not in media:
        raise DataError(f"{where}: field 'media' is {media!r}; only media files ({{'path': ...}}) can be "
                        "exported (render generated clips to files first, e.g. with `salmonn-o1 synth`)")
    suffix = Path(media["path"]).suffix.lower()
    column = "audios" if suffix in _AUDIO_SUFFIXES else "images" if suffix in _IMAGE_SUFFIXES else "videos"
    return f"<{column[:-1]}>", {column: [media["path"]]}


def _tagged_prompt(prompt: str, tag: str | None) -> str:
    if tag is None:
        return prompt.replace(MEDIA_TOKEN, "")
    if MEDIA_TOKEN in prompt:
        return prompt.replace(MEDIA_TOKEN, tag, 1)
    return f"{tag}{prompt}"


def _field(record: Any, name: str, where: str) -> Any:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected an object, got {type(record).__name__}")
    if name not in record:
        raise DataError(f"{where}: missing field '{name}'")
    return record[name]


def preference_row(pair: dict[str, Any], where: str) -> dict[str, Any]:
    """One pair record -> one TRL conversational preference row."""
    prefix = "".join(_field(pair, "prefix", where))
    texts = {}
    for side in ("chosen", "rejected"):
        text = _field(_field(pair, side, where), "text", f"{where}: field '{side}'")
        if not isinstance(text, str):
            raise DataError(f"{where}: field '{side}.text' must be a string")
        texts[side] = prefix + text
    tag, columns = _media_columns(pair.get("media"), where)
    prompt = _tagged_prompt(_field(pair, "prompt", where), tag)
    return {"id": _field(pair, "pair_id", where), "prompt": [{"role": "user", "content": prompt}],
            "chosen": [{"role": "assistant", "content": texts["chosen"]}],
            "rejected": [{"role": "assistant", "content": texts["rejected"]}],
            **columns, "label": float(_field(pair, "label", where))}


def stepwise_rows(record: dict[str, Any], where: str, threshold: float = 0.0) -> list[dict[str, Any]]:
    """One label-stage record -> TRL stepwise-supervision rows (see the module docstring)."""
    tag, columns = _media_columns(record.get("media"), where)
    prompt = _tagged_prompt(_field(record, "prompt", where), tag)
    rows = []
    for s, step in enumerate(_field(record, "steps", where)):
        at = f"{where} step {s}"
        prefix = [p.strip() for p in _field(step, "prefix", at)]
        branches = [("original", _field(step, "original", at)), ("alternative", _field(step, "alternative", at))]
        branches = [(name, b) for name, b in branches if b is not None and b.get("value") is not None]
        if not branches:
            continue
        prefix_good = max(b["value"] for _, b in branches) > 0
        for name, branch in branches:
            text = _field(branch, "text", f"{at}: field '{name}'").strip()
            row_prompt, completions, labels = prompt, [*prefix, text], [True] * len(prefix)
            if prefix and not prefix_good:
                row_prompt, completions, labels = prompt + "\n" + "\n".join(prefix), [text], []
            rows.append({"id": f"{record.get('id')}/{step.get('path')}-{step.get('step_index')}/{name}",
                         "prompt": row_prompt, "completions": completions,
                         "labels": [*labels, float(branch["value"]) > threshold], **columns,
                         "value": float(branch["value"])})
    return rows


def export_records(records: list[dict[str, Any]], format: str, name: str = "records",
                   threshold: float = 0.0) -> list[dict[str, Any]]:
    """Rows of TRL format `format` from our pair records (`trl-preference`) or label records (`trl-stepwise`)."""
    if format not in EXPORT_FORMATS:
        raise DataError(f"unknown export format {format!r}; choose from {', '.join(EXPORT_FORMATS)}")
    rows: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        where = f"{name} record {index}"
        if format == "trl-preference":
            rows.append(preference_row(record, where))
        else:
            rows += stepwise_rows(record, where, threshold)
    return rows


def export_file(path: str | Path, format: str, out: str | Path, threshold: float = 0.0) -> int:
    """Convert a pairs.jsonl / label.jsonl file to a TRL JSONL file (`load_dataset("json")` reads it)."""
    from salmonn_o1.data.interop.source import read_raw_records

    name, records = read_raw_records(path)
    rows = export_records(records, format, name, threshold)
    out = Path(out)
    with writing(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(rows)
