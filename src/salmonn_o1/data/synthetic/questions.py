"""AVR-Synth question families: each samples a timeline built for its question,
then computes the gold answer and the gold steps FROM THE TIMELINE (via the
query functions in timeline.py), never from the template's intent.

Every family takes `target` (which letter, or 0=YES / 1=NO) so the dataset can
balance answers exactly, and arranges the clip so that a single modality (or
the text alone) says nothing about the answer: the asked-about shape or sound
is chosen uniformly, and distractors are shapes/sounds that did occur.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from salmonn_o1.data.synthetic.config import SynthConfig
from salmonn_o1.data.synthetic.timeline import (
    ANCHOR_SOUNDS,
    COLOURS,
    GRID,
    LISTED_SOUNDS,
    Scene,
    SlotBook,
    Sound,
    Timeline,
    count_sounds_within,
    distinct_labels,
    find_anomalies,
    partition,
    random_path,
    scene_at,
    scenes_during,
    slots_of,
    sound_at,
    sounds_of,
)
from salmonn_o1.prompts import OPTION_LETTERS

GLITCH_QUESTION = "Is this video manipulated? Answer YES or NO."
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")
GLITCH_KINDS = ("teleport", "colour_change", "early_sound")
THUD_LOOKBACK = 1.5  # seconds before the thud that glitch_checks reads the frame at


@dataclass
class Question:
    """A timeline with its question, options (no letters), gold answer and gold steps."""

    timeline: Timeline
    question: str
    options: list[str]
    answer: str
    steps: list[str]
    extras: dict[str, Any] = field(default_factory=dict)


LOOKUP_STEPS = "lookup_steps"  # extras key: the cross-modal families' steps as look-ups by time
# extras key: counting and glitch detection as checks of looked-up facts (`counting_checks`,
# `glitch_checks`); the other families' look-up steps stay as they are
CHECK_STEPS = "check_steps"


def fmt_time(t: float) -> str:
    """Times in steps are on the 0.5 s grid, written "3.5 s"."""
    return f"{round(t / GRID) * GRID:.1f} s"


def screen_at(timeline: Timeline, t: float) -> str:
    """The step that reads the frame at time t: "At 9.0 s the screen shows the green square."

    Why this wording: each frame's time is written before its picture in the media ("9.0", then
    the frame), so a step that has just written the time can find the frame by matching those
    words (the recall circuit's induction head), where "the shape whose span contains 9.0 s"
    is a comparison of times that the miniature LLM does not learn
    (src/salmonn_o1_mini/docs/notebook.md).
    """
    scene = scene_at(timeline, t)
    shown = f"the {scene.label}" if scene is not None else "nothing"
    return f"At {fmt_time(t)} the screen shows {shown}."


SCREEN_STEP = re.compile(r"At (\d+\.\d) s the screen shows (?:the (\w+ \w+)|nothing)\.")


def read_screen_step(text: str) -> tuple[float, str | None] | None:
    """The inverse of `screen_at` on a (generated) step: (time, shape label or None), or None if the
    text reads no frame. For checking a model's look-ups against the clip's timeline."""
    match = SCREEN_STEP.search(text)
    return (float(match[1]), match[2]) if match else None


def shape_order_step(timeline: Timeline) -> str:
    """The shape-order family's first step, also temporal order's first look-up step."""
    return f"The shapes appear in this order: {', '.join(f'the {s.label}' for s in timeline.scenes)}."


def arrange(rng: np.random.Generator, answer: str, distractors: list[str], target: int) -> list[str]:
    """Options with the answer at index `target` and the distractors shuffled around it."""
    others = [distractors[i] for i in rng.permutation(len(distractors))]
    return others[:target] + [answer] + others[target:]


def letter_of(options: list[str], text: str) -> str:
    return OPTION_LETTERS[options.index(text)]


def _article(label: str) -> str:
    return f"a {label}"


# ----------------------------------------------------------------------------- layout


def _layout(
    rng: np.random.Generator, config: SynthConfig, mins: dict[int, int] | None = None, n: int | None = None
) -> tuple[int, list[Scene]]:
    """Sample the number of scenes, the clip length and the scenes (distinct labels,
    half of them moving). Returns (total slots, scenes)."""
    if n is None:
        n = int(rng.integers(config.min_scenes, config.max_scenes + 1))
        n = max(n, config.num_options + 1)
    minimum = [3] * n
    for i, m in (mins or {}).items():
        minimum[i] = max(minimum[i], m)
    lo, hi = int(config.min_duration / GRID), int(config.max_duration / GRID)
    total = max(int(rng.integers(lo, hi + 1)), sum(minimum) + 1)
    spans = partition(rng, total, minimum)
    scenes = []
    for (colour, shape), (a, b) in zip(distinct_labels(rng, n), spans):
        start_pos, end_pos = random_path(rng, moving=bool(rng.random() < 0.5))
        scenes.append(Scene(colour, shape, a * GRID, b * GRID, start_pos, end_pos))
    return total, scenes


def _slots(scene: Scene) -> tuple[int, int]:
    return int(round(scene.start / GRID)), int(round(scene.end / GRID))


def _add_distractor_sounds(
    rng: np.random.Generator, config: SynthConfig, book: SlotBook, exclude: set[str], beeps: bool = True
) -> list[Sound]:
    """A few other sounds anywhere free: distinct anchor kinds not in `exclude`, plus beeps."""
    sounds = []
    kinds = [k for k in ANCHOR_SOUNDS if k not in exclude]
    count = int(rng.integers(config.extra_sounds[0], config.extra_sounds[1] + 1))
    for kind in rng.permutation(kinds)[:count]:
        slot = book.place(rng, slots_of(str(kind)))
        if slot is not None:
            sounds.append(sound_at(str(kind), slot))
    if beeps:
        for _ in range(int(rng.integers(config.extra_beeps[0], config.extra_beeps[1] + 1))):
            slot = book.place(rng, 1)
            if slot is not None:
                sounds.append(sound_at("beep", slot))
    return sounds


# ----------------------------------------------------------------------------- families


def cross_modal_alignment(rng: np.random.Generator, config: SynthConfig, target: int) -> Question:
    """"What was on screen when the high tone played?" — the sound's time picks the shape."""
    total, scenes = _layout(rng, config)
    book = SlotBook(total)
    chosen = scenes[int(rng.integers(len(scenes)))]
    kind = str(rng.choice(ANCHOR_SOUNDS))
    a, b = _slots(chosen)
    slot = book.place(rng, slots_of(kind), lo=a, hi=b - slots_of(kind))
    assert slot is not None
    sounds = [sound_at(kind, slot)] + _add_distractor_sounds(rng, config, book, {kind})
    timeline = Timeline(total * GRID, scenes, sounds)

    (sound,) = sounds_of(timeline, kind)
    (shown,) = scenes_during(timeline, sound.start, sound.end)
    others = [s for s in timeline.scenes if s is not shown]
    distractors = [others[i] for i in rng.choice(len(others), config.num_options - 1, replace=False)]
    options = arrange(rng, _article(shown.label), [_article(s.label) for s in distractors], target)
    letter = letter_of(options, _article(shown.label))
    decoy = distractors[0]
    steps = [
        f"The {kind} plays from {fmt_time(sound.start)} to {fmt_time(sound.end)}.",
        f"From {fmt_time(shown.start)} to {fmt_time(shown.end)} the screen shows the {shown.label}.",
        f"The {decoy.label} is on screen from {fmt_time(decoy.start)} to {fmt_time(decoy.end)}, not during the {kind}.",
        f"The {shown.label} is option {letter}.",
    ]
    lookup = [steps[0], screen_at(timeline, sound.start), steps[-1]]
    return Question(timeline, f"What was on screen when the {kind} played?", options, letter, steps,
                    {LOOKUP_STEPS: lookup})


def cross_modal_counting(rng: np.random.Generator, config: SynthConfig, target: int) -> Question:
    """"How many beeps while the red square was visible?" — options 0..num_options-1.

    Neither modality alone may reveal the count, so the beeps are laid out as a
    one-time pad over the shapes: every shape gets its own train of beeps, the
    per-shape counts are a random arrangement of a multiset M that holds each
    of 0..num_options-1 once plus one independent uniform value per extra shape,
    and the asked shape (drawn uniformly) takes the count equal to `target`.
    For any arrangement s of M, P(s | target) = prod(m_v!) / n! whatever the
    target, so the sound track (how many beeps, how they cluster, the densest
    run) has the same distribution for every answer; the picture (layout, which
    shape is asked about) is drawn without looking at the target. Only the
    beeps heard *while the asked shape is on screen* give the answer.

    (The earlier design put `target` beeps inside the asked shape's window and
    scattered the rest over the whole clip, so the densest burst of beeps told
    the count without the picture: src/salmonn_o1_mini/docs/notebook.md.)
    """
    k = config.num_options
    n = max(int(rng.integers(config.min_scenes, config.max_scenes + 1)), k + 1)
    # every shape must hold the largest count (one beep per 0.5 s slot)
    total, scenes = _layout(rng, config, mins={i: k - 1 for i in range(n)}, n=n)
    index = int(rng.integers(n))
    chosen = scenes[index]
    pool = list(range(k)) + [int(v) for v in rng.integers(0, k, size=n - k)]
    pool.remove(target)
    rest_counts = [pool[i] for i in rng.permutation(len(pool))]
    counts = rest_counts[:index] + [target] + rest_counts[index:]
    book = SlotBook(total)
    sounds = []
    for scene, beeps in zip(scenes, counts):
        a, b = _slots(scene)
        for slot in sorted(int(s) for s in rng.choice(np.arange(a, b), beeps, replace=False)):
            book.take(slot, 1)
            sounds.append(sound_at("beep", slot))
    sounds += _add_distractor_sounds(rng, config, book, set(), beeps=False)
    timeline = Timeline(total * GRID, scenes, sounds)

    counted = count_sounds_within(timeline, "beep", chosen.start, chosen.end)
    count = len(counted)
    rest = len(sounds_of(timeline, "beep")) - count
    options = [str(v) for v in range(config.num_options)]
    letter = letter_of(options, str(count))
    steps = [f"The {chosen.label} is visible from {fmt_time(chosen.start)} to {fmt_time(chosen.end)}."]
    if counted:
        times = ", ".join(fmt_time(s.start) for s in counted)
        steps.append(f"Beeps start at {times} while it is visible.")
    else:
        steps.append("No beep plays while it is visible.")
    if rest:
        steps.append(f"The other {rest} {'beep plays' if rest == 1 else 'beeps play'} when it is not visible.")
    noun = "beep plays" if count == 1 else "beeps play"
    conclusion = [f"So {count} {noun} while the {chosen.label} is visible.", f"{count} is option {letter}."]
    steps += conclusion
    beeps = sounds_of(timeline, "beep")
    lookup = [f"Beeps start at {', '.join(fmt_time(s.start) for s in beeps)}."]
    lookup += [screen_at(timeline, s.start) for s in beeps] + conclusion
    question = f"How many beeps played while the {chosen.label} was visible?"
    checks = counting_checks(timeline, chosen, letter)
    return Question(timeline, question, options, letter, steps, {LOOKUP_STEPS: lookup, CHECK_STEPS: checks})


def counting_checks(timeline: Timeline, asked: Scene, letter: str) -> list[str]:
    """Counting as look-ups with a running count: the beep times, then the frame at each beep,
    where a frame of the asked shape also says how many such beeps that makes.

    Why: with the plain look-up steps the concluded count disagreed with the model's own screen
    steps in most answers (the count is a tally over up to a dozen earlier steps, which the
    4-layer LLM does not learn). Here each step only adds one to the last count it wrote, and
    the conclusion copies the last count.
    """
    beeps = sounds_of(timeline, "beep")
    steps = [f"Beeps start at {', '.join(fmt_time(s.start) for s in beeps)}."]
    count = 0
    for beep in beeps:
        read = screen_at(timeline, beep.start)
        scene = scene_at(timeline, beep.start)
        if scene is asked:
            count += 1
            read = f"{read[:-1]}: that makes {count}."
        steps.append(read)
    noun = "beep plays" if count == 1 else "beeps play"
    return steps + [f"So {count} {noun} while the {asked.label} is visible.", f"{count} is option {letter}."]


def temporal_order(rng: np.random.Generator, config: SynthConfig, target: int) -> Question:
    """"Which shape appeared next after the buzz played?" — order across modalities.
    Options never include the first shape (it cannot come after anything), so
    knowing the picture alone does not narrow them."""
    total, scenes = _layout(rng, config)
    book = SlotBook(total)
    during = scenes[int(rng.integers(len(scenes) - 1))]
    kind = str(rng.choice(ANCHOR_SOUNDS))
    a, b = _slots(during)
    slot = book.place(rng, slots_of(kind), lo=a, hi=b - slots_of(kind))
    assert slot is not None
    sounds = [sound_at(kind, slot)] + _add_distractor_sounds(rng, config, book, {kind})
    timeline = Timeline(total * GRID, scenes, sounds)

    (sound,) = sounds_of(timeline, kind)
    later = [s for s in timeline.scenes if s.start >= sound.end]
    following = later[0]
    current = scene_at(timeline, sound.start)
    candidates = [s for s in timeline.scenes[1:] if s is not following]
    distractors = [candidates[i] for i in rng.choice(len(candidates), config.num_options - 1, replace=False)]
    options = arrange(rng, _article(following.label), [_article(s.label) for s in distractors], target)
    letter = letter_of(options, _article(following.label))
    decoy = distractors[0]
    relation = "before" if decoy.start < sound.start else "later"
    steps = [
        f"The {kind} plays from {fmt_time(sound.start)} to {fmt_time(sound.end)}"
        + (f", while the {current.label} is on screen." if current else "."),
        f"The next shape to appear after that is the {following.label}, at {fmt_time(following.start)}.",
        f"The {decoy.label} appears at {fmt_time(decoy.start)}, which is {relation}.",
        f"The {following.label} is option {letter}.",
    ]
    assert current is not None and timeline.scenes[timeline.scenes.index(current) + 1] is following
    lookup = [
        shape_order_step(timeline),
        f"The {kind} plays from {fmt_time(sound.start)} to {fmt_time(sound.end)}.",
        screen_at(timeline, sound.start),
        f"After the {current.label}, the {following.label} appears.",
        steps[-1],
    ]
    return Question(timeline, f"Which shape appeared next after the {kind} played?", options, letter, steps,
                    {LOOKUP_STEPS: lookup})


def visual_only(rng: np.random.Generator, config: SynthConfig, target: int) -> Question:
    """Control: "Which shape appeared third?" needs the picture only."""
    total, scenes = _layout(rng, config)
    book = SlotBook(total)
    sounds = _add_distractor_sounds(rng, config, book, set())
    timeline = Timeline(total * GRID, scenes, sounds)
    position = int(rng.integers(len(timeline.scenes)))
    last = position == len(timeline.scenes) - 1
    ordinal = "last" if last else ORDINALS[position]
    chosen = timeline.scenes[position]
    others = [s for s in timeline.scenes if s is not chosen]
    distractors = [others[i] for i in rng.choice(len(others), config.num_options - 1, replace=False)]
    options = arrange(rng, _article(chosen.label), [_article(s.label) for s in distractors], target)
    letter = letter_of(options, _article(chosen.label))
    steps = [
        shape_order_step(timeline),
        f"The {ordinal} one is the {chosen.label}, from {fmt_time(chosen.start)} to {fmt_time(chosen.end)}.",
        f"The {chosen.label} is option {letter}.",
    ]
    return Question(timeline, f"Which shape appeared {ordinal}?", options, letter, steps)


def audio_only(rng: np.random.Generator, config: SynthConfig, target: int) -> Question:
    """Control: "Which sound played second?" needs the sound track only. The clip
    plays exactly the num_options listed sounds, once each, in random order."""
    total, scenes = _layout(rng, config)
    kinds = [str(k) for k in rng.permutation(LISTED_SOUNDS)[: config.num_options]]
    spans = partition(rng, total, [slots_of(k) + 1 for k in kinds])  # +1: a little silence after each
    sounds = [sound_at(kind, a) for kind, (a, _) in zip(kinds, spans)]
    timeline = Timeline(total * GRID, scenes, sounds)
    position = int(rng.integers(len(timeline.sounds)))
    last = position == len(timeline.sounds) - 1
    ordinal = "last" if last else ORDINALS[position]
    chosen = timeline.sounds[position]
    others = [s.kind for s in timeline.sounds if s is not chosen]
    options = arrange(rng, f"the {chosen.kind}", [f"the {k}" for k in others], target)
    letter = letter_of(options, f"the {chosen.kind}")
    order = ", ".join(f"the {s.kind}" for s in timeline.sounds)
    steps = [
        f"The sounds play in this order: {order}.",
        f"The {ordinal} one is the {chosen.kind}, at {fmt_time(chosen.start)}.",
        f"The {chosen.kind} is option {letter}.",
    ]
    return Question(timeline, f"Which sound played {ordinal}?", options, letter, steps)


def glitch_detection(rng: np.random.Generator, config: SynthConfig, target: int) -> Question:
    """"Is this video manipulated?" — the analogue of synthetic-video detection.
    Every clip has moving shapes and a falling shape whose landing makes a thud;
    with target 0 (YES) one physically impossible event is planted: a shape
    teleports, changes colour mid-motion, or the thud comes before the landing."""
    n = max(int(rng.integers(config.min_scenes, config.max_scenes + 1)), config.num_options + 1)
    drop_index = int(rng.integers(n))
    total, scenes = _layout(rng, config, mins={drop_index: 5}, n=n)
    # The falling shape: lands 1.5 or 2 s after it appears and rests at least 0.5 s.
    drop = scenes[drop_index]
    fall = float(rng.choice([1.5, 2.0]))
    x = float(rng.uniform(0.3, 0.7))
    drop = Scene(drop.colour, drop.shape, drop.start, drop.end, (x, 0.25), (x, 0.75), impact=drop.start + fall)
    scenes[drop_index] = drop
    manipulated = target == 0
    glitch = str(rng.choice(GLITCH_KINDS)) if manipulated else None
    if glitch in ("teleport", "colour_change"):
        candidates = [i for i in range(n) if i != drop_index]
        i = int(rng.choice(candidates))
        s = scenes[i]
        start_pos, end_pos = random_path(rng, moving=True)
        a, b = _slots(s)
        when = float(rng.integers(a + 1, b)) * GRID
        if glitch == "teleport":
            frac = (when - s.start) / (s.end - s.start)
            x_at = start_pos[0] + frac * (end_pos[0] - start_pos[0])
            jump = (-0.3 if x_at > 0.5 else 0.3, 0.0)
            scenes[i] = Scene(s.colour, s.shape, s.start, s.end, start_pos, end_pos, None, glitch, when, None, jump)
        else:
            new = str(rng.choice([c for c in COLOURS if c != s.colour]))
            scenes[i] = Scene(s.colour, s.shape, s.start, s.end, start_pos, end_pos, None, glitch, when, new)
    book = SlotBook(total)
    thud_slot = int(round(drop.impact / GRID)) - (2 if glitch == "early_sound" else 0)
    book.take(thud_slot, 1)
    sounds = [sound_at("thud", thud_slot)] + _add_distractor_sounds(rng, config, book, set())
    timeline = Timeline(total * GRID, scenes, sounds)

    anomalies = find_anomalies(timeline)
    answer = "YES" if anomalies else "NO"
    if not anomalies:
        (thud,) = sounds_of(timeline, "thud")
        steps = [
            f"The {drop.label} falls and lands at the bottom at {fmt_time(drop.impact)}.",
            f"The thud plays at {fmt_time(thud.start)}, just when it lands.",
            "Every shape moves smoothly and keeps its colour.",
            "Nothing impossible happens, so the video is not manipulated.",
        ]
    else:
        kind, scene, when = anomalies[0]
        if kind == "teleport":
            steps = [
                f"The {scene.label} moves from {fmt_time(scene.start)} to {fmt_time(scene.end)}.",
                f"At {fmt_time(when)} it jumps to another place without crossing the space between.",
                "A real object cannot jump like that.",
            ]
        elif kind == "colour_change":
            steps = [
                f"The {scene.label} moves from {fmt_time(scene.start)} to {fmt_time(scene.end)}.",
                f"At {fmt_time(when)} it turns {scene.colour_at(when)} while it is moving.",
                "A real object does not change colour like that.",
            ]
        else:
            steps = [
                f"The {scene.label} falls and lands at the bottom at {fmt_time(scene.impact or 0.0)}.",
                f"The thud plays at {fmt_time(when)}, before the {scene.shape} lands.",
                "A sound cannot come before its cause.",
            ]
        steps.append("So the video is manipulated.")
    return Question(timeline, GLITCH_QUESTION, [], answer, steps,
                    {"glitch": glitch, CHECK_STEPS: glitch_checks(timeline, drop, anomalies)})


def glitch_checks(timeline: Timeline, drop: Scene, anomalies: list[tuple[str, Scene, float]]) -> list[str]:
    """Glitch detection as checks: the thud looked up, the frame at its time read (the falling
    shape) and the frame `THUD_LOOKBACK` seconds earlier read; if that earlier frame does not show
    the falling shape, it appeared too late to have landed ("the thud comes before it lands").
    Then motion and colour.

    Why: every fall takes 1.5 or 2 s and an early thud comes 1 s before the landing, so the
    falling shape is on screen 1.5 s before a true thud and not yet on screen before an early
    one. Both reads are the frame-at-a-time look-up the miniature model does well; the verdict
    only asks whether the two reads name the same shape, and starts by naming it. (Reading the
    shape's height in one frame was tried first: the model read "at the bottom" every time.)
    Jumps and colour changes have no sound to anchor them, so their steps stay as in the gold
    format.
    """
    (thud,) = sounds_of(timeline, "thud")
    before = thud.start - THUD_LOOKBACK
    steps = [f"The thud plays at {fmt_time(thud.start)}.", screen_at(timeline, thud.start)]
    steps.append(screen_at(timeline, before) if before >= 0 else
                 f"The clip starts less than {THUD_LOOKBACK} s before the thud.")
    if any(kind == "early_sound" for kind, _, _ in anomalies):
        return steps + [f"The {drop.label} is not on the screen {THUD_LOOKBACK} s before the thud: "
                        "the thud comes before it lands.",
                        "A sound cannot come before its cause.", "So the video is manipulated."]
    steps.append(f"The {drop.label} is on the screen {THUD_LOOKBACK} s before the thud: "
                 "the thud comes when it lands.")
    others = [(kind, scene, when) for kind, scene, when in anomalies if kind != "early_sound"]
    if not others:
        return steps + ["Every shape moves smoothly and keeps its colour.",
                        "Nothing impossible happens, so the video is not manipulated."]
    kind, scene, when = others[0]
    if kind == "teleport":
        steps += [f"At {fmt_time(when)} the {scene.label} jumps to another place without crossing the space between.",
                  "A real object cannot jump like that."]
    else:
        steps += [f"At {fmt_time(when)} the {scene.label} turns {scene.colour_at(when)} while it is moving.",
                  "A real object does not change colour like that."]
    return steps + ["So the video is manipulated."]


FAMILY_BUILDERS: dict[str, Callable[[np.random.Generator, SynthConfig, int], Question]] = {
    "cross_modal_alignment": cross_modal_alignment,
    "cross_modal_counting": cross_modal_counting,
    "temporal_order": temporal_order,
    "visual_only": visual_only,
    "audio_only": audio_only,
    "glitch_detection": glitch_detection,
}
