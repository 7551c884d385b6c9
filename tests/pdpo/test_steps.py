"""Step splitting (the shared `split_steps`) and step segments with their token spans."""

import pytest

from salmonn_o1.pdpo.steps import path_ids, piece_ids, same_step, segment_text, step_segments
from salmonn_o1.prompts import format_steps
from salmonn_o1.reasoning import split_steps

# The released model's demo transcripts (seed README): numbered, no markers.
DEMO_CHOICE = """1. The The speaker is making a joke about how fast food restaurants use calorie counts to manipulate customers into buying more food.
2. He says he didn't need to know that because he already knew he was going to eat a lot of calories.
3. His tone and delivery suggest he's not actually upset about the calorie count, but rather finds it humorous that he doesn't need to be told how unhealthy his choices are. (Combining audio-visual information)
4. Therefore, the speaker implies that when you want to eat, just eat and don't prioritize calories.
5. The answer is B"""
DEMO_BOLD = """1. The question asks about the legend when he is hit by the turret.
2. The legend is a character in the game, and turrets are structures that fire at characters.
3. The legend is hit by a turret at around 0:15 seconds into the video.
4. When the legend is hit by the turret, there is a burst of fire.
5. Therefore, the answer is **D. Fire**."""
DEMO_YES_NO = "\n".join([  # the transcript keeps trailing spaces on some lines
    '1. The video shows a cyclist riding on a road with a field of flowers in the background. ',
    '2. The colors are vibrant and the scene is smooth, suggesting it might be AI generated.',
    "3. Upon closer inspection, we can see that the cyclist's shadow is perfectly aligned with the cyclist, which is unusual for a moving object. This suggests a lack of natural motion blur or distortion, a common characteristic of AI-generated videos.",
    "4. Therefore, based on the smoothness of the scene and the unnatural alignment of the cyclist's shadow, it is highly likely that the video is AI generated. ",
    '5. So the answer is YES.',
])
MARKED = format_steps(["The high tone plays from 3.0 s to 4.0 s.", "A red square is on screen then."], "B")

CASES = {
    "demo_choice": (DEMO_CHOICE, 5),
    "demo_bold": (DEMO_BOLD, 5),
    "demo_yes_no": (DEMO_YES_NO, 5),
    "marked": (MARKED, 3),
    "no_markers_no_numbers": ("The tone is high.\nThe square is red.\n\nSo B.", 3),
    "numbering_only_with_continuation": ("1. First.\n   still first\n2. Second.\n\n3. Third.", 3),
    "marker_inside_a_line": ("one<end_of_step> two<end_of_step>three", 3),
    "empty_steps_and_trailing_blanks": ("<end_of_step>a<end_of_step><end_of_step>\n b<end_of_step>\n\n", 2),
    "trailing_answer_without_marker": ("1. A tone.<end_of_step>\n2. A square.<end_of_step>\nThe answer is C.", 3),
    "leading_blank_lines": ("\n\n1. x\n2. y", 2),
    "single_line": ("The answer is A.", 1),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_segments_join_back_and_match_split_steps(name):
    text, count = CASES[name]
    segments = step_segments(text)
    assert "".join(segments) == text
    assert [segment_text(s) for s in segments] == split_steps(text)
    assert len(segments) == count


def test_demo_steps_read_as_numbered():
    steps = split_steps(DEMO_BOLD)
    assert steps[0] == "1. The question asks about the legend when he is hit by the turret."
    assert steps[-1] == "5. Therefore, the answer is **D. Fire**."
    assert split_steps(DEMO_CHOICE)[-1] == "5. The answer is B"


def test_marked_text_keeps_the_marker_with_its_step():
    segments = step_segments(MARKED)
    assert segments[0].endswith("<end_of_step>") and segments[1].startswith("\n2. ")
    assert segments[-1] == "\n3. The answer is B.<end_of_step>"


def test_empty_text_has_no_steps():
    assert step_segments("") == [] and step_segments("  \n ") == [] and split_steps("") == []


def test_segment_ids_equal_whole_text_ids_for_marked_text(tokenizer):
    """Cutting after each marker leaves the tokenisation of the whole text unchanged."""
    ids, spans = path_ids(tokenizer, step_segments(MARKED), ends_turn=True, im_end_id=2)
    assert ids == piece_ids(tokenizer, MARKED) + [2]
    assert spans[0][0] == 0 and spans[-1][1] == len(ids)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # spans partition the ids
    assert ids[spans[-1][1] - 1] == 2  # <|im_end|> belongs to the last step


def test_unfinished_path_has_no_im_end(tokenizer):
    ids, spans = path_ids(tokenizer, step_segments(MARKED), ends_turn=False, im_end_id=2)
    assert 2 not in ids and spans[-1][1] == len(ids)


def test_same_step_ignores_numbering_and_whitespace():
    assert same_step("\n2. A red square.<end_of_step>", "3.  A red   square.<end_of_step>")
    assert not same_step("2. A red square.<end_of_step>", "2. A blue square.<end_of_step>")
