"""Evaluation: answer extraction, metrics and paired tests (pure functions),
plus a thin report layer (markdown, JSON, bar chart). Works on any model's
predictions JSONL (schema in salmonn_o1.data.schema)."""

from salmonn_o1.eval.extract import extract_answer
from salmonn_o1.eval.metrics import (
    accuracy,
    accuracy_by,
    detection_metrics,
    score_predictions,
    wilson_interval,
)
from salmonn_o1.eval.paired import compare, mcnemar_exact, paired_bootstrap
from salmonn_o1.eval.report import EvalReport, evaluate, plot_accuracy, to_json, to_markdown

__all__ = [
    "EvalReport",
    "accuracy",
    "accuracy_by",
    "compare",
    "detection_metrics",
    "evaluate",
    "extract_answer",
    "mcnemar_exact",
    "paired_bootstrap",
    "plot_accuracy",
    "score_predictions",
    "to_json",
    "to_markdown",
    "wilson_interval",
]
