"""Scoring: predictions joined to items by id, then accuracy with Wilson
intervals, per-group breakdowns, and detection precision/recall/F1.

All pure functions over plain lists, so they are tested with hand-computed
numbers and reused by any report.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from salmonn_o1.data.schema import Item, Prediction
from salmonn_o1.eval.extract import extract_answer, open_answer_matches, read_answer

Mode = Literal["answer", "reasoning"]
Status = Literal["ok", "unparsed", "missing", "error"]
Z95 = 1.959963984540054


@dataclass
class ItemScore:
    """One item's outcome: status "ok" (parsed; right or wrong), "unparsed",
    "missing" (no prediction) or "error" (the prediction records a failure).
    Anything but "ok" counts as wrong."""

    id: str
    group: str
    gold: str
    predicted: str | None
    correct: bool
    status: Status
    text: str | None = None


@dataclass
class Accuracy:
    correct: int
    total: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.correct / self.total if self.total else float("nan")


@dataclass
class Detection:
    """Binary detection with YES (manipulated / AI-generated) as the positive class."""

    tp: int
    fp: int
    fn: int
    tn: int
    precision: float
    recall: float
    f1: float


@dataclass
class Scores:
    items: list[ItemScore]
    unknown_ids: list[str] = field(default_factory=list)
    unlabelled_ids: list[str] = field(default_factory=list)  # items without a gold answer: not scored

    @property
    def by_id(self) -> dict[str, ItemScore]:
        return {s.id: s for s in self.items}


def wilson_interval(correct: int, total: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (sensible at 0 % and 100 %)."""
    if total == 0:
        return (0.0, 1.0)
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    # The interval always contains p; clamping to it removes float noise at 0 % and 100 %
    # (0/3 gave a lower bound of 5.6e-17 > 0, which made the chart's error bars negative).
    return (max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)))


def accuracy(scores: list[ItemScore]) -> Accuracy:
    correct = sum(s.correct for s in scores)
    low, high = wilson_interval(correct, len(scores))
    return Accuracy(correct, len(scores), low, high)


def accuracy_by(scores: list[ItemScore]) -> dict[str, Accuracy]:
    """Accuracy per group, groups sorted by name."""
    groups: dict[str, list[ItemScore]] = {}
    for score in scores:
        groups.setdefault(score.group, []).append(score)
    return {name: accuracy(groups[name]) for name in sorted(groups)}


def detection_metrics(golds: list[str], predicted: list[str | None], positive: str = "YES") -> Detection:
    """Precision, recall and F1 of the positive class; an unreadable prediction
    counts as a negative prediction (it did not say YES)."""
    tp = sum(g == positive and p == positive for g, p in zip(golds, predicted))
    fp = sum(g != positive and p == positive for g, p in zip(golds, predicted))
    fn = sum(g == positive and p != positive for g, p in zip(golds, predicted))
    tn = len(golds) - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Detection(tp, fp, fn, tn, precision, recall, f1)


def group_key(by: str) -> Callable[[Item], str]:
    """How items are grouped: an Item field ("category", "source") or an extras key."""

    def key(item: Item) -> str:
        value = getattr(item, by, None) if by in ("category", "source", "kind") else item.extras.get(by)
        return str(value) if value not in (None, "") else "(none)"

    return key


def score_item(item: Item, prediction: Prediction | None, mode: Mode = "answer", group: str = "") -> ItemScore:
    """Score one item against its prediction; `mode` picks the second-turn
    "answer" (read by `read_answer`: falling back to the reasoning's conclusion when the
    answer turn is unreadable, as `infer` and `ask` do) or the conclusion of the "reasoning" text."""
    if prediction is None:
        return ItemScore(item.id, group, item.answer, None, False, "missing")
    if prediction.error:
        return ItemScore(item.id, group, item.answer, None, False, "error", prediction.error)
    text = prediction.answer if mode == "answer" else prediction.reasoning
    kind = item.kind
    if mode == "answer":  # the shared rule: the answer turn, else the reasoning's conclusion
        predicted = read_answer(prediction.answer, prediction.reasoning, item.options, kind)
    else:
        predicted = extract_answer(text, item.options, kind)
    if predicted is None:
        return ItemScore(item.id, group, item.answer, None, False, "unparsed", text)
    if kind == "open":
        correct = open_answer_matches(predicted, item.answer)
    else:
        correct = predicted == item.answer.upper()
    return ItemScore(item.id, group, item.answer, predicted, correct, "ok", text)


def score_predictions(
    items: list[Item], predictions: dict[str, Prediction], mode: Mode = "answer", by: str = "category"
) -> Scores:
    """Every labelled item scored (missing ones as wrong); prediction ids with no item are listed,
    and so are the items without a gold answer, which have nothing to be scored against."""
    if mode not in ("answer", "reasoning"):
        raise ValueError(f"mode must be 'answer' or 'reasoning', got {mode!r}")
    key = group_key(by)
    known = {item.id for item in items}
    scores = [score_item(item, predictions.get(item.id), mode, key(item)) for item in items if item.labelled]
    unknown = sorted(pid for pid in predictions if pid not in known)
    return Scores(scores, unknown, [item.id for item in items if not item.labelled])
