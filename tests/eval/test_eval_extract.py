"""Answer extraction on hand-written answer texts of the forms real models produce.

The rule under test (salmonn_o1.eval.extract): the LAST conclusion phrase
("answer is", "Answer:", "final answer", "I choose") wins and the first answer
after it is read (an option's text, else a letter, else the single option the
phrase names); without one, a text that is nothing but an answer; else a last
line opening with a letter. "A or B", two different options, letters beyond
the options and free text with no conclusion give None (scored wrong, listed).
"""

from __future__ import annotations

import pytest

from salmonn_o1.eval.extract import clean, extract_answer, open_answer_matches

ELEMENTS = ["Water", "Fire", "Earth", "Wind"]
SHAPES = ["a red square", "a blue circle", "a green triangle", "a yellow cross"]
SOUNDS = ["the low tone", "the high tone", "the buzz", "the chirp"]
COUNTS = ["0", "1", "2", "3"]
ANIMALS = ["cat", "dog", "bird", "fish", "horse"]
REASONING = (
    "1. The high tone plays from 3.0 s to 4.0 s.<end_of_step>\n"
    "2. From 2.5 s to 5.0 s the screen shows the blue circle.<end_of_step>\n"
    "3. The red square is on screen from 0.0 s to 2.5 s, not during the high tone.<end_of_step>\n"
    "4. The blue circle is option B.<end_of_step>\n"
    "5. The answer is B.<end_of_step>"
)

CHOICE_CASES = [
    # --- the letter after a conclusion phrase
    ("The answer is B", ELEMENTS, "B"),
    ("The answer is B.", ELEMENTS, "B"),
    ("the answer is d", ELEMENTS, "D"),
    ("5. Therefore, the answer is B.", ELEMENTS, "B"),
    ("Answer: (C)", ELEMENTS, "C"),
    ("Answer: [D]", ELEMENTS, "D"),
    ("answer: b", ELEMENTS, "B"),
    ("Answer B", ELEMENTS, "B"),
    ("The answer is: B", ELEMENTS, "B"),
    ("the answer is (a).", ELEMENTS, "A"),
    ("Final answer: B", ELEMENTS, "B"),
    ("**Answer:** C", ELEMENTS, "C"),
    ("**Answer: B**", ELEMENTS, "B"),
    ("My answer: D", ELEMENTS, "D"),
    ("The best answer is A.", ELEMENTS, "A"),
    ("The correct option is C.", ELEMENTS, "C"),
    ("I choose A.", ELEMENTS, "A"),
    ("Answer: B.<|im_end|>", ELEMENTS, "B"),
    ("The final answer is $\\boxed{C}$.", ELEMENTS, "C"),
    ("The answer is B because the fire is shown.", ELEMENTS, "B"),
    ("There are 3 beeps, so the answer is D.", COUNTS, "D"),
    ("The answer is E.", ANIMALS, "E"),
    # --- letter with its option text, markdown emphasis
    ("**D. Fire**", ELEMENTS, "D"),  # the letter is taken as stated even when its text is another option's
    ("Answer: D. Wind", ELEMENTS, "D"),
    ("The answer is **B. Fire**.", ELEMENTS, "B"),
    ("(B) Fire", ELEMENTS, "B"),
    ("B. Fire", ELEMENTS, "B"),
    ("D - Wind", ELEMENTS, "D"),
    # --- a bare letter
    ("C", ELEMENTS, "C"),
    ("c", ELEMENTS, "C"),
    ("c.", ELEMENTS, "C"),
    ("(C)", ELEMENTS, "C"),
    ("B)", ELEMENTS, "B"),
    ("[A]", ELEMENTS, "A"),
    ("Option B", ELEMENTS, "B"),
    ("E", ANIMALS, "E"),
    ("B, because fire is shown.", ELEMENTS, "B"),
    ("Answer:\nB", ELEMENTS, "B"),
    # --- an option's text instead of its letter
    ("The answer is Fire.", ELEMENTS, "B"),
    ("Fire", ELEMENTS, "B"),
    ("fire.", ELEMENTS, "B"),
    ("Fire!", ELEMENTS, "B"),
    ("The answer is a blue circle.", SHAPES, "B"),
    ("the answer is a red square", SHAPES, "A"),
    ("The answer is the blue circle.", SHAPES, "B"),
    ("A blue circle.", SHAPES, "B"),  # the option's text, not option A
    ("Blue circle", SHAPES, "B"),
    ("a green triangle", SHAPES, "C"),
    ("The high tone.", SOUNDS, "B"),
    ("The answer is the buzz.", SOUNDS, "C"),
    ("The dog.", ANIMALS, "B"),
    ("The answer is 2.", COUNTS, "C"),  # option text "2" is option C
    ("2", COUNTS, "C"),
    ("Answer: 0", COUNTS, "A"),
    ("The answer is a blue circle, not the red square.", SHAPES, "B"),
    ("The water appears first, then fire. The answer is Water.", ELEMENTS, "A"),
    # --- several letters: the final conclusion wins
    ("It's option A, no wait, the answer is C.", ELEMENTS, "C"),
    ("Looking at options A and C, the answer is A.", ELEMENTS, "A"),
    ("1. First I considered A.\n2. But B fits.\n3. So the answer is B.", ELEMENTS, "B"),
    ("The answer is B.\nThe answer is C.", ELEMENTS, "C"),
    ("I think the answer is B, but it could be C.", ELEMENTS, "B"),
    (REASONING, SHAPES, "B"),
    # --- no single answer: None
    ("A or B", ELEMENTS, None),
    ("A and C", ELEMENTS, None),
    ("B/C", ELEMENTS, None),
    ("The answer is A or B.", ELEMENTS, None),
    ("The answer is Fire or Water.", ELEMENTS, None),
    ("Either A or C could be right.", ELEMENTS, None),
    ("The answer is E.", ELEMENTS, None),  # beyond the four options
    ("I am not sure.", ELEMENTS, None),
    ("The answer is not clear.", ELEMENTS, None),
    ("A red square appears first.", ELEMENTS, None),  # the article, not option A
    ("Based on the video, the dog appears.", ANIMALS, None),  # free text without a conclusion
    ("", ELEMENTS, None),
    ("   \n ", ELEMENTS, None),
    ("<|im_end|>", ELEMENTS, None),
    (None, ELEMENTS, None),
]

YES_NO_CASES = [
    ("So the answer is YES.", "YES"),
    ("The answer is no", "NO"),
    ("Answer: NO", "NO"),
    ("Answer: Yes.", "YES"),
    ("The answer is Yes", "YES"),
    ("The answer is **NO**.", "NO"),
    ("The answer is YES, not NO.", "YES"),
    ("YES", "YES"),
    ("yes", "YES"),
    ("No.", "NO"),
    ("Yes, it is.", "YES"),
    ("No, the video is not manipulated.", "NO"),
    ("The video is manipulated: YES", "YES"),
    ("Is this manipulated? I'd say no.", "NO"),
    (
        "1. The red square moves from 1.0 s to 4.0 s.<end_of_step>\n"
        "2. At 2.5 s it jumps to another place without crossing the space between.<end_of_step>\n"
        "3. So the video is manipulated.<end_of_step>\n4. The answer is YES.<end_of_step>",
        "YES",
    ),
    ("I cannot tell.", None),
    ("Yes or no? Hard to say.", None),
    ("Not manipulated.", None),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize("text,options,expected", CHOICE_CASES)
def test_choice_extraction(text, options, expected):
    assert extract_answer(text, options, "choice") == expected


@pytest.mark.parametrize("text,expected", YES_NO_CASES)
def test_yes_no_extraction(text, expected):
    assert extract_answer(text, [], "yes_no") == expected


def test_there_are_at_least_forty_hand_written_cases():
    assert len(CHOICE_CASES) + len(YES_NO_CASES) >= 40
    assert sum(expected is None for _, _, expected in CHOICE_CASES) >= 10


def test_letters_without_options_allow_a_to_e():
    assert extract_answer("The answer is E.", None) == "E"
    assert extract_answer("The answer is F.", None) is None


def test_open_answers():
    assert extract_answer("1. Look.\n2. So the answer is a red square.", kind="open") == "a red square"
    assert extract_answer("Dogs", kind="open") == "Dogs"
    assert extract_answer("", kind="open") is None
    assert open_answer_matches("a red square", "red square")
    assert open_answer_matches("Red Square!", "red square")
    assert not open_answer_matches("a blue square", "red square")
    assert not open_answer_matches("anything", "")


def test_unknown_kind_is_an_error():
    with pytest.raises(ValueError, match="unknown answer kind"):
        extract_answer("B", ["x", "y"], kind="number")


def test_clean_drops_markers_and_emphasis():
    assert clean("1. **Step**<end_of_step>2. `B`<|im_end|>") == "1. Step\n2. B"
    assert clean("$\\boxed{D}$") == "D"


def test_every_avr_synth_gold_solution_extracts_to_its_answer():
    from salmonn_o1.data.synthetic import generate_item

    for index in range(120):  # 20 per family, every answer letter and YES/NO
        item = generate_item("dev", index).item
        assert extract_answer(item.gold_reasoning(), item.options, item.kind) == item.answer, item.id
        assert extract_answer(f"The answer is {item.answer}.", item.options, item.kind) == item.answer
        if item.options:  # without the final step, "... is option B." still concludes
            steps = "\n".join(f"{i}. {step}" for i, step in enumerate(item.steps, start=1))
            assert extract_answer(steps, item.options, "choice") == item.answer, item.id
