"""AVR-Synth's knobs, as data: difficulty is changed here, never in the generator code."""

from __future__ import annotations

from dataclasses import dataclass

FAMILIES = (
    "cross_modal_alignment",
    "cross_modal_counting",
    "temporal_order",
    "visual_only",
    "audio_only",
    "glitch_detection",
)
CROSS_MODAL_FAMILIES = ("cross_modal_alignment", "cross_modal_counting", "temporal_order")


@dataclass(frozen=True)
class SynthConfig:
    """Difficulty knobs of AVR-Synth.

    num_options: 4 or 5 choices (A-D / A-E); every clip shows at least
    num_options + 1 distinct shapes so distractors are always shapes that did
    appear, only at the wrong time. min/max_scenes: shapes per clip (raised to
    num_options + 1 when lower). min/max_duration: clip length in seconds
    (lengthened when the scenes do not fit). extra_sounds: how many distractor
    sounds (tones, buzz, chirp) each clip gets besides the one a question asks
    about. extra_beeps: distractor beeps in clips whose question is not about beeps.
    seed: a global seed; the clip seed is (seed, split offset + index).
    """

    num_options: int = 4
    min_scenes: int = 5
    max_scenes: int = 6
    min_duration: float = 6.0
    max_duration: float = 12.0
    extra_sounds: tuple[int, int] = (1, 2)
    extra_beeps: tuple[int, int] = (0, 3)
    families: tuple[str, ...] = FAMILIES
    seed: int = 0

    def __post_init__(self) -> None:
        if not 2 <= self.num_options <= 5:
            raise ValueError(f"num_options must be 2-5, got {self.num_options}")
        unknown = set(self.families) - set(FAMILIES)
        if unknown or not self.families:
            raise ValueError(f"unknown families {sorted(unknown)}; choose from {FAMILIES}")
        if self.min_scenes > self.max_scenes or self.min_duration > self.max_duration:
            raise ValueError("min_scenes/min_duration must not exceed their max")
