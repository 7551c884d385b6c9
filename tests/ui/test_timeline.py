"""The step-to-time reader and the timeline pictures, on hand-made cases (pure functions, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from salmonn_o1.ui.timeline import (
    CHUNK_LINE,
    HIGHLIGHT,
    Axis,
    audio_picture,
    find_mentions,
    find_times,
    frame_strip,
    highlighted_frames,
    log_mel_image,
    timeline,
)


@pytest.mark.parametrize("text, spans", [
    ("At 9.0 s the screen shows the purple cross.", [(9.0, 9.0)]),
    ("The chirp plays from 2.5 s to 3.5 s.", [(2.5, 3.5)]),
    ("It sounds between 1 and 2 seconds.", [(1.0, 2.0)]),
    ("from 2.5 to 3.5 s", [(2.5, 3.5)]),
    ("a tone over 4-6 s", [(4.0, 6.0)]),
    ("from 0:02 to 0:04.5, then at 1:10", [(2.0, 4.5), (70.0, 70.0)]),
    ("from 5 s to 3 s", [(3.0, 5.0)]),
    ("From 2.0 s to 4.0 s the red triangle; the blue cross from 0.0 s to 2.0 s; at 9s, 10 sec and 11 seconds.",
     [(2.0, 4.0), (0.0, 2.0), (9.0, 9.0), (10.0, 10.0), (11.0, 11.0)]),
    ("The red triangle is option B.", []),
    ("3 steps over 20 frames; from 2 to 3 options; 4 sounds", []),
    ("", []),
])
def test_find_times(text, spans):
    assert find_times(text) == spans


def test_mentions_point_at_their_text():
    text = "The chirp plays from 2.5 s to 3.5 s; at 9.0 s it stops."
    assert [text[m.start:m.end] for m in find_mentions(text)] == ["from 2.5 s to 3.5 s", "9.0 s"]


def test_a_decimal_is_not_read_from_its_middle():
    assert find_times("x1.5 s") == [] and find_times("it lasts 11.5 s") == [(11.5, 11.5)]


def test_frames_a_span_points_at():
    times = [0.0, 0.5, 1.0, 1.5, 2.0]
    assert highlighted_frames(times, [(1.2, 1.2)], 2.5) == [2]  # the frame on screen at 1.2 s
    assert highlighted_frames(times, [(1.0, 1.0)], 2.5) == [2]
    assert highlighted_frames(times, [(0.6, 1.6)], 2.5) == [1, 2, 3]
    assert highlighted_frames(times, [(2.5, 2.5)], 2.5) == [4]  # the end belongs to the last frame
    assert highlighted_frames(times, [(7.0, 8.0)], 2.5) == []
    assert highlighted_frames(times, [], 2.5) == []


def _columns_with(image, colour, rows) -> list[int]:
    pixels = np.asarray(image)[rows]
    return sorted(set(np.nonzero((pixels == np.array(colour, np.uint8)).all(-1))[-1].tolist()))


def test_audio_picture_marks_the_span_columns():
    mel = np.random.default_rng(0).normal(size=(16, 1000)).astype(np.float32)
    width = 1001  # 10 s over 1001 columns: 100 columns a second
    picture = audio_picture(mel, 10.0, [(2.5, 3.5)], width=width, height=40)
    top_band = slice(0, 8)
    assert _columns_with(picture, HIGHLIGHT, top_band) == list(range(250, 351))
    moment = audio_picture(mel, 10.0, [(9.0, 9.0)], width=width, height=40)
    assert _columns_with(moment, HIGHLIGHT, top_band) == [899, 900, 901]
    assert _columns_with(audio_picture(mel, 10.0, [], width=width, height=40), HIGHLIGHT, top_band) == []


def test_audio_picture_marks_windows_and_chunks():
    width = 601
    picture = np.asarray(audio_picture(np.zeros((8, 100)), 60.0, width=width, height=30))
    # 60 s in 601 columns: 0.2 s windows would be 2 px apart, so they are left out; one chunk boundary at 30 s
    assert _columns_with(picture, CHUNK_LINE, slice(10, 40)) == [300, 301]
    assert _columns_with(picture, (255, 255, 255), slice(40, 44)) == []
    short = np.asarray(audio_picture(np.zeros((8, 100)), 2.0, width=201, height=30))
    ruler = short[40:44]  # under the 30-row picture that starts at row 10
    white = sorted(set(np.nonzero((ruler == 255).all(-1))[1].tolist()))
    assert white == [round(k * 0.2 / 2.0 * 200) for k in range(11)]  # one line per 0.2 s window
    assert _columns_with(short, CHUNK_LINE, slice(10, 40)) == []  # a 2 s clip is one chunk


def test_no_audio_is_a_blank_band():
    picture = np.asarray(audio_picture(None, 5.0, [(1.0, 2.0)], width=200, height=30))
    assert picture.shape[1] == 200 and _columns_with(picture, HIGHLIGHT, slice(0, 8)) == list(range(40, 81))


def test_log_mel_image_joins_chunks_and_cuts_to_the_duration():
    features = np.stack([np.full((4, 3000), 1.0), np.full((4, 3000), 2.0)])
    image = log_mel_image(features, 35.0)
    assert image.shape == (4, 3500) and image[0, 2999] == 1.0 and image[0, 3000] == 2.0


def test_frame_strip_lays_frames_on_the_time_axis_and_marks_the_pointed_one():
    frames = np.zeros((4, 48, 64, 3), np.uint8)
    strip = frame_strip(frames, [0.0, 0.5, 1.0, 1.5], [(0.6, 0.6)], duration=2.0, width=201)
    assert strip.width == 201
    # 100 columns a second: the frame shown from 0.5 s to 1.0 s fills columns 50 to 99
    assert _columns_with(strip, HIGHLIGHT, slice(0, 8)) == list(range(50, 100))
    none = frame_strip(frames, [0.0, 0.5, 1.0, 1.5], [(5.0, 6.0)], duration=2.0, width=201)
    assert _columns_with(none, HIGHLIGHT, slice(0, none.height)) == []


def test_timeline_stacks_the_strip_over_the_audio():
    strip = frame_strip(np.zeros((2, 48, 64, 3), np.uint8), [0.0, 0.5], [], duration=1.0, width=300)
    audio = audio_picture(np.zeros((8, 100)), 1.0, [(0.2, 0.4)], width=300, height=30)
    both = timeline(strip, audio)
    assert both.size == (300, strip.height + audio.height)
    assert _columns_with(both, HIGHLIGHT, slice(strip.height, strip.height + 8)) == list(range(60, 121))


def test_axis_clamps_and_widens_moments():
    axis = Axis(10.0, 101)
    assert axis.x(-1) == 0 and axis.x(20) == 100 and axis.x(5) == 50
    assert axis.columns((5.0, 5.0)) == (49, 51) and axis.columns((0.0, 0.0)) == (0, 1)
