"""The pDPO stages as resumable JSONL-to-JSONL steps in one output folder.

    rollout.jsonl   one line per question: its P paths, answers, correctness, kept or not
    select.jsonl    one line per kept question: per-path step scores and the selected steps
    label.jsonl     one line per question: at each selected step, the alternative and both values
    pairs.jsonl     one line per pair (step and full-path pairs), with reference log-probs
                    (+ pairs_questions.jsonl: the questions handled, for resuming and costs)

Each stage reads the previous stage's file, skips the questions its own file
already holds, appends one question at a time (an interrupted run resumes where
it stopped), and rewrites `<stage>_summary.json` over everything it holds:
counts, value gaps, label balance, tokens generated and forward passes.
`<stage>_settings.json` records the settings that change the stage's results;
resuming with different ones is an error rather than a silently mixed file.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salmonn_o1.errors import DataError, SalmonnError
from salmonn_o1.pdpo.costs import Cost, count_forward
from salmonn_o1.pdpo.judge import Judge, exact_match_judge
from salmonn_o1.pdpo.media import load_features, path_ref, synthetic_ref
from salmonn_o1.pdpo.pairs import DEFAULT_MU, LABEL_MODES, Continuation, PairRecord, oriented_pair
from salmonn_o1.pdpo.perturb import DEFAULT_NOISE_STEP, PERTURBATIONS, Perturbation
from salmonn_o1.pdpo.rollout import PDPOQuestion, QuestionRollout, full_path_pairs, rollout_question
from salmonn_o1.pdpo.scoring import SELECTIONS, StepSelector, encode_media_once, step_kl_scores
from salmonn_o1.pdpo.steps import path_ids
from salmonn_o1.pdpo.values import ModelPolicy, step_values
from salmonn_o1.prompts import IM_END

STAGES = ("rollout", "select", "label", "pairs")


@dataclass
class PDPOSettings:
    """Everything that changes a stage's output. Defaults: the paper's settings where published
    (P = 10 paths, top T = 3, N = 6 rollouts, frames diffusion noise at t = 100); see docs/pdpo.md."""

    paths: int = 10
    rollouts: int = 6
    top_t: int = 3
    selection: str = "contrastive"
    perturb: str = "frames-noise"
    noise_step: int = DEFAULT_NOISE_STEP
    max_paths: int | None = None  # paths per question scored and branched (wrong ones first); None = all
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 512
    answer_max_new_tokens: int = 64
    max_step_tokens: int = 128
    alternative_tries: int = 3
    label_mode: str = "hard"
    mu: float = DEFAULT_MU
    reference_logps: bool = True
    seed: int = 0
    model: str | None = None  # recorded, so a resumed stage cannot switch models silently

    def __post_init__(self):
        checks = [(self.selection in SELECTIONS, f"selection must be one of {', '.join(SELECTIONS)}"),
                  (self.perturb in PERTURBATIONS, f"perturb must be one of {', '.join(PERTURBATIONS)}"),
                  (self.label_mode in LABEL_MODES, f"label_mode must be one of {', '.join(LABEL_MODES)}"),
                  (self.paths >= 1 and self.rollouts >= 1 and self.top_t >= 1, "paths, rollouts, top_t must be >= 1"),
                  (self.mu > 0 and self.temperature > 0, "mu and temperature must be > 0")]
        for ok, message in checks:
            if not ok:
                raise DataError(f"pdpo settings: {message}")

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PDPOSettings:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise DataError(f"pdpo settings: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        return cls(**raw)

    def generation(self) -> dict[str, Any]:
        return {"max_new_tokens": self.max_new_tokens, "answer_max_new_tokens": self.answer_max_new_tokens,
                "temperature": self.temperature, "top_p": self.top_p}


STAGE_KEYS = {
    "rollout": ("model", "paths", "temperature", "top_p", "max_new_tokens", "answer_max_new_tokens", "seed"),
    "select": ("model", "selection", "top_t", "perturb", "noise_step", "max_paths", "seed"),
    "label": ("model", "rollouts", "temperature", "top_p", "max_new_tokens", "answer_max_new_tokens",
              "max_step_tokens", "alternative_tries", "seed"),
    "pairs": ("model", "label_mode", "mu", "reference_logps"),
}


# ---- questions ----
def synthetic_questions(split: str, n: int, processor, start: int = 0) -> list[PDPOQuestion]:
    """AVR-Synth clips start..start+n-1 of `split`, rendered in memory when needed."""
    from salmonn_o1.data.synthetic import generate_item

    questions = []
    for index in range(start, start + n):
        item = generate_item(split, index).item
        questions.append(PDPOQuestion(item.id, item.question, list(item.options), item.answer,
                                      synthetic_ref(split, index, processor)))
    return questions


def file_questions(path: str | Path) -> list[PDPOQuestion]:
    """Items of a JSONL file (toolkit schema); their videos are decoded when needed."""
    from salmonn_o1.data.schema import read_items

    return [PDPOQuestion(item.id, item.question, list(item.options), item.answer, path_ref(item.video))
            for item in read_items(path)]


# ---- files ----
def stage_file(out_dir: str | Path, stage: str) -> Path:
    return Path(out_dir) / f"{stage}.jsonl"


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All records of a stage file; a last line cut off by an interrupted run is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    lines = path.read_text(encoding="utf-8").split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):  # no newline after it: the write was interrupted
                break
            raise DataError(f"{path} line {number}: not valid JSON") from None
    return records


class _Appender:
    """Appends records one question at a time, first cutting off an interrupted last line."""

    def __init__(self, path: Path):
        self.path = path
        if path.exists():
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):
                path.write_bytes(data[: data.rfind(b"\n") + 1])

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()


def _check_settings(out_dir: Path, stage: str, settings: PDPOSettings) -> None:
    wanted = {k: getattr(settings, k) for k in STAGE_KEYS[stage]}
    path = out_dir / f"{stage}_settings.json"
    if path.exists() and stage_file(out_dir, stage).exists():
        stored = json.loads(path.read_text())
        changed = sorted(k for k in wanted if stored.get(k) != wanted[k])
        if changed:
            details = ", ".join(f"{k}={stored.get(k)!r} (now {wanted[k]!r})" for k in changed)
            raise DataError(f"{stage_file(out_dir, stage)} was made with {details}; use another --out, "
                            f"or delete {stage}.jsonl to redo the stage")
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(wanted, indent=2) + "\n")


def _need_model(pipeline, stage: str, why: str) -> None:
    if pipeline is None:
        raise DataError(f"pdpo {stage}: {why} needs the model; pass a pipeline (--model)")


def _progress(items: list, stage: str, progress: bool) -> Iterator:
    from tqdm import tqdm

    return iter(tqdm(items, desc=f"pdpo {stage}", unit="question", disable=not progress))


def question_seed(seed: int, *parts: object) -> int:
    """A seed for one question (and path, step) that does not depend on the order of the run."""
    return zlib.crc32(":".join(str(p) for p in (seed, *parts)).encode())


def _write_summary(out_dir: Path, stage: str, summary: dict[str, Any]) -> dict[str, Any]:
    (out_dir / f"{stage}_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _total_cost(records: Iterable[dict[str, Any]]) -> dict[str, int]:
    total = Cost()
    for record in records:
        total.add(record.get("cost") or {})
    return total.to_dict()


# ---- stage 1: rollout ----
def run_rollout(out_dir: str | Path, pipeline, questions: list[PDPOQuestion], settings: PDPOSettings,
                judge: Judge = exact_match_judge, progress: bool = True) -> dict[str, Any]:
    _need_model(pipeline, "rollout", "sampling paths")
    out_dir = Path(out_dir)
    _check_settings(out_dir, "rollout", settings)
    path = stage_file(out_dir, "rollout")
    done = {r["id"] for r in read_jsonl(path)}
    writer = _Appender(path)
    todo = [q for q in questions if q.id not in done]
    started = time.perf_counter()
    for question in _progress(todo, "rollout", progress):
        try:
            features = load_features(question.media, pipeline.processor)
        except (SalmonnError, ValueError, OSError) as error:
            writer.write([{"id": question.id, "error": str(error), "kept": False, "paths": [],
                           "cost": Cost().to_dict()}])
            continue
        result = rollout_question(pipeline, question, features, settings.paths, judge,
                                  seed=question_seed(settings.seed, question.id), **settings.generation())
        writer.write([result.to_dict()])
    return _write_summary(out_dir, "rollout", rollout_summary(read_jsonl(path), len(todo),
                                                              time.perf_counter() - started))


def rollout_summary(records: list[dict[str, Any]], processed: int = 0, seconds: float = 0.0) -> dict[str, Any]:
    ok = [r for r in records if "error" not in r]
    paths = [p for r in ok for p in r["paths"]]
    kept = [r for r in ok if r["kept"]]
    correct_counts = [r["num_correct"] for r in kept]
    return {
        "questions": len(records), "errors": len(records) - len(ok), "kept": len(kept),
        "all_correct": sum(1 for r in ok if r["paths"] and r["num_correct"] == len(r["paths"])),
        "all_wrong": sum(1 for r in ok if r["paths"] and r["num_correct"] == 0),
        "paths": len(paths), "path_accuracy": _mean([p["correct"] for p in paths]),
        "unreadable_answers": sum(p["answer"] is None for p in paths),
        "steps_per_path": _mean([len(p["segments"]) for p in paths]),
        "paths_cut_at_max_new_tokens": sum(not p["ends_turn"] for p in paths),
        "full_path_pairs_possible": sum(min(c, r["num_paths"] - c) for r, c in zip(kept, correct_counts)),
        "cost": _total_cost(records), "processed_this_run": processed, "seconds_this_run": round(seconds, 3),
    }


# ---- stage 2: select ----
def run_select(out_dir: str | Path, pipeline, settings: PDPOSettings, progress: bool = True) -> dict[str, Any]:
    out_dir = Path(out_dir)
    _check_settings(out_dir, "select", settings)
    path = stage_file(out_dir, "select")
    done = {r["id"] for r in read_jsonl(path)}
    todo = [r for r in read_jsonl(stage_file(out_dir, "rollout")) if r.get("kept") and r["id"] not in done]
    selector = StepSelector(settings.selection, settings.top_t, settings.seed)
    if selector.needs_scores:
        _need_model(pipeline, "select", "contrastive selection")
    perturbation = Perturbation(settings.perturb, settings.noise_step, settings.seed)
    writer = _Appender(path)
    started = time.perf_counter()
    for record in _progress(todo, "select", progress):
        writer.write([select_question(pipeline, QuestionRollout.from_dict(record), selector, perturbation,
                                      settings)])
    return _write_summary(out_dir, "select", select_summary(read_jsonl(path), len(todo),
                                                            time.perf_counter() - started))


def paths_to_branch(rollout: QuestionRollout, max_paths: int | None) -> list:
    """Distinct paths with steps, wrong ones first (that is where the errors are), at most max_paths."""
    seen, chosen = set(), []
    for path in sorted(rollout.paths, key=lambda p: (p.correct, p.index)):
        if path.segments and path.reasoning not in seen:
            seen.add(path.reasoning)
            chosen.append(path)
    return chosen[:max_paths]


def select_question(pipeline, rollout: QuestionRollout, selector: StepSelector, perturbation: Perturbation,
                    settings: PDPOSettings) -> dict[str, Any]:
    question = rollout.question
    paths = paths_to_branch(rollout, settings.max_paths)
    cost = Cost()
    scores: list[list[float] | None] = [None] * len(paths)
    note = ""
    if selector.needs_scores and paths:
        processor, model = pipeline.processor, pipeline.model
        features = load_features(question.media, processor)
        tokenizer = processor.tokenizer
        im_end = tokenizer.convert_tokens_to_ids(IM_END)
        try:
            perturbed = perturbation(features, seed=question_seed(settings.seed, question.id))
        except ValueError as error:  # e.g. frames noise on an audio-only input
            perturbed, note = None, str(error)
        if perturbed is not None:
            with count_forward(model, cost):
                real_media = encode_media_once(model, features)
                perturbed_media = encode_media_once(model, perturbed)
                prompt = processor.encode(question.prompt, features).input_ids
                spans = [path_ids(tokenizer, p.segments, p.ends_turn, im_end) for p in paths]
                scores = step_kl_scores(model, prompt, real_media, perturbed_media, spans, tokenizer.pad_token_id)
    entries = []
    for path, path_scores in zip(paths, scores):
        if selector.needs_scores and path_scores is None:
            selected: list[int] = []
        else:
            selected = selector.select(len(path.segments), path_scores, key=f"{question.id}/{path.index}")
        entries.append({"index": path.index, "correct": path.correct, "answer": path.answer,
                        "ends_turn": path.ends_turn, "segments": path.segments, "steps": path.steps,
                        "scores": path_scores, "selected": selected})
    record = rollout.to_dict()
    record.pop("paths")
    record.pop("cost")
    record.update({"selection": selector.strategy, "paths": entries, "cost": cost.to_dict()})
    if note:
        record["note"] = note
    return record


def select_summary(records: list[dict[str, Any]], processed: int = 0, seconds: float = 0.0) -> dict[str, Any]:
    paths = [p for r in records for p in r["paths"]]
    selected_scores, other_scores = [], []
    for p in paths:
        if p["scores"] is None:
            continue
        for k, s in enumerate(p["scores"]):
            (selected_scores if k in p["selected"] else other_scores).append(s)
    return {
        "questions": len(records), "paths": len(paths), "steps": sum(len(p["segments"]) for p in paths),
        "selected_steps": sum(len(p["selected"]) for p in paths),
        "selected_step_positions": dict(sorted(Counter(k for p in paths for k in p["selected"]).items())),
        "mean_score_selected": _mean(selected_scores), "mean_score_other": _mean(other_scores),
        "notes": sum(1 for r in records if r.get("note")),
        "cost": _total_cost(records), "processed_this_run": processed, "seconds_this_run": round(seconds, 3),
    }


# ---- stage 3: label ----
def run_label(out_dir: str | Path, pipeline, settings: PDPOSettings, judge: Judge = exact_match_judge,
              progress: bool = True) -> dict[str, Any]:
    _need_model(pipeline, "label", "sampling alternatives and rollouts")
    out_dir = Path(out_dir)
    _check_settings(out_dir, "label", settings)
    path = stage_file(out_dir, "label")
    done = {r["id"] for r in read_jsonl(path)}
    todo = [r for r in read_jsonl(stage_file(out_dir, "select")) if r["id"] not in done]
    policy = ModelPolicy(pipeline.model, pipeline.processor, settings.temperature, settings.top_p,
                         settings.max_new_tokens, settings.answer_max_new_tokens, settings.max_step_tokens)
    writer = _Appender(path)
    started = time.perf_counter()
    for record in _progress(todo, "label", progress):
        writer.write([label_question(policy, record, settings, judge)])
    return _write_summary(out_dir, "label", label_summary(read_jsonl(path), len(todo),
                                                          time.perf_counter() - started))


def label_question(policy: ModelPolicy, record: dict[str, Any], settings: PDPOSettings,
                   judge: Judge = exact_match_judge) -> dict[str, Any]:
    question = PDPOQuestion(record["id"], record["question"], record["options"], record["reference"],
                            record["media"])
    cost = Cost()
    steps = []
    todo = [(p, k) for p in record["paths"] for k in p["selected"]]
    if todo:
        with count_forward(policy.model, cost):
            context = policy.prepare(question.prompt, load_features(question.media, policy.processor))
            for path, k in todo:
                last = k == len(path["segments"]) - 1
                original = Continuation(path["segments"][k], last and path["ends_turn"])
                values = step_values(policy, context, path["segments"][:k], original, question.target,
                                     settings.rollouts, question_seed(settings.seed, question.id, path["index"], k),
                                     judge, settings.alternative_tries)
                cost.generated_tokens += values.generated
                steps.append({"path": path["index"], "path_correct": path["correct"], "step_index": k,
                              "kl": path["scores"][k] if path["scores"] is not None else None,
                              "prefix": path["segments"][:k], **values.to_dict()})
    out = {key: record[key] for key in ("id", "question", "options", "reference", "prompt", "media")}
    out.update({"selection": record["selection"], "steps": steps, "cost": cost.to_dict()})
    return out


def label_summary(records: list[dict[str, Any]], processed: int = 0, seconds: float = 0.0) -> dict[str, Any]:
    steps = [s for r in records for s in r["steps"]]
    branched = [s for s in steps if s["alternative"] is not None]
    gaps = [s["original"]["value"] - s["alternative"]["value"] for s in branched]
    return {
        "questions": len(records), "steps": len(steps), "with_alternative": len(branched),
        "no_alternative": len(steps) - len(branched), "ties": sum(g == 0 for g in gaps),
        "original_better": sum(g > 0 for g in gaps), "alternative_better": sum(g < 0 for g in gaps),
        "mean_value_original": _mean([s["original"]["value"] for s in branched]),
        "mean_value_alternative": _mean([s["alternative"]["value"] for s in branched]),
        "mean_abs_value_gap": _mean([abs(g) for g in gaps]),
        "value_gap_histogram": {f"{g:+.3f}": n for g, n in sorted(Counter(round(g, 3) for g in gaps).items())},
        "cost": _total_cost(records), "processed_this_run": processed, "seconds_this_run": round(seconds, 3),
    }


# ---- stage 4: pairs ----
def run_pairs(out_dir: str | Path, pipeline, settings: PDPOSettings, progress: bool = True) -> dict[str, Any]:
    """Step pairs from label.jsonl and full-path pairs from rollout.jsonl, one question at a time.

    With settings.reference_logps, `pipeline.model` (the SFT model = the frozen
    reference) scores every pair once and the log-probs are stored in the records.
    """
    if settings.reference_logps:
        _need_model(pipeline, "pairs", "storing reference log-probs (reference_logps=False skips them)")
    out_dir = Path(out_dir)
    _check_settings(out_dir, "pairs", settings)
    path = stage_file(out_dir, "pairs")
    # One line per question handled (with or without pairs): what resuming skips, and the
    # reference passes' cost, which belongs to no single pair.
    ledger_path = out_dir / "pairs_questions.jsonl"
    done = {r["id"] for r in read_jsonl(ledger_path)} | {r["question_id"] for r in read_jsonl(path)}
    rollouts = {r["id"]: r for r in read_jsonl(stage_file(out_dir, "rollout"))}
    todo = [r for r in read_jsonl(stage_file(out_dir, "label")) if r["id"] not in done]
    objective = None
    if settings.reference_logps:
        from salmonn_o1.pdpo.objective import DPOObjective

        objective = DPOObjective(pipeline.processor)
    writer, ledger = _Appender(path), _Appender(ledger_path)
    started = time.perf_counter()
    for record in _progress(todo, "pairs", progress):
        records = [p.to_dict() for p in question_pairs(record, rollouts.get(record["id"]), settings)]
        cost = Cost()
        if objective is not None and records:
            from salmonn_o1.pdpo.loss import precompute_reference_logps

            with count_forward(pipeline.model, cost):
                records = precompute_reference_logps(pipeline.model, objective, records)
        writer.write(records)
        ledger.write([{"id": record["id"], "pairs": len(records), "cost": cost.to_dict()}])
    summary = pairs_summary(read_jsonl(path), read_jsonl(stage_file(out_dir, "label")), read_jsonl(ledger_path),
                            out_dir, len(todo), time.perf_counter() - started)
    return _write_summary(out_dir, "pairs", summary)


def question_pairs(label_record: dict[str, Any], rollout_record: dict[str, Any] | None,
                   settings: PDPOSettings) -> list[PairRecord]:
    mode, mu = settings.label_mode, settings.mu
    pairs: list[PairRecord] = []
    for step in label_record["steps"]:
        if step["alternative"] is None:
            continue
        original, alternative = Continuation(**step["original"]), Continuation(**step["alternative"])
        oriented = oriented_pair(original, alternative, mode, mu)
        if oriented is None:  # equal values: no preference
            continue
        chosen, rejected, label = oriented
        pairs.append(PairRecord(
            pair_id=f"{label_record['id']}/step/{step['path']}-{step['step_index']}", kind="step",
            question_id=label_record["id"], prompt=label_record["prompt"], reference=label_record["reference"],
            media=label_record["media"], prefix=step["prefix"], chosen=chosen, rejected=rejected, label=label,
            label_mode=mode, mu=mu if mode == "soft" else None, step_index=step["step_index"], kl=step["kl"],
            extras={"path": step["path"], "chosen_is_original": chosen is original,
                    "selection": label_record["selection"]},
        ))
    if rollout_record is not None and "error" not in rollout_record:
        pairs += full_path_pairs(QuestionRollout.from_dict(rollout_record), mode, mu)
    return pairs


def pairs_summary(pairs: list[dict[str, Any]], labels: list[dict[str, Any]], ledger: list[dict[str, Any]],
                  out_dir: Path, processed: int = 0, seconds: float = 0.0) -> dict[str, Any]:
    step_pairs = [p for p in pairs if p["kind"] == "step"]
    stage_costs = {}
    for stage in ("rollout", "select", "label"):
        summary_path = out_dir / f"{stage}_summary.json"
        if summary_path.exists():
            stage_costs[stage] = json.loads(summary_path.read_text())["cost"]
    stage_costs["pairs"] = _total_cost(ledger)
    total = Cost()
    for c in stage_costs.values():
        total.add(c)
    return {
        "pairs": len(pairs), "step_pairs": len(step_pairs), "path_pairs": len(pairs) - len(step_pairs),
        "questions_with_pairs": len({p["question_id"] for p in pairs}),
        "ties_dropped": sum(1 for r in labels for s in r["steps"] if s["alternative"] is not None
                            and s["original"]["value"] == s["alternative"]["value"]),
        "label_mean": _mean([p["label"] for p in pairs]),
        "step_label_balance": {  # which side of the branch won: a skew here is a bias of the data
            "original_chosen": sum(1 for p in step_pairs if p["extras"]["chosen_is_original"]),
            "alternative_chosen": sum(1 for p in step_pairs if not p["extras"]["chosen_is_original"]),
        },
        "mean_value_gap_step": _mean([p["value_gap"] for p in step_pairs]),
        "with_reference_logps": sum(p["ref_logps"] is not None for p in pairs),
        "cost_by_stage": stage_costs, "cost_total": total.to_dict(),
        "pairs_per_1k_generated_tokens": (1000 * len(pairs) / total.generated_tokens
                                          if total.generated_tokens else None),
        "step_pairs_per_1k_generated_tokens": (1000 * len(step_pairs) / total.generated_tokens
                                               if total.generated_tokens else None),
        "processed_this_run": processed, "seconds_this_run": round(seconds, 3),
    }


def _mean(values: list) -> float | None:
    return float(statistics.fmean(values)) if values else None
