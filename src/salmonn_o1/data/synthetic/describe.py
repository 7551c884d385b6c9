"""Dense timeline descriptions of AVR-Synth clips: the perception-alignment task.

The paper aligns its encoders on captioning data before reasoning SFT. A
miniature model trained from scratch needs the same: a QA item gives one
grounded fact per clip, while a description grounds every shape and every
sound with its time, in the wording the reasoning steps use.
"""

from __future__ import annotations

from salmonn_o1.data.schema import Item
from salmonn_o1.data.synthetic.config import SynthConfig
from salmonn_o1.data.synthetic.dataset import SynthSample, generate_item
from salmonn_o1.data.synthetic.questions import fmt_time
from salmonn_o1.data.synthetic.timeline import Timeline

DESCRIBE_QUESTION = "Describe the video step by step: every shape on screen and every sound, with their times."
DESCRIBE_TASK = "describe"
TEXT_TASK = "text"  # the clip's question asked about its description, without media


def describe_steps(timeline: Timeline) -> list[str]:
    """One step per shape and per sound (a run of beeps is one step), in time order."""
    events: list[tuple[float, int, str]] = []
    for scene in timeline.scenes:
        events.append((scene.start, 0, f"The {scene.label} is visible from {fmt_time(scene.start)} to "
                                        f"{fmt_time(scene.end)}."))
    beeps: list[float] = []
    for sound in timeline.sounds:
        if sound.kind == "beep":
            beeps.append(sound.start)
            continue
        events.append((sound.start, 1, f"The {sound.kind} plays from {fmt_time(sound.start)} to "
                                       f"{fmt_time(sound.end)}."))
    runs: list[list[float]] = []
    for start in beeps:
        if runs and start - runs[-1][-1] <= 1.0:
            runs[-1].append(start)
        else:
            runs.append([start])
    for run in runs:
        times = ", ".join(fmt_time(t) for t in run)
        events.append((run[0], 1, f"Beeps start at {times}." if len(run) > 1 else f"A beep starts at {times}."))
    return [text for _, _, text in sorted(events)]


def describe_item(split: str, index: int) -> Item:
    """Clip `index` of `split` with the description task instead of its question."""
    return description_item(generate_item(split, index))


def description_item(sample: SynthSample) -> Item:
    """A generated clip with the description task instead of its question."""
    return Item(id=f"{sample.item.id}-describe", video=None, question=DESCRIBE_QUESTION, options=[], answer="",
                steps=describe_steps(sample.timeline), category=DESCRIBE_TASK, source=sample.item.source,
                extras={**sample.item.extras, "task": DESCRIBE_TASK})


def text_item(split: str, index: int, config: SynthConfig | None = None) -> Item:
    """Clip `index` of `split` as a text-only question: its description, then its question.

    The analogue of starting from a pretrained LLM: the reasoning over stated facts (find the
    sound the question names, copy its time, look up what was on screen then, map it to an
    option letter) is learnt from short text sequences, without media, many steps per second.
    The glitch family is not answerable from a description (it lists no motion); it is still
    asked, so its prior stays balanced.
    """
    return text_item_of(generate_item(split, index, config))


def text_item_of(sample: SynthSample) -> Item:
    """A generated clip as a text-only question (see `text_item`)."""
    description = " ".join(describe_steps(sample.timeline))
    item = sample.item
    return Item(id=f"{item.id}-text", video=None, question=f"The video: {description}\n{item.question}",
                options=item.options, answer=item.answer, steps=item.steps, category=item.category,
                source=item.source, extras={**item.extras, "task": TEXT_TASK})
