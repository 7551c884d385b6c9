"""One pDPO stage folder: the stage files, the settings each stage records, its summary.

    rollout.jsonl   one line per question: its P paths, answers, correctness, kept or not
    select.jsonl    one line per kept question: per-path step scores and the selected steps
    label.jsonl     one line per question: at each selected step, the alternative and both values
    pairs.jsonl     one line per pair (step and full-path pairs), with reference log-probs
                    (+ pairs_questions.jsonl: the questions handled, for resuming and costs)

Each stage reads the previous stage's file, skips the questions its own file
already holds, appends one question at a time (`salmonn_o1.records`: an
interrupted run resumes where it stopped), and rewrites `<stage>_summary.json`
over everything it holds. Under `accelerate launch` each process appends to its
own shard (`<stage>.shard-RR-of-WW.jsonl`) and the shards are merged into the
stage file at the end of the stage (`pdpo.sharding`). `<stage>_settings.json` records the settings that
change the stage's results; resuming with different ones is an error rather
than a silently mixed file.
"""

from __future__ import annotations

import json
import statistics
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from salmonn_o1.errors import DataError
from salmonn_o1.pdpo.costs import Cost
from salmonn_o1.train.recipe import PDPOSettings

STAGES = ("rollout", "select", "label", "pairs")

# The settings that change each stage's output, recorded in <stage>_settings.json.
STAGE_KEYS = {
    "rollout": ("model", "paths", "temperature", "top_p", "max_new_tokens", "answer_max_new_tokens", "seed"),
    "select": ("model", "selection", "top_t", "perturb", "noise_step", "max_paths", "seed"),
    "label": ("model", "rollouts", "temperature", "top_p", "max_new_tokens", "answer_max_new_tokens",
              "max_step_tokens", "alternative_tries", "seed"),
    "pairs": ("model", "label_mode", "mu", "reference_logps"),
}


def stage_file(out_dir: str | Path, stage: str) -> Path:
    return Path(out_dir) / f"{stage}.jsonl"


def check_settings(out_dir: Path, stage: str, settings: PDPOSettings) -> None:
    """Record the stage's settings; an error if its file was made with others."""
    from salmonn_o1.pdpo.sharding import current_processes, shard_files
    from salmonn_o1.records import replace_file

    wanted = {k: getattr(settings, k) for k in STAGE_KEYS[stage]}
    path = out_dir / f"{stage}_settings.json"
    made = stage_file(out_dir, stage)
    if path.exists() and (made.exists() or shard_files(made)):
        stored = json.loads(path.read_text())
        changed = sorted(k for k in wanted if stored.get(k) != wanted[k])
        if changed:
            details = ", ".join(f"{k}={stored.get(k)!r} (now {wanted[k]!r})" for k in changed)
            raise DataError(f"{stage_file(out_dir, stage)} was made with {details}; use another --out, "
                            f"or delete {stage}.jsonl to redo the stage")
    out_dir.mkdir(parents=True, exist_ok=True)
    if current_processes().is_main:  # every process checks; one writes (atomically: the others may read it)
        replace_file(path, (json.dumps(wanted, indent=2) + "\n").encode())


def require_previous(out_dir: Path, stage: str) -> None:
    """A stage reads the previous stage's file: its absence (an empty or mistyped --out) is an error
    saying which stage to run, not an empty result with exit 0."""
    index = STAGES.index(stage)
    if index == 0:
        return
    previous = STAGES[index - 1]
    if not stage_file(out_dir, previous).is_file():
        raise DataError(f"{out_dir}: no {previous}.jsonl; run `salmonn-o1 pdpo {previous} --out {out_dir}` first")


def open_stage(out_dir: str | Path, stage: str, settings: PDPOSettings) -> tuple[Path, Path]:
    """Every runner's first step: the folder, the previous stage's file required, this stage's settings
    recorded (or checked against the ones its file or shards were made with); returns (folder, this
    stage's file). Under a launch a runner appends to `sharding.my_file(file)` instead, and skips the
    questions `sharding.held_ids(file)` names."""
    out_dir = Path(out_dir)
    require_previous(out_dir, stage)
    check_settings(out_dir, stage, settings)
    return out_dir, stage_file(out_dir, stage)


def keyed_records(path: Path, key: str = "id") -> list[dict[str, Any]]:
    """A stage file's records, each checked to be an object with `key` (the id resuming goes by):
    an edited or foreign file is one error naming it, not a KeyError."""
    from salmonn_o1.records import read_records

    records = read_records(path)
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict) or key not in record:
            raise DataError(f"{path}: record {number} has no {key!r}; the file was edited or is not a pDPO "
                            f"stage file (move it away to redo the stage)")
    return records


def need_model(pipeline, stage: str, why: str) -> None:
    if pipeline is None:
        raise DataError(f"pdpo {stage}: {why} needs the model; pass a pipeline (--model)")


def progress_bar(items: list, stage: str, progress: bool) -> Iterator:
    from tqdm import tqdm

    return iter(tqdm(items, desc=f"pdpo {stage}", unit="question", disable=not progress))


def question_seed(seed: int, *parts: object) -> int:
    """A seed for one question (and path, step) that does not depend on the order of the run."""
    return zlib.crc32(":".join(str(p) for p in (seed, *parts)).encode())


def write_summary(out_dir: Path, stage: str, summary: dict[str, Any]) -> dict[str, Any]:
    (out_dir / f"{stage}_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def total_cost(records: Iterable[dict[str, Any]]) -> dict[str, int]:
    total = Cost()
    for record in records:
        total.add(record.get("cost") or {})
    return total.to_dict()


def mean(values: list) -> float | None:
    return float(statistics.fmean(values)) if values else None
