"""The functions our lmms-eval task YAMLs name (`!function salmonn_o1.integrations.lmms_eval.task_utils.X`).

Where the data is: lmms-eval loads a task's data with `datasets.load_dataset(dataset_path,
**dataset_kwargs)`, and a YAML shipped inside a package cannot hold a path on your disk.
So the YAMLs take `dataset_kwargs` from this module, which reads an environment variable
when lmms-eval loads the task (the way lmms-eval's own local-video tasks read theirs):

- `SALMONN_O1_AVR_SYNTH`: the folder `salmonn-o1 synth --out DIR` wrote, or its items.jsonl;
- `SALMONN_O1_RIVABENCH`: a local copy of a released RivaBench JSON file, or a folder of
  them (one file per category: academic, standup, synthdec...); the videos are found
  beside it, or in `SALMONN_O1_RIVABENCH_VIDEOS`.

The documents are then the items exactly as `salmonn-o1 infer` reads them
(`read_items` / `load_rivabench`: same ids, same video paths), and each answer is scored by
the same rule as `salmonn-o1 eval` (`read_answer`, falling back to the reasoning's
conclusion, and `salmonn_o1.eval.metrics`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from salmonn_o1 import prompts
from salmonn_o1.data.loaders import load_rivabench
from salmonn_o1.data.schema import Item, Prediction, read_items
from salmonn_o1.errors import DataError
from salmonn_o1.eval.metrics import ItemScore, accuracy, detection_metrics, score_item
from salmonn_o1.integrations.lmms_eval.protocol import split_reasoning

AVR_SYNTH_ENV = "SALMONN_O1_AVR_SYNTH"
RIVABENCH_ENV = "SALMONN_O1_RIVABENCH"
RIVABENCH_VIDEOS_ENV = "SALMONN_O1_RIVABENCH_VIDEOS"


def _env_path(name: str, what: str) -> Path:
    value = os.environ.get(name, "").strip()
    if not value:
        raise DataError(f"{name} is not set: point it at {what}")
    path = Path(value).expanduser()
    if not path.exists():
        raise DataError(f"{name}={value}: no such file or folder ({what})")
    return path


def avr_synth_items_path() -> Path:
    """The AVR-Synth items file `SALMONN_O1_AVR_SYNTH` names (a synth output folder or its items.jsonl)."""
    what = "the folder `salmonn-o1 synth --out DIR` wrote, or its items.jsonl"
    path = _env_path(AVR_SYNTH_ENV, what)
    if path.is_dir():
        path = path / "items.jsonl"
        if not path.is_file():
            raise DataError(f"{AVR_SYNTH_ENV}={os.environ[AVR_SYNTH_ENV]}: the folder has no items.jsonl ({what})")
    return path


def rivabench_files() -> list[Path]:
    """The RivaBench JSON file(s) `SALMONN_O1_RIVABENCH` names (a file, or a folder of *.json)."""
    what = "a local copy of a released RivaBench JSON file, or a folder of them"
    path = _env_path(RIVABENCH_ENV, what)
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{RIVABENCH_ENV}={os.environ[RIVABENCH_ENV]}: the folder has no .json file ({what})")
    return files


def __getattr__(name: str) -> Any:
    """The YAMLs' `dataset_kwargs`, computed when lmms-eval loads the task (PEP 562), so the
    environment is read then and a missing variable is one clear error naming it."""
    if name == "AVR_SYNTH_DATASET_KWARGS":
        return {"data_files": {"test": str(avr_synth_items_path())}}
    if name == "RIVABENCH_DATASET_KWARGS":
        return {"data_files": {"test": [str(p) for p in rivabench_files()]}}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---- documents ----
def item_doc(item: Item) -> dict[str, Any]:
    """The fields a task document keeps (flat, so `datasets` stores any mix of items)."""
    return {"id": item.id, "video": str(Path(item.video).absolute()) if item.video else None,
            "question": item.question, "options": list(item.options), "answer": item.answer,
            "category": item.category, "source": item.source}


def _dataset(items: list[Item]):
    import datasets

    return datasets.Dataset.from_list([item_doc(item) for item in items])


def avr_synth_process_docs(dataset):
    """The items as `salmonn-o1 infer --data items.jsonl` reads them (the loaded rows are only a
    check that `datasets` read the same file)."""
    return _dataset(read_items(avr_synth_items_path()))


def rivabench_process_docs(dataset):
    """The released JSON read by `load_rivabench` (category = each file's name), as `infer
    --items-format rivabench` reads it."""
    videos = os.environ.get(RIVABENCH_VIDEOS_ENV, "").strip() or None
    return _dataset([item for path in rivabench_files() for item in load_rivabench(path, video_dir=videos)])


def doc_to_visual(doc: dict) -> list[str]:
    """The item's video, whose audio track the model hears too; none for a text-only item."""
    return [doc["video"]] if doc.get("video") else []


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """The question as our direct prompt writes it (options after "Choose from:", then the direct
    instruction); the model replaces that instruction by its reasoning one in reasoning mode."""
    kwargs = lmms_eval_specific_kwargs or {}
    text = prompts.format_question(doc["question"], doc["options"] or None, reasoning=False)
    return f"{kwargs.get('pre_prompt', '')}{text}{kwargs.get('post_prompt', '')}"


def doc_to_target(doc: dict) -> str:
    return doc["answer"]


# ---- scoring ----
def _item(doc: dict) -> Item:
    return Item(id=doc["id"], video=doc.get("video"), question=doc["question"], options=list(doc["options"] or []),
                answer=doc.get("answer") or "", category=doc.get("category") or "", source=doc.get("source") or "")


def _score(doc: dict, results: list) -> dict[str, Any]:
    """One document scored as `salmonn-o1 eval` scores a prediction: the answer turn read by
    `read_answer`, falling back to the reasoning's conclusion (both are in the returned text)."""
    item = _item(doc)
    if not item.labelled:
        return {"id": item.id, "group": item.category, "gold": "", "predicted": None, "correct": False,
                "status": "unlabelled"}
    reasoning, answer = split_reasoning(results[0] if results else "")
    score = score_item(item, Prediction(id=item.id, answer=answer, reasoning=reasoning), "answer", item.category)
    return {"id": score.id, "group": score.group, "gold": score.gold, "predicted": score.predicted,
            "correct": score.correct, "status": score.status}


def process_results(doc: dict, results: list) -> dict[str, Any]:
    """The per-sample record under the metric's name (logged with the sample, aggregated below)."""
    return {"accuracy": _score(doc, results)}


def rivabench_process_results(doc: dict, results: list) -> dict[str, Any]:
    """RivaBench's two metrics: accuracy, and F1 over its YES/NO (synthdec) items."""
    score = _score(doc, results)
    return {"accuracy": score, "yes_no_f1": score}


def _scores(records: list[dict]) -> list[ItemScore]:
    return [ItemScore(r["id"], r["group"], r["gold"], r["predicted"], r["correct"], r["status"])
            for r in records if r["status"] != "unlabelled"]


def aggregate_accuracy(records: list[dict]) -> float:
    """Accuracy as a fraction, as `salmonn-o1 eval --out report.json` writes `overall.accuracy`;
    unreadable answers count as wrong."""
    return accuracy(_scores(records)).value


def aggregate_yes_no_f1(records: list[dict]) -> float:
    """F1 of YES (manipulated / AI-generated) over the YES/NO items, as `salmonn-o1 eval`'s detection
    table; NaN when there are none."""
    yes_no = [s for s in _scores(records) if s.gold in ("YES", "NO")]
    if not yes_no:
        return float("nan")
    return detection_metrics([s.gold for s in yes_no], [s.predicted for s in yes_no]).f1
