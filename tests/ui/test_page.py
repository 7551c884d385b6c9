"""The page's answering function (`Answerer.run`, the generator gradio runs), called directly with
the shipped model: one message per bad input, the no-audio notice, streaming, and Major@k's votes.

Files are real: a silent video written with PyAV, bytes that are no video, the bundled clip.
"""

from __future__ import annotations

import html
import json
import socket
import subprocess
import sys

import av
import numpy as np
import pytest

pytest.importorskip("gradio", reason="the ui extra is not installed (pip install 'salmonn-o1[ui]')")

from salmonn_o1.ui.app import (  # noqa: E402
    ALL_STEPS,
    SAMPLE_DIR,
    Answerer,
    answer_markdown,
    mark_times,
    parse_options,
    refocus,
    spans_of,
    visible_steps,
)
from salmonn_o1.ui.timeline import HIGHLIGHT, Axis  # noqa: E402

ITEM = json.loads((SAMPLE_DIR / "item.json").read_text())
CLIP = str(SAMPLE_DIR / ITEM["video"])
OPTIONS = "\n".join(ITEM["options"])
SETTINGS = {"reasoning": True, "temperature": 0, "top_p": 1.0, "max_new_tokens": 96, "answer_max_new_tokens": 32,
            "seed": 0, "k": 1}


@pytest.fixture(scope="module")
def answerer():
    from salmonn_o1.inference import SalmonnO1Pipeline

    return Answerer(SalmonnO1Pipeline.from_pretrained(None, device="cpu"), max_bytes=10 * 2**20)


def run(answerer, video, question, options=OPTIONS, **settings):
    return list(answerer.run(video, question, options, **{**SETTINGS, **settings}))


def status(update) -> str:
    return html.unescape(update[0])


@pytest.mark.parametrize("video, question, options, message", [
    (CLIP, "   ", OPTIONS, "the question is empty"),
    (CLIP, "Which?", "only one", "the options has 1 entry"),
    (None, "What was on screen?", OPTIONS, "no video: upload one or pick an example"),
])
def test_bad_input_is_one_message(answerer, video, question, options, message):
    updates = run(answerer, video, question, options)
    assert len(updates) == 1 and 'class="error"' in status(updates[0]) and message in status(updates[0])


def test_an_unreadable_file_is_named(answerer, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    (update,) = run(answerer, str(broken), ITEM["question"])
    assert 'class="error"' in status(update) and "broken.mp4" in status(update)


def test_an_oversize_file_is_refused_before_decoding(answerer, tmp_path):
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (10 * 2**20 + 1))
    (update,) = run(answerer, str(big), ITEM["question"])
    assert "big.mp4" in status(update) and "larger than this page's limit of 10 MiB" in status(update)


def write_silent_video(path, seconds: int = 3, fps: int = 10) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(seconds * fps):
            frame = np.full((48, 64, 3), (i * 8) % 256, np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())


def test_a_video_without_audio_is_answered_with_a_notice(answerer, tmp_path):
    silent = tmp_path / "silent.mp4"
    write_silent_video(silent)
    updates = run(answerer, str(silent), "What colour is the screen?", "", max_new_tokens=8,
                  answer_max_new_tokens=8)
    assert all("no audio track" in status(u) and 'class="warning"' in status(u) for u in updates)
    assert "Done." in status(updates[-1]) and "**no audio track**" in updates[-1][1]
    assert updates[-1][4].startswith("## Answer") or "unreadable" in updates[-1][4]


def test_the_bundled_question_streams_steps_and_ends_with_the_pipelines_answer(answerer):
    updates = run(answerer, CLIP, ITEM["question"])
    expected = answerer.pipeline.ask(CLIP, ITEM["question"], ITEM["options"], max_new_tokens=96,
                                     answer_max_new_tokens=32)
    *streamed, final = updates
    assert len(streamed) >= 2 and "Reasoning..." in status(streamed[0])
    assert final[4].startswith(f"## Answer: {expected.answer}. ") and final[8] == expected.steps
    assert final[3].count("<li>") == len(expected.steps) and '<mark class="time"' in final[3]
    picture = np.asarray(final[2])
    assert (picture == np.array(HIGHLIGHT, np.uint8)).all(-1).any()
    assert not (np.asarray(streamed[0][2]) == np.array(HIGHLIGHT, np.uint8)).all(-1).any()  # nothing said yet
    assert final[6]["choices"] == [ALL_STEPS] + [f"step {i}" for i in range(1, len(expected.steps) + 1)]


def test_major_at_k_shows_the_votes(answerer):
    final = run(answerer, CLIP, ITEM["question"], k=3, temperature=1.0, max_new_tokens=64)[-1]
    votes = final[5]
    assert votes["visible"] is True and int(votes["value"]["votes"].sum()) <= 3
    assert "Major@3" in final[4] and "Sampling 3 reasoning paths" not in status(final)


def test_helpers():
    assert parse_options(" A. red \n\n B. blue ") == ["A. red", "B. blue"] and parse_options("  ") is None
    assert visible_steps("1. At 2 s.<end_of_step>2. Then<end_of") == ["1. At 2 s.", "2. Then"]
    assert mark_times("a <b> at 2.5 s") == 'a &lt;b&gt; at <mark class="time" title="2.5 s">2.5 s</mark>'
    assert answer_markdown("B", "B", ["red", "blue"]) == "## Answer: B. blue"
    assert answer_markdown(None, "hmm", ["red", "blue"]).startswith("**Answer: unreadable**")
    assert answer_markdown("YES", "YES", None) == "## Answer: YES"
    steps = ["1. At 1 s a beep.", "2. From 2 s to 3 s a square.", "3. It is B."]
    assert spans_of(steps, ALL_STEPS) == [(1.0, 1.0), (2.0, 3.0)] and spans_of(steps, "step 2") == [(2.0, 3.0)]
    assert spans_of(steps, "step 3") == [] and refocus(None, steps, "step 1") is None


def test_one_step_in_focus_highlights_only_its_times(answerer):
    from salmonn_o1.ui.app import load_media

    media = load_media(answerer.pipeline, CLIP, 2**30)
    steps = ["At 8.0 s a circle.", "Nothing timed."]
    lit = (np.asarray(refocus(media, steps, "step 1")) == np.array(HIGHLIGHT, np.uint8)).all(-1).any(0)
    columns = np.nonzero(lit)[0]
    axis = Axis(media.duration, 1200)  # the pictures' width
    assert 8.0 in media.frame_times and 8.5 in media.frame_times
    # the frame shown from 8.0 s to 8.5 s, and the 3-column moment mark at 8.0 s on the audio
    assert (columns.min(), columns.max()) == (axis.x(8.0) - 1, axis.x(8.5) - 1)
    assert not (np.asarray(refocus(media, steps, "step 2")) == np.array(HIGHLIGHT, np.uint8)).all(-1).any()


def test_a_taken_port_is_one_error_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "salmonn_o1", "ui", "--port", str(port), "--device", "cpu"],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert f"salmonn-o1 ui: error: cannot serve on 127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr
