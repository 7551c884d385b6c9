"""Other tools' records -> our SFT items (`Item`, JSONL) or our preference-pair records (pairs JSONL).

An SFT record becomes an `Item` whose `extras["conversation"]` holds every turn; `train sft` trains
that conversation as it is, with a loss on every assistant turn (`question` and `answer` are its
first user turn and last assistant turn, for reading and for `infer`/`eval`). A preference record
becomes a full-path pair (`kind: "path"`, empty prefix, both responses ending the turn, hard label
1), the shape `train pdpo` reads with `pdpo.pairs`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from salmonn_o1.data.interop.formats import Chat, parse_record
from salmonn_o1.data.interop.source import read_raw_records
from salmonn_o1.data.schema import Item, validate_item
from salmonn_o1.errors import DataError, writing
from salmonn_o1.prompts import MEDIA_TOKEN

CONVERSATION = "conversation"  # Item extras key: the imported turns, trained as they are


def import_records(source: Any, format: str, media_dir: str | Path | None = None,
                   separate_audio: str = "ignore") -> list[Item] | list[dict[str, Any]]:
    """Items (SFT records) or pair records (preference records) of a file, dataset folder or Dataset.

    Relative media paths resolve against `media_dir` (default: the input file's folder). A file
    mixing SFT and preference records is refused (they train different stages).
    """
    name, records = read_raw_records(source)
    if media_dir is None and isinstance(source, (str, Path)):
        media_dir = Path(source) if Path(source).is_dir() else Path(source).parent
    base = Path(media_dir) if media_dir is not None else None
    stem = Path(name).stem if isinstance(source, (str, Path)) else "record"
    if not records:
        raise DataError(f"{name}: no records")
    out: list[Any] = []
    kinds: set[bool] = set()
    seen: dict[str, int] = {}
    for index, record in enumerate(records):
        where = f"{name} record {index}"
        chat = parse_record(record, format, where, base, separate_audio)
        kinds.add(chat.is_preference)
        if len(kinds) > 1:
            raise DataError(f"{where}: is {'a preference' if chat.is_preference else 'an SFT'} record after "
                            f"{'SFT' if chat.is_preference else 'preference'} records; split them into two files")
        record_id = str(record.get("id") or f"{stem}-{index:06d}")
        if record_id in seen:
            raise DataError(f"{where}: field 'id' {record_id!r} duplicates record {seen[record_id]}")
        seen[record_id] = index
        extras = {**chat.extras, "format": format}
        out.append(_pair(chat, record_id, extras, where) if chat.is_preference else _item(chat, record_id, extras,
                                                                                          where))
    return out


def _question(chat: Chat) -> str:
    first = next(m["content"] for m in chat.messages if m["role"] == "user")
    return first.replace(MEDIA_TOKEN, "").strip() or first


def _item(chat: Chat, record_id: str, extras: dict[str, Any], where: str) -> Item:
    answer = chat.messages[-1]["content"].strip()
    if not answer:
        raise DataError(f"{where}: the last assistant turn is empty")
    if chat.media_kind:
        extras["media_kind"] = chat.media_kind
    item = Item(id=record_id, video=chat.media, question=_question(chat), answer=answer,
                source=extras["format"], extras={**extras, CONVERSATION: chat.messages})
    validate_item(item, where)
    return item


def _pair(chat: Chat, record_id: str, extras: dict[str, Any], where: str) -> dict[str, Any]:
    """A full-path pair record (the fields of `pdpo.pairs.PairRecord`)."""
    users = [m for m in chat.messages if m["role"] == "user"]
    if len(users) > 1:
        raise DataError(f"{where}: a preference record with {len(users)} user turns; pDPO pairs have a one-turn "
                        "prompt (keep the last question, or import it as SFT)")
    for name, text in (("chosen", chat.chosen), ("rejected", chat.rejected)):
        if not (text or "").strip():
            raise DataError(f"{where}: field '{name}' is empty")
    if chat.chosen == chat.rejected:
        raise DataError(f"{where}: fields 'chosen' and 'rejected' are the same text")
    if chat.messages[0]["role"] == "system":
        extras["system"] = chat.messages[0]["content"]  # pDPO encodes pairs with the model's system prompt
    return {
        "pair_id": record_id, "kind": "path", "question_id": record_id, "prompt": users[0]["content"],
        "reference": "", "media": {"path": chat.media} if chat.media else None, "prefix": [],
        "chosen": {"text": chat.chosen, "ends_turn": True, "value": None},
        "rejected": {"text": chat.rejected, "ends_turn": True, "value": None},
        "label": 1.0, "label_mode": "hard", "mu": None, "step_index": None, "kl": None, "ref_logps": None,
        "extras": extras,
    }


def write_imported(records: list[Item] | list[dict[str, Any]], out: str | Path) -> Path:
    """Write items (media paths relative to the output folder, as `read_items` resolves them) or pairs."""
    out = Path(out)
    with writing(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as handle:
            for record in records:
                if isinstance(record, Item):
                    record = record.to_dict()
                    if record["video"]:
                        record["video"] = os.path.relpath(record["video"], out.parent.resolve())
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return out
