"""What `salmonn-o1 ask` shows: the default-model note, the media facts, steps streamed as they are
finally rendered, the answer by the one reading rule, and the checks it shares with `infer`.

Real runs of the shipped model (subprocesses, a pseudo-terminal for streaming) on the bundled
clip; a video without an audio track is written with PyAV here.
"""

from __future__ import annotations

import io
import json
import os
import pty
import random
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from salmonn_o1.cli import main
from salmonn_o1.commands.ask import StepPrinter, describe_media, format_answer, format_step, media_facts
from salmonn_o1.eval.extract import read_answer
from salmonn_o1.reasoning import split_steps

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "src" / "salmonn_o1" / "assets" / "sample"
ITEM = json.loads((SAMPLE / "item.json").read_text())
CLIP = SAMPLE / ITEM["video"]
QUICK = ["--max-new-tokens", "96", "--answer-max-new-tokens", "16"]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}


def ask(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "salmonn_o1.cli", "ask", *map(str, args)], capture_output=True,
                          text=True, env=environment(), timeout=240)


def ask_on_a_terminal(*args: str) -> str:
    """`ask` with stdout on a pseudo-terminal (so it streams), as a user's terminal sees it."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "salmonn_o1.cli", "ask", *map(str, args)], stdout=follower,
                               stderr=subprocess.DEVNULL, env=environment())
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the follower side closed: the process is done
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=240) == 0
    return b"".join(chunks).decode().replace("\r\n", "\n")


@pytest.fixture(scope="module")
def plain_run() -> subprocess.CompletedProcess:
    process = ask(CLIP, ITEM["question"], "--options", *ITEM["options"], *QUICK)
    assert process.returncode == 0, process.stderr
    return process


def test_the_default_model_says_once_on_stderr_what_it_knows(plain_run):
    assert plain_run.stderr.count("trained only on AVR-Synth") == 1
    assert "docs/released-model.md" in plain_run.stderr
    assert "AVR-Synth" not in plain_run.stdout  # the answer output stays clean for pipes


def test_quiet_silences_the_note_and_the_loading_bar():
    process = ask(CLIP, ITEM["question"], "--options", *ITEM["options"], *QUICK, "--quiet")
    assert process.returncode == 0, process.stderr
    assert process.stderr == ""
    assert "Answer:" in process.stdout


def test_an_explicit_model_gets_no_note():
    process = ask(CLIP, ITEM["question"], "--options", *ITEM["options"], "--model", "tiny",
                  "--max-new-tokens", "4", "--answer-max-new-tokens", "2")
    assert process.returncode == 0, process.stderr
    assert "AVR-Synth" not in process.stderr


def test_the_output_shows_the_media_facts(plain_run):
    lines = plain_run.stdout.splitlines()
    assert lines[0] == "Media: video, 9.0 s; 18 frames at 2 per second; audio: yes (150 tokens); 225 media tokens"
    assert lines[1] == "Reasoning:" and lines[-1].startswith("Answer: ")


def test_json_output_carries_the_media_facts_and_the_rule_s_answer():
    process = ask(CLIP, ITEM["question"], "--options", *ITEM["options"], *QUICK, "--json", "--quiet")
    result = json.loads(process.stdout)
    assert result["media"] == {"kind": "video", "duration_s": 9.0, "frames": 18, "frames_per_second": 2.0,
                               "audio": True, "audio_tokens": 150, "media_tokens": 225}
    assert result["answer"] == read_answer(result["answer_text"], result["reasoning"], ITEM["options"])


def test_a_video_without_audio_says_so(tmp_path):
    from salmonn_o1.inference import SalmonnO1Pipeline

    path = tmp_path / "silent.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=4)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(12):  # 3 s at 4 fps
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    facts = media_facts(SalmonnO1Pipeline.from_pretrained("tiny", device="cpu").features(path))
    assert facts["audio"] is False and facts["audio_tokens"] == 0
    assert facts["frames"] == 6 and facts["frames_per_second"] == 2.0
    assert "audio: none" in describe_media(facts)


def test_streaming_on_a_terminal_renders_steps_as_the_final_output(plain_run):
    shown = ask_on_a_terminal(CLIP, ITEM["question"], "--options", *ITEM["options"], *QUICK, "--quiet")
    assert "<end_of_step>" not in shown
    assert shown.strip() == plain_run.stdout.strip()


def test_the_step_printer_never_shows_a_split_marker():
    rng = random.Random(0)
    texts = ["At 4.0 s the screen shows the red square.<end_of_step>The answer is A.<end_of_step>",
             "1. First.\n2. Second.\n3. So B.", "one\ntwo\n", "x<end_of_step><end_of_step> y\nz<end_of_step>"]
    for text in texts:
        final = "\n".join(format_step(step, i) for i, step in enumerate(split_steps(text), start=1))
        for _ in range(30):
            out = io.StringIO()
            printer, at = StepPrinter(out), 0
            while at < len(text):
                size = rng.randint(1, 7)
                printer.feed(text[at:at + size])
                at += size
            printer.close()
            assert out.getvalue().rstrip("\n") == final


def test_an_unreadable_answer_is_shown_as_such():
    assert format_answer(None, "when") == "Answer: unreadable (the model's answer turn said: 'when')"
    assert format_answer("B", "The answer is B.") == "Answer: B"


def test_the_answer_rule_falls_back_to_the_reasoning_everywhere():
    from salmonn_o1.data.schema import Item, Prediction
    from salmonn_o1.eval.metrics import score_item

    options = ["red square", "blue circle"]
    assert read_answer("hmm", "1. The tone plays.\n2. The answer is B.", options) == "B"
    assert read_answer("hmm", "no idea", options) is None
    item = Item("q", None, "Which shape?", options, "B")
    scored = score_item(item, Prediction("q", answer="hmm", reasoning="The answer is B."))
    assert scored.status == "ok" and scored.correct
    assert score_item(item, Prediction("q", answer="hmm", reasoning="no idea")).status == "unparsed"


@pytest.mark.parametrize("options, message", [
    (["only one"], "has 1 entry"),
    (["red", "Red"], "has duplicate option texts"),
    (["red", " "], "has an empty option"),
    ([f"option {i}" for i in range(11)], "has 11 entries; at most 10"),
])
def test_ask_checks_options_as_infer_does(options, message, tmp_path, capsys):
    assert main(["ask", str(CLIP), "Which one?", "--options", *options]) == 2
    asked = capsys.readouterr().err
    assert f"--options {message}" in asked and "Loading" not in asked
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"id": "q", "video": str(CLIP), "question": "Which one?", "options": options,
                                 "answer": "A"}) + "\n")
    assert main(["infer", "--data", str(items), "--out", str(tmp_path / "p.jsonl")]) == 2
    assert f"field 'options' {message}" in capsys.readouterr().err


def test_ask_refuses_an_empty_question(capsys):
    assert main(["ask", str(CLIP), "   "]) == 2
    assert "the question is empty" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    from salmonn_o1 import __version__

    assert capsys.readouterr().out.strip() == f"salmonn-o1 {__version__}"
