"""The AVR-Synth world: a clip is a timeline of scenes (one coloured shape on
screen at a time) and sound events, on a 0.5 s grid.

Everything a question asks is computed from a `Timeline` by the query
functions at the bottom, and everything the renderer draws comes from the
same object, so questions and pixels cannot disagree. Times live on a 0.5 s
grid (the model samples frames at 2 fps), which also keeps the gold steps'
numbers few and learnable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

GRID = 0.5  # seconds per slot

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 245),
    "yellow": (245, 220, 40),
    "purple": (170, 60, 210),
    "white": (240, 240, 240),
}
SHAPES = ("square", "circle", "triangle", "cross")

# Sound kinds: (seconds long, dominant frequency in Hz used by the renderer and the tests).
SOUNDS: dict[str, tuple[float, float]] = {
    "low tone": (1.0, 330.0),
    "high tone": (1.0, 1320.0),
    "buzz": (1.0, 150.0),
    "chirp": (1.0, 0.0),  # a rising sweep: no single pitch
    "beep": (0.2, 2000.0),
    "thud": (0.4, 90.0),
}
ANCHOR_SOUNDS = ("low tone", "high tone", "buzz", "chirp")  # the 1 s sounds questions refer to
LISTED_SOUNDS = ("low tone", "high tone", "buzz", "chirp", "beep")  # the audio-only family's options

DROP_TOP, DROP_BOTTOM = 0.25, 0.75  # centre heights (0 top, 1 bottom) of a falling shape


@dataclass(frozen=True)
class Scene:
    """One shape on screen over [start, end), moving linearly from `start_pos` to `end_pos`.

    A drop falls straight down from DROP_TOP to DROP_BOTTOM, lands at `impact`
    and rests there. Glitches (only in manipulated clips): "teleport" shifts the
    position by `jump` from `glitch_time` on; "colour_change" switches to
    `glitch_colour` from `glitch_time` on.
    """

    colour: str
    shape: str
    start: float
    end: float
    start_pos: tuple[float, float] = (0.5, 0.5)
    end_pos: tuple[float, float] = (0.5, 0.5)
    impact: float | None = None
    glitch: str | None = None
    glitch_time: float | None = None
    glitch_colour: str | None = None
    jump: tuple[float, float] = (0.0, 0.0)

    @property
    def label(self) -> str:
        return f"{self.colour} {self.shape}"

    @property
    def moves(self) -> bool:
        return self.impact is not None or self.start_pos != self.end_pos

    def position(self, t: float) -> tuple[float, float]:
        """Centre (x, y), each in 0..1, at time t."""
        if self.impact is not None:
            x = self.start_pos[0]
            frac = min(max((t - self.start) / (self.impact - self.start), 0.0), 1.0)
            y = DROP_TOP + frac * (DROP_BOTTOM - DROP_TOP)
        else:
            frac = min(max((t - self.start) / (self.end - self.start), 0.0), 1.0)
            x = self.start_pos[0] + frac * (self.end_pos[0] - self.start_pos[0])
            y = self.start_pos[1] + frac * (self.end_pos[1] - self.start_pos[1])
        if self.glitch == "teleport" and self.glitch_time is not None and t >= self.glitch_time:
            x, y = x + self.jump[0], y + self.jump[1]
        return x, y

    def colour_at(self, t: float) -> str:
        if self.glitch == "colour_change" and self.glitch_time is not None and t >= self.glitch_time:
            return self.glitch_colour or self.colour
        return self.colour


@dataclass(frozen=True)
class Sound:
    """One sound event over [start, end)."""

    kind: str
    start: float
    end: float


@dataclass
class Timeline:
    """A whole clip: scenes never overlap each other, sounds never overlap each other."""

    duration: float
    scenes: list[Scene] = field(default_factory=list)
    sounds: list[Sound] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.scenes = sorted(self.scenes, key=lambda s: s.start)
        self.sounds = sorted(self.sounds, key=lambda s: s.start)


# ----------------------------------------------------------------------------- queries


def scene_at(timeline: Timeline, t: float) -> Scene | None:
    """The scene on screen at time t (start inclusive, end exclusive), or None."""
    for scene in timeline.scenes:
        if scene.start <= t < scene.end:
            return scene
    return None


def scenes_during(timeline: Timeline, start: float, end: float) -> list[Scene]:
    """Scenes visible at any moment of [start, end)."""
    return [s for s in timeline.scenes if s.start < end and start < s.end]


def sounds_of(timeline: Timeline, kind: str) -> list[Sound]:
    return [s for s in timeline.sounds if s.kind == kind]


def scene_by_label(timeline: Timeline, label: str) -> Scene:
    matches = [s for s in timeline.scenes if s.label == label]
    if len(matches) != 1:
        raise ValueError(f"label {label!r} names {len(matches)} scenes")
    return matches[0]


def count_sounds_within(timeline: Timeline, kind: str, start: float, end: float) -> list[Sound]:
    """Sounds of `kind` that start inside [start, end)."""
    return [s for s in sounds_of(timeline, kind) if start <= s.start < end]


def find_anomalies(timeline: Timeline, step: float = 0.05) -> list[tuple[str, Scene, float]]:
    """Physically impossible events, found from the motion and sounds themselves
    (not from the `glitch` fields): (kind, scene, time) for jumps in position,
    colour changes within a scene, and a thud before its shape lands."""
    found: list[tuple[str, Scene, float]] = []
    for scene in timeline.scenes:
        times = np.arange(scene.start, scene.end, step)
        positions = np.array([scene.position(float(t)) for t in times])
        if len(positions) > 1:
            moves = np.linalg.norm(np.diff(positions, axis=0), axis=1)
            # Smooth motion covers at most ~1 frame width per second; a jump is far more.
            jumps = np.nonzero(moves > 0.1)[0]
            if len(jumps):
                found.append(("teleport", scene, round(float(times[jumps[0] + 1]) / GRID) * GRID))
        colours = [scene.colour_at(float(t)) for t in times]
        changes = [i for i in range(1, len(colours)) if colours[i] != colours[i - 1]]
        if changes:
            found.append(("colour_change", scene, round(float(times[changes[0]]) / GRID) * GRID))
        if scene.impact is not None:
            for thud in sounds_of(timeline, "thud"):
                if scene.start <= thud.start < scene.end and thud.start < scene.impact:
                    found.append(("early_sound", scene, thud.start))
    return found


# ----------------------------------------------------------------------------- sampling helpers


def partition(rng: np.random.Generator, total_slots: int, mins: list[int]) -> list[tuple[int, int]]:
    """Lay n scenes over `total_slots` slots: scene i gets at least mins[i] slots,
    the rest is spread over scenes and the n+1 gaps (gaps get less). Returns
    (start_slot, end_slot) per scene, in order."""
    n = len(mins)
    extra = total_slots - sum(mins)
    if extra < 0:
        raise ValueError(f"{n} scenes need {sum(mins)} slots; only {total_slots}")
    weights = np.array([1.0] * n + [0.25] * (n + 1))
    shares = rng.multinomial(extra, weights / weights.sum())
    spans = []
    cursor = int(shares[n])  # leading gap
    for i in range(n):
        length = mins[i] + int(shares[i])
        spans.append((cursor, cursor + length))
        cursor += length + int(shares[n + 1 + i])
    return spans


def distinct_labels(rng: np.random.Generator, n: int) -> list[tuple[str, str]]:
    """n distinct (colour, shape) pairs."""
    pairs = [(c, s) for c in COLOURS for s in SHAPES]
    order = rng.permutation(len(pairs))[:n]
    return [pairs[i] for i in order]


def random_path(rng: np.random.Generator, moving: bool) -> tuple[tuple[float, float], tuple[float, float]]:
    """Start and end centres inside the frame; still shapes have equal ones."""
    lo, hi = 0.3, 0.7
    start = (float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi)))
    if not moving:
        return start, start
    end = (float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi)))
    while np.hypot(end[0] - start[0], end[1] - start[1]) < 0.2:
        end = (float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi)))
    return start, end


class SlotBook:
    """Which 0.5 s slots already hold a sound, so new sounds never overlap."""

    def __init__(self, total_slots: int) -> None:
        self.used = np.zeros(total_slots, dtype=bool)

    def free(self, start: int, length: int) -> bool:
        return start >= 0 and start + length <= len(self.used) and not self.used[start : start + length].any()

    def take(self, start: int, length: int) -> None:
        self.used[start : start + length] = True

    def place(self, rng: np.random.Generator, length: int, lo: int = 0, hi: int | None = None) -> int | None:
        """A random free start slot in [lo, hi] for `length` slots (taken), or None."""
        hi = len(self.used) - length if hi is None else hi
        candidates = [s for s in range(max(lo, 0), hi + 1) if self.free(s, length)]
        if not candidates:
            return None
        start = int(rng.choice(candidates))
        self.take(start, length)
        return start


def sound_at(kind: str, start_slot: int) -> Sound:
    start = start_slot * GRID
    return Sound(kind, start, round(start + SOUNDS[kind][0], 3))


def slots_of(kind: str) -> int:
    return int(np.ceil(SOUNDS[kind][0] / GRID))
