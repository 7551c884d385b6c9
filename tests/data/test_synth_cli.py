"""`salmonn-o1 synth` end to end: mp4s + items.jsonl that the media pipeline decodes
into what the renderer draws, that re-running resumes, and that `salmonn-o1 eval` scores."""

from __future__ import annotations

import json

import numpy as np
import pytest

from salmonn_o1.cli import main
from salmonn_o1.data.schema import read_items
from salmonn_o1.data.synthetic import FAMILIES, generate_item, render_media
from salmonn_o1.media import load_media

N = 6  # one clip per family


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("avr") / "test"
    assert main(["synth", "--split", "test", "--n", str(N), "--out", str(out), "--quiet", "--size", "96"]) == 0
    return out


def test_synth_writes_items_and_mp4s(split_dir, capsys):
    items = read_items(split_dir / "items.jsonl")
    assert [it.id for it in items] == [f"avr-test-{i:06d}" for i in range(N)]
    assert {it.category for it in items} == set(FAMILIES)
    raw = [json.loads(line) for line in (split_dir / "items.jsonl").read_text().splitlines()]
    assert raw[0]["video"] == "videos/avr-test-000000.mp4"  # relative: the folder can be moved
    for item in items:
        assert item.source == "avr-synth" and item.steps
        # the same item as generating it in memory
        assert {**item.to_dict(), "video": None} == {**generate_item("test", item.extras["index"]).item.to_dict()}
        media = load_media(item.video)
        rendered = render_media(generate_item("test", item.extras["index"]), fps=2.0, size=96)
        assert media.kind == "video" and media.has_audio
        assert media.frames.shape == rendered.frames.shape
        np.testing.assert_allclose(media.frame_times, rendered.frame_times, atol=1e-3)
        assert np.abs(media.frames.astype(int) - rendered.frames.astype(int)).mean() < 3
        assert abs(len(media.audio) - len(rendered.audio)) <= 160
        n = min(len(media.audio), len(rendered.audio))
        assert np.sqrt(np.mean((media.audio[:n] - rendered.audio[:n]) ** 2)) < 0.02


def test_rerun_resumes_and_extends(split_dir, capsys):
    first = split_dir / "videos" / "avr-test-000000.mp4"
    stamp = first.stat().st_mtime_ns
    assert main(["synth", "--split", "test", "--n", "2", "--start", str(N), "--out", str(split_dir), "--quiet",
                 "--size", "96"]) == 0
    assert first.stat().st_mtime_ns == stamp
    assert (split_dir / "videos" / f"avr-test-{N:06d}.mp4").is_file()
    assert "wrote 2 test items" in capsys.readouterr().out
    assert not list((split_dir / "videos").glob(".*partial*"))


def test_eval_scores_the_written_split(split_dir, tmp_path, capsys):
    items = read_items(split_dir / "items.jsonl")
    gold = tmp_path / "gold.jsonl"
    with gold.open("w") as handle:
        for item in items:
            handle.write(json.dumps({"id": item.id, "reasoning": item.gold_reasoning(),
                                     "answer": f"The answer is {item.answer}."}) + "\n")
    report = tmp_path / "report.json"
    for mode in ("answer", "reasoning"):
        assert main(["eval", "--items", str(split_dir / "items.jsonl"), "--predictions", str(gold),
                     "--mode", mode, "--out", str(report)]) == 0
        data = json.loads(report.read_text())
        assert data["overall"]["accuracy"] == 1.0, (mode, data["unparsed"])
    capsys.readouterr()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--n", "0"], "--n must be >= 1"),
        (["--families", "juggling"], "unknown families"),
        (["--min-scenes", "7", "--max-scenes", "5"], "must not exceed"),
        (["--size", "95"], "even number"),
    ],
)
def test_bad_settings_are_one_line_errors(tmp_path, capsys, args, message):
    assert main(["synth", "--out", str(tmp_path / "x"), "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("salmonn-o1 synth: error: synth settings") and message in err


def test_a_rerun_with_other_settings_is_refused_and_changes_nothing(tmp_path, capsys):
    out = tmp_path / "avr"
    base = ["synth", "--split", "test", "--n", "1", "--out", str(out), "--quiet", "--size", "32", "--fps", "4"]
    assert main(base) == 0
    settings = json.loads((out / "synth_settings.json").read_text())
    assert settings["split"] == "test" and settings["size"] == 32 and settings["min_duration"] == 6.0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()

    assert main([*base, "--min-duration", "9", "--max-duration", "14", "--options", "3"]) == 2
    err = capsys.readouterr().err
    assert "--min-duration 6.0 (now 9.0)" in err and "--max-duration 12.0 (now 14.0)" in err
    assert "--options 4 (now 3)" in err and "--seed" not in err
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # neither the items nor the clips were touched

    assert main([*base, "--n", "2"]) == 0  # the same settings resume and extend
    assert [item.id for item in read_items(out / "items.jsonl")] == ["avr-test-000000", "avr-test-000001"]


def test_a_folder_without_recorded_settings_is_checked_against_its_items(tmp_path, capsys):
    out = tmp_path / "old"
    base = ["synth", "--split", "test", "--n", "2", "--out", str(out), "--quiet", "--size", "32", "--fps", "4"]
    assert main(base) == 0
    (out / "synth_settings.json").unlink()  # as a folder written before settings were recorded
    before = (out / "items.jsonl").read_bytes()
    assert main([*base, "--seed", "7"]) == 2
    assert "avr-test-000000 is not what these settings generate" in capsys.readouterr().err
    assert (out / "items.jsonl").read_bytes() == before and not (out / "synth_settings.json").exists()
    assert main(base) == 0 and (out / "synth_settings.json").is_file()  # the same settings are accepted
