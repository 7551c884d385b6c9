"""`salmonn-o1 datagen` over real HTTP: a scripted OpenAI-compatible server on 127.0.0.1 exercises
parsing, checking, regeneration and resuming; real mp4 clips are decoded and sent."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest
from avgen import SR, write_video
from scripted import ACCEPT, GOOD_QUESTION, REJECT, ScriptedServer, is_check

import salmonn_o1
from salmonn_o1.cli import main
from salmonn_o1.data.schema import read_items
from salmonn_o1.records import read_records

SOURCE_DIR = str(Path(salmonn_o1.__file__).resolve().parents[1])


def clips(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"clip{i}.mp4"
        write_video(path, 6, 2, audio=[(0.0, 440.0), (1.5, 1000.0 + 100 * i)], audio_rate=SR)
        paths.append(path)
    return paths


@pytest.fixture()
def server():
    served = ScriptedServer([])
    yield served
    served.close()


def run(args: list[str]) -> int:
    return main(["datagen", *map(str, args), "--quiet"])


def test_generate_check_retry_and_failures(tmp_path, server):
    videos = clips(tmp_path / "videos", 3)
    good, accept, reject = json.dumps(GOOD_QUESTION), json.dumps(ACCEPT), json.dumps(REJECT)
    server.replies.extend([
        "Sure! Here is a question: what colour is it?", good, accept,     # clip0: malformed, then accepted
        good, reject, f"```json\n{good}\n```", accept,                    # clip1: rejected by the check, then fenced
        good, '{"supported": "yes", "consistent": true}', "[1, 2]",     # clip2: bad check, then a list: fails
    ])
    out = tmp_path / "out" / "items.jsonl"
    assert run([tmp_path / "videos", "--out", out, "--base-url", server.base_url, "--model", "gen-m",
                "--frames", "3", "--retries", "1"]) == 0
    items = read_items(out, require_answer=True)
    assert [i.id for i in items] == ["datagen-clip0", "datagen-clip1"]
    first = items[0]
    assert first.steps == ["The tone rises at 1.5 s.", "At 1.5 s the frame is blue."]  # numbering stripped
    assert (first.answer, first.options[1], first.extras["attempts"], items[1].extras["attempts"]) == ("B", "It turns blue",
                                                                                                       2, 2)
    assert Path(first.video).resolve() == videos[0].resolve()  # relative in the file, resolved when read
    (failure,) = read_records(out.with_name("items.failures.jsonl"))
    assert failure["id"] == "datagen-clip2" and len(failure["attempts"]) == 2
    assert "the check's 'supported'" in failure["attempts"][0] and "not an object" in failure["attempts"][1]
    # what went over the wire: labelled frames as JPEG data URLs and the audio as WAV input_audio
    request = server.requests[0]
    parts = request["messages"][0]["content"]
    images = [p for p in parts if p["type"] == "image_url"]
    assert len(images) == 3 and images[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    (audio,) = [p for p in parts if p["type"] == "input_audio"]
    with wave.open(io.BytesIO(base64.b64decode(audio["input_audio"]["data"]))) as wav:
        assert (wav.getframerate(), wav.getnchannels()) == (SR, 1) and wav.getnframes() > SR
    assert parts[-1]["text"].startswith("You are writing training data") and request["model"] == "gen-m"
    check = server.requests[2]["messages"][0]["content"][-1]["text"]
    assert is_check(server.requests[2]) and json.loads(good)["question"] in check
    # the output is SFT data as it is: the gold reasoning ends in the answer marker
    from salmonn_o1.train.sft_data import sft_conversation

    conversation = sft_conversation(first, reasoning=True)
    assert conversation[1]["content"].startswith("1. The tone rises") and "The answer is B" in conversation[1]["content"]
    # a rerun finds every video done and sends nothing
    before = len(server.requests)
    assert run([tmp_path / "videos", "--out", out, "--base-url", server.base_url, "--model", "gen-m"]) == 0
    assert len(server.requests) == before


def test_separate_checker_transcript_and_prompt_file(tmp_path, server):
    checker = ScriptedServer()  # answers every request validly
    try:
        (video,) = clips(tmp_path / "v", 1)
        video.with_suffix(".srt").write_text("1\n00:00:00,500 --> 00:00:02,000\nListen to the tone.\n\n")
        prompt = tmp_path / "mine.txt"
        prompt.write_text('MY PROMPT$audio_note. Reply {"question": ..., "options": [...]}', encoding="utf-8")
        server.replies.extend([json.dumps(GOOD_QUESTION)])
        out = tmp_path / "items.jsonl"
        assert run([video, "--out", out, "--base-url", server.base_url, "--model", "gen-m", "--audio", "transcript",
                    "--check-base-url", checker.base_url, "--check-model", "judge-m", "--prompt-file", prompt]) == 0
        (item,) = read_items(out)
        assert item.extras["checker"] == "judge-m"
        (generation,) = server.requests
        texts = [p["text"] for p in generation["messages"][0]["content"] if p["type"] == "text"]
        assert texts[-1].startswith("MY PROMPT (given as a transcript).")
        assert any("[0.5-2.0 s] Listen to the tone." in t for t in texts)
        assert not any(p["type"] == "input_audio" for p in generation["messages"][0]["content"])
        assert [r["model"] for r in checker.requests] == ["judge-m"]
    finally:
        checker.close()


def test_bad_input_is_one_clear_error(tmp_path, server, capsys):
    (video,) = clips(tmp_path / "v", 1)
    assert run([tmp_path / "nope", "--out", tmp_path / "o.jsonl", "--base-url", server.base_url, "--model", "m"]) == 2
    assert "nope: no such video file or folder" in capsys.readouterr().err
    assert run([video, "--out", tmp_path / "o.jsonl", "--base-url", server.base_url, "--model", "m",
                "--audio", "transcript"]) == 0
    assert "needs a transcript beside the video" not in capsys.readouterr().err  # recorded, not fatal
    (failure,) = read_records(tmp_path / "o.failures.jsonl")
    assert "needs a transcript beside the video" in failure["error"]
    bad = tmp_path / "check.txt"
    bad.write_text("no placeholder here", encoding="utf-8")
    assert run([video, "--out", tmp_path / "p.jsonl", "--base-url", server.base_url, "--model", "m",
                "--check-prompt-file", bad]) == 2
    assert "must contain $item_json" in capsys.readouterr().err
    closed = ScriptedServer()
    url = closed.base_url
    closed.close()
    assert run([video, "--out", tmp_path / "q.jsonl", "--base-url", url, "--model", "m"]) == 2
    assert "APIConnectionError" in capsys.readouterr().err
    assert not (tmp_path / "q.jsonl").exists() and not (tmp_path / "q.failures.jsonl").exists()


def test_killed_run_resumes_every_video_once(tmp_path):
    served = ScriptedServer(delay=0.3)
    try:
        clips(tmp_path / "videos", 6)
        out = tmp_path / "items.jsonl"
        command = [sys.executable, "-m", "salmonn_o1", "datagen", str(tmp_path / "videos"), "--out", str(out),
                   "--base-url", served.base_url, "--model", "m", "--frames", "2", "--quiet"]
        env = {**os.environ, "PYTHONPATH": SOURCE_DIR, "OMP_NUM_THREADS": "1"}
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while len(read_records(out)) < 2 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        process.kill()
        process.wait()
        written = len(read_records(out))
        assert 2 <= written < 5, "the run was not killed midway"
        served.max_in_flight = 0
        # the rerun with three videos in flight at once (the server answers requests concurrently)
        result = subprocess.run([*command, "--workers", "3"], env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert f"{written} already done" in result.stdout
        ids = [r["id"] for r in read_records(out)]
        assert sorted(ids) == [f"datagen-clip{i}" for i in range(6)]  # every video exactly once
        assert not out.with_name("items.failures.jsonl").exists()
        assert served.max_in_flight >= 2  # --workers 3 had videos in flight together
    finally:
        served.close()


def test_output_trains_with_train_sft(tmp_path):
    """The accepted items are an SFT data source as they are: two optimiser steps of the tiny preset."""
    served = ScriptedServer()
    try:
        clips(tmp_path / "videos", 2)
        out = tmp_path / "data" / "gen.jsonl"
        assert run([tmp_path / "videos", "--out", out, "--base-url", served.base_url, "--model", "m",
                    "--frames", "2"]) == 0
    finally:
        served.close()
    from salmonn_o1.train.recipe import load_recipe
    from salmonn_o1.train.sft import run_sft

    recipe = load_recipe(None, ["model.source=tiny", f"data.sources=[{{path: {out}}}]", "data.dev=null",
                                "optim.batch_size=2", "optim.max_steps=2", "optim.warmup_steps=0",
                                "run.save_every=100", "run.eval_every=0", f"run.out_dir={tmp_path / 'run'}"])
    result = run_sft(recipe)
    assert result.step == 2 and result.skipped == 0
