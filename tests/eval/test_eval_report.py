"""The report layer: evaluate() over the constructed benchmark (tests/eval/conftest.py),
rendered as markdown, JSON and a PNG bar chart."""

from __future__ import annotations

import json

import pytest

from salmonn_o1.eval.metrics import wilson_interval
from salmonn_o1.eval.report import evaluate, plot_accuracy, to_json, to_markdown


def test_evaluate_one_system(items, sft):
    report = evaluate(items, sft, label="sft")
    assert (report.overall.correct, report.overall.total) == (6, 12)
    assert {g: (a.correct, a.total) for g, a in report.groups.items()} == {
        "cross_modal_alignment": (2, 4),
        "cross_modal_counting": (1, 4),
        "glitch_detection": (3, 4),
    }
    d = report.detection
    assert (d.tp, d.fp, d.fn, d.tn) == (1, 0, 1, 2)
    assert (d.precision, d.recall, d.f1) == pytest.approx((1.0, 0.5, 2 / 3))
    assert [s.id for s in report.with_status("unparsed")] == ["count-1"]
    assert [s.id for s in report.with_status("missing")] == ["count-3"]
    assert report.unknown_ids == ["not-an-item"]
    assert report.comparison is None


def test_markdown_report(items, sft):
    markdown = to_markdown(evaluate(items, sft, label="sft"))
    low, high = wilson_interval(6, 12)
    assert "| category | n | sft acc % [95% CI] |" in markdown
    assert f"| **overall** | 12 | 50.0 [{100 * low:.1f}, {100 * high:.1f}] |" in markdown
    assert "| cross_modal_counting | 4 | 25.0 [" in markdown
    assert "| 100.0 | 50.0 | 66.7 | 1 | 0 | 1 | 2 |" in markdown  # precision recall F1 TP FP FN TN
    assert "## Unparseable answers (counted wrong): 1" in markdown and "`count-1`: hmm, hard to say" in markdown
    assert "## Missing predictions (counted wrong): 1" in markdown and "- `count-3`" in markdown
    assert "## Prediction ids not in the items file: 1" in markdown and "`not-an-item`" in markdown
    assert "McNemar" not in markdown


def test_reasoning_mode(items, sft):
    report = evaluate(items, sft, mode="reasoning", label="sft")
    # reasoning texts: align-0 A right, align-1 B right, align-2 A wrong, align-3 C wrong; the rest have none
    assert report.groups["cross_modal_alignment"].correct == 2
    assert report.groups["glitch_detection"].correct == 0
    assert "(mode: reasoning)" in to_markdown(report)


def test_paired_comparison(items, sft, pdpo):
    report = evaluate(items, sft, label="sft", other=pdpo, other_label="pdpo", bootstrap_samples=2000)
    c = report.comparison
    assert (c.n, c.both, c.only_a, c.only_b, c.neither) == (12, 6, 0, 4, 2)
    assert c.p_value == pytest.approx(2 / 16)
    assert c.diff == pytest.approx(4 / 12) and c.diff_low > 0
    assert report.other_overall.correct == 10
    assert report.group_comparisons["cross_modal_alignment"].only_b == 2
    markdown = to_markdown(report)
    assert "| sft acc % [95% CI] | pdpo acc % [95% CI] | diff (pp) | McNemar p |" in markdown
    assert "| **overall** | 12 |" in markdown and "| +33.3 | 0.125 |" in markdown
    assert "## Paired comparison: pdpo vs sft" in markdown and "exact McNemar p = 0.125" in markdown


def test_json_report_is_plain_data(items, sft, pdpo):
    data = to_json(evaluate(items, sft, label="sft", other=pdpo, other_label="pdpo", bootstrap_samples=500))
    data = json.loads(json.dumps(data))  # serialisable
    assert data["overall"] == {"accuracy": 0.5, "correct": 6, "total": 12, "ci95": list(wilson_interval(6, 12))}
    assert data["groups"]["cross_modal_counting"]["correct"] == 1
    assert data["unparsed"] == ["count-1"] and data["missing"] == ["count-3"] and data["errors"] == []
    assert data["unknown_ids"] == ["not-an-item"]
    assert data["detection"]["f1"] == pytest.approx(2 / 3)
    assert data["other"]["overall"]["correct"] == 10
    assert data["comparison"]["p_value"] == pytest.approx(0.125)
    assert len(data["items"]) == 12 and data["items"][0] == {
        "id": "align-0", "group": "cross_modal_alignment", "gold": "A", "predicted": "A", "correct": True, "status": "ok"
    }


@pytest.mark.parametrize("compare_too", [False, True])
def test_plot_writes_a_png(tmp_path, items, sft, pdpo, compare_too):
    # groups at exactly 0 % and 100 % used to give float-noise negative error bars
    perfect = {p.id: p for p in pdpo.values() if p.id.startswith("align")}
    report = evaluate(items, perfect, label="x", other=sft if compare_too else None, bootstrap_samples=200)
    assert report.groups["cross_modal_counting"].value == 0.0
    path = plot_accuracy(report, tmp_path / "charts" / "acc.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
