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
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from salmonn_o1.errors import DataError
from salmonn_o1.launch import Processes, current_processes
from salmonn_o1.pdpo.costs import Cost
from salmonn_o1.pdpo.sharding import shard_files
from salmonn_o1.records import RecordWriter, replace_file
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


# ---- shards of a launch (pdpo.sharding): what is done, the merge, the end of a stage ----

def held_ids(path: Path, key: str = "id") -> set[Any]:
    """The question ids (`record[key]`) in a stage file and in its shards: the questions that are done."""
    ids: set[Any] = set()
    for source in (path, *shard_files(path)):
        ids.update(record[key] for record in keyed_records(source, key))
    return ids


def merge_shards(path: Path, order: Iterable[Any], key: str = "id") -> int:
    """Append the shards' records of questions `path` does not hold yet to `path`, question by question
    in `order` (the stage's input: then the file equals one process's), then delete the shards.

    Records of questions missing from `order` (a shard of a run over other questions) are kept, after
    the others, in shard order. A question in several shards (a merge cut short, then a run with
    another process count) is written once. Returns the number of records appended.
    """
    shards = shard_files(path)
    if not shards:
        return 0
    held = {record[key] for record in keyed_records(path, key)}
    by_id: dict[Any, list[dict[str, Any]]] = {}
    for shard in shards:
        taken: set[Any] = set()  # ids this shard adds: several records of one question come from one shard
        for record in keyed_records(shard, key):
            question = record[key]
            if question in held and question not in taken:
                continue
            by_id.setdefault(question, []).append(record)
            taken.add(question)
        held.update(taken)
    wanted = list(dict.fromkeys(order))
    known = set(wanted)
    rest = [q for q in by_id if q not in known]
    records = [r for q in (*wanted, *rest) for r in by_id.get(q, [])]
    RecordWriter(path).write(records)
    for shard in shards:
        shard.unlink()
    return len(records)


def finish_stage(out_dir: Path, stage: str, processed: int, started: float,
                 summarize: Callable[[int, float], dict[str, Any]], order: Iterable[Any] | None = None,
                 files: dict[str, str] | None = None, processes: Processes | None = None) -> dict[str, Any]:
    """Every runner's last step: wait for all processes, merge the shards (main process), summarise
    the merged file; returns the summary on every process (the main one writes it).

    processed: the questions this process handled; the summary gets the sum over processes, and
    the longest process's seconds since `started` (`time.perf_counter()`).
    summarize(processed, seconds): the stage summary over the merged files.
    order: the question ids of the stage's input in order (default: those of the previous stage's
    file); files: `{file name stem: id key}` of the stage's files (default `{stage: "id"}`).
    """
    processes = processes or current_processes()
    seconds = time.perf_counter() - started
    counts = processes.gather((processed, seconds))  # also the barrier: every shard is complete
    processed, seconds = sum(c[0] for c in counts), max(c[1] for c in counts)
    summary: dict[str, Any] | None = None
    problem: str | None = None
    if processes.is_main:
        try:
            targets = {out_dir / f"{name}.jsonl": key for name, key in (files or {stage: "id"}).items()}
            if any(shard_files(target) for target in targets):  # else no need to read the input's order
                if order is None:
                    index = STAGES.index(stage)
                    previous = stage_file(out_dir, STAGES[index - 1]) if index else None
                    order = [r["id"] for r in keyed_records(previous)] if previous is not None else []
                order = list(order)
                for target, key in targets.items():
                    merge_shards(target, order, key)
            summary = write_summary(out_dir, stage, summarize(processed, seconds))
        except Exception as error:  # told to the others, which would otherwise wait for ever
            problem = f"{type(error).__name__}: {error}"
            if not processes.launched:
                raise
            processes.broadcast((None, problem))
            raise
    summary, problem = processes.broadcast((summary, problem))
    if problem is not None:
        raise DataError(f"pdpo {stage}: the main process failed merging the shards: {problem}")
    return summary
