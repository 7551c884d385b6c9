"""Streamed reasoning and answers add up to the unstreamed text, however the tokens split the text."""

from __future__ import annotations

import random

import pytest

from salmonn_o1.reasoning import split_steps
from salmonn_o1.serve.text_streams import AnswerStream, StepStream, final_content, numbered_steps

REASONING = [
    "1. The chirp plays from 2.5 s to 3.5 s.<end_of_step>\n2. At 2.5 s the screen shows the red triangle."
    "<end_of_step>\n3. The answer is B.<end_of_step>",
    "The beep plays first.<end_of_step> Then a tone<end_of_step><end_of_step>\n  Step 3: it is B <end_of_step>  ",
    "1. first line\n2. second line\nmore of two\n3. last",  # no markers: split by numbered lines, at the end
    "3<end_of_step>3.<end_of_step>3. x<end_of_step>s<end_of_step>step<end_of_step>steps ahead",
    "<end_of_st",  # a marker cut short is text
    "",
]


def pieces(text: str, rng: random.Random) -> list[str]:
    cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(0, 12)))) if len(text) > 1 else []
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]


@pytest.mark.parametrize("text", REASONING)
def test_streamed_steps_add_up_to_the_numbered_steps(text):
    rng = random.Random(0)
    expected = numbered_steps(split_steps(text))
    for _ in range(50):
        stream = StepStream()
        sent = "".join(stream.feed(p) for p in pieces(text, rng)) + stream.close()
        assert sent == expected


def test_steps_stream_as_they_are_written_once_marked():
    stream = StepStream()
    assert stream.feed("1. The chirp plays") == ""  # before the first marker a line break may still split
    assert stream.feed(" early.<end_of_step>\n2. At 2") == "1. The chirp plays early.\n2. At 2"
    assert stream.feed(" s it ends") == " s it ends"
    assert stream.feed(" <end_of") == ""  # maybe a marker: held back, as is the trailing space
    assert stream.close() == " <end_of"


@pytest.mark.parametrize(("text", "stop"), [
    ("  The answer is B.  ", []), ("The answer is B.", ["is"]), ("The answer is B.", ["B.", "answer"]),
    ("The answer\nis B.\n", ["\n"]), ("abcabd", ["abd"]), ("no stop here", ["zz"]), ("", ["x"]),
])
def test_streamed_answers_add_up_to_the_final_content(text, stop):
    rng = random.Random(1)
    expected, stopped = final_content(text, stop)
    for _ in range(50):
        stream = AnswerStream(stop)
        sent = "".join(stream.feed(p) for p in pieces(text, rng)) + stream.close()
        assert sent == expected and stream.stopped == stopped
