"""`salmonn-o1 datagen` against the real `salmonn-o1 serve`: the shipped miniature model does not
write the JSON asked for, and the run records that as the video's failure instead of crashing."""

from __future__ import annotations

from salmonn_o1.cli import main
from salmonn_o1.records import read_records

from serving import API_KEY


def test_malformed_replies_from_serve_are_recorded_failures(server, counting_clip, tmp_path):
    out = tmp_path / "items.jsonl"
    # our server takes one image per question and no audio beside an image: one frame, no audio
    code = main(["datagen", str(counting_clip.path), "--out", str(out), "--base-url", f"{server.base_url}/v1",
                 "--model", "salmonn-o1-mini", "--api-key", API_KEY, "--frames", "1", "--audio", "none",
                 "--retries", "1", "--max-tokens", "24", "--quiet"])
    assert code == 0
    assert read_records(out) == []
    (failure,) = read_records(tmp_path / "items.failures.jsonl")
    assert failure["id"] == "datagen-counting" and len(failure["attempts"]) == 2
    assert all(reason.startswith("the reply is not JSON") for reason in failure["attempts"]), failure


def test_an_unknown_model_stops_the_run(server, counting_clip, tmp_path, capsys):
    out = tmp_path / "items.jsonl"
    assert main(["datagen", str(counting_clip.path), "--out", str(out), "--base-url", f"{server.base_url}/v1",
                 "--model", "no-such-model", "--api-key", API_KEY, "--frames", "1", "--audio", "none",
                 "--quiet"]) == 2
    assert "no-such-model" in capsys.readouterr().err
    assert not (tmp_path / "items.failures.jsonl").exists()  # a resumed run with the right name does the video
