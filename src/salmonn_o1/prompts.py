"""The released model's prompt wording, in one place.

Everything that builds a question for the model (processor, inference, data
generators, training) goes through these functions so the wording the model
was trained on and the wording it is asked with never drift apart.
"""

from __future__ import annotations

from salmonn_o1.errors import SalmonnError

SYSTEM_PROMPT = "You are a helpful assistant."
MEDIA_TOKEN = "<image>"  # the single media placeholder of the released chat format
END_OF_STEP = "<end_of_step>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"

REASONING_INSTRUCTION = "Answer the question step by step. Output each thinking step."
STEP_MARKED_INSTRUCTION = (
    "Answer the question step by step. Output each thinking step. "
    f"Mark the end of each step with {END_OF_STEP}."
)

# Named reasoning instructions. "release": the wording of the released model's README demos (the
# only prompting of the released 7B model its authors published); "step-marked": ours, which also
# asks for the <end_of_step> marker that step splitting and pDPO rely on. A model's config names
# the one it was trained with (`reasoning_prompt`); any other text is used as it is.
REASONING_PROMPTS = {
    "release": REASONING_INSTRUCTION,
    "step-marked": STEP_MARKED_INSTRUCTION,
}
DEFAULT_REASONING_PROMPT = "step-marked"  # our models' wording; released-layout checkpoints use "release"
DIRECT_INSTRUCTION = "Answer with the option's letter from the given choices directly."
DIRECT_YES_NO_INSTRUCTION = "Answer YES or NO directly."
FINAL_ANSWER_QUESTION = "What is the final answer to the question based on your thinking steps?"
SYNTHETIC_VIDEO_QUESTION = (
    "An AI-generated video contains unnatural distorted things, such as distorted hands or faces. "
    "Is the given video AI generated? Answer YES or NO."
)

OPTION_LETTERS = "ABCDEFGHIJ"


def format_options(options: list[str]) -> str:
    """`A. text` lines, as the released demos list them after "Choose from:"."""
    lines = []
    for letter, text in zip(OPTION_LETTERS, options):
        text = text.strip()
        # Options that already carry their letter ("A. Fire") are kept as they are.
        if len(text) > 2 and text[0] == letter and text[1] in ".)":
            lines.append(text)
        else:
            lines.append(f"{letter}. {text}")
    return "\n".join(lines)


class PromptError(SalmonnError, ValueError):
    """A reasoning prompt that is neither a preset name nor usable text."""


def reasoning_instruction(prompt: str | None = None) -> str:
    """The instruction text for a preset name of `REASONING_PROMPTS` or a custom text (None: our default).

    Anything that is not a preset name is taken as the instruction itself, so a
    model trained with other wording can be asked in its own words.
    """
    if prompt is None:
        prompt = DEFAULT_REASONING_PROMPT
    if not isinstance(prompt, str) or not prompt.strip():
        raise PromptError(f"reasoning prompt {prompt!r}: give a preset ({', '.join(REASONING_PROMPTS)}) or "
                         "the instruction text")
    return REASONING_PROMPTS.get(prompt.strip(), prompt.strip())


def format_question(
    question: str,
    options: list[str] | None = None,
    reasoning: bool = True,
    step_marked: bool = True,
    prompt: str | None = None,
) -> str:
    """The user-turn text (without the media placeholder) for one question.

    `prompt` (a preset name or the text) chooses the reasoning instruction;
    without it `step_marked` chooses between the two presets: the marker
    after each step is the format our trained models use and the one pDPO
    splits on; the released 7B model was prompted without it.
    """
    text = question.strip()
    if options:
        text = f"{text} Choose from:\n{format_options(options)}"
    if reasoning:
        if prompt is None:
            prompt = "step-marked" if step_marked else "release"
        text = f"{text}\n{reasoning_instruction(prompt)}"
    elif options:
        text = f"{text}\n{DIRECT_INSTRUCTION}"
    elif _is_yes_no(question):
        text = f"{text}\n{DIRECT_YES_NO_INSTRUCTION}"
    return text


def _is_yes_no(question: str) -> bool:
    return "YES or NO" in question


def format_steps(steps: list[str], answer: str) -> str:
    """A gold reasoning target: numbered steps, each ended by `<end_of_step>`,
    the last one concluding "The answer is X."."""
    parts = [f"{i}. {step.strip()}{END_OF_STEP}" for i, step in enumerate(steps, start=1)]
    parts.append(f"{len(steps) + 1}. The answer is {answer}.{END_OF_STEP}")
    return "\n".join(parts)
