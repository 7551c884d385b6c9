"""AVR-Synth generator: determinism, splits, balance, and every family's gold
answer recomputed here from the timeline with independent code."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest

from salmonn_o1.data.synthetic import FAMILIES, SynthConfig, generate_item, render_media
from salmonn_o1.data.synthetic.dataset import clip_seed
from salmonn_o1.prompts import OPTION_LETTERS

N = 240  # 40 per family


@pytest.fixture(scope="module")
def samples():
    return [generate_item("dev", i) for i in range(N)]


def test_deterministic_from_split_and_index():
    a, b = generate_item("train", 17), generate_item("train", 17)
    assert a.item.to_dict() == b.item.to_dict()
    assert a.timeline == b.timeline
    assert np.array_equal(render_media(a).frames, render_media(b).frames)
    assert generate_item("train", 18).item.to_dict() != a.item.to_dict()


def test_splits_use_disjoint_seeds_and_clips():
    seeds = {split: {clip_seed(split, i) for i in (0, 1, 999_999)} for split in ("train", "dev", "test")}
    assert not (seeds["train"] & seeds["dev"]) and not (seeds["dev"] & seeds["test"])
    assert generate_item("train", 5).timeline != generate_item("test", 5).timeline
    assert generate_item("test", 42).item.id == "avr-test-000042"
    with pytest.raises(ValueError):
        clip_seed("train", 1_000_000)


def test_answers_are_balanced(samples):
    letters = Counter(s.item.answer for s in samples if s.item.options)
    assert set(letters) == set("ABCD") and max(letters.values()) == min(letters.values())
    yes_no = Counter(s.item.answer for s in samples if s.item.category == "glitch_detection")
    assert yes_no["YES"] == yes_no["NO"]
    assert Counter(s.item.category for s in samples) == {f: N // 6 for f in FAMILIES}


def test_items_are_well_formed(samples):
    for sample in samples:
        item = sample.item
        assert 6.0 <= sample.timeline.duration <= 12.0 or len(sample.timeline.scenes) >= 5
        assert len(set(item.options)) == len(item.options)
        assert item.options == [] or len(item.options) == 4
        assert 3 <= len(item.steps) + 1 <= 7, item.steps
        reasoning = item.gold_reasoning()
        assert reasoning.rstrip().endswith(f"The answer is {item.answer}.<end_of_step>")
        for step in item.steps:  # times on the 0.5 s grid
            for number in [w for w in step.replace(",", " ").split() if w.endswith(".0") or w.endswith(".5")]:
                assert float(number) * 2 == int(float(number) * 2)
        # scenes and sounds never overlap
        for a, b in zip(sample.timeline.scenes, sample.timeline.scenes[1:]):
            assert a.end <= b.start
        for a, b in zip(sample.timeline.sounds, sample.timeline.sounds[1:]):
            assert a.end <= b.start


def _letter(item, text):
    return OPTION_LETTERS[item.options.index(text)]


def _visible(timeline, t):
    hits = [s for s in timeline.scenes if s.start <= t < s.end]
    return hits[0] if hits else None


def test_gold_answers_recomputed_from_timeline(samples):
    for sample in samples:
        item, tl = sample.item, sample.timeline
        family = item.category
        if family == "cross_modal_alignment":
            kind = item.question.removeprefix("What was on screen when the ").removesuffix(" played?")
            (sound,) = [s for s in tl.sounds if s.kind == kind]
            mids = {_visible(tl, t) for t in np.arange(sound.start, sound.end, 0.05)}
            assert len(mids) == 1
            (scene,) = mids
            expected = _letter(item, f"a {scene.colour} {scene.shape}")
            # distractors did appear, at other times
            for option in item.options:
                assert option.removeprefix("a ") in {f"{s.colour} {s.shape}" for s in tl.scenes}
        elif family == "cross_modal_counting":
            label = item.question.removeprefix("How many beeps played while the ").removesuffix(" was visible?")
            (scene,) = [s for s in tl.scenes if f"{s.colour} {s.shape}" == label]
            count = sum(1 for s in tl.sounds if s.kind == "beep" and scene.start <= s.start and s.end <= scene.end)
            expected = _letter(item, str(count))
        elif family == "temporal_order":
            kind = item.question.removeprefix("Which shape appeared next after the ").removesuffix(" played?")
            (sound,) = [s for s in tl.sounds if s.kind == kind]
            nxt = min((s for s in tl.scenes if s.start >= sound.end), key=lambda s: s.start)
            expected = _letter(item, f"a {nxt.colour} {nxt.shape}")
        elif family == "visual_only":
            ordinal = item.question.removeprefix("Which shape appeared ").removesuffix("?")
            order = sorted(tl.scenes, key=lambda s: s.start)
            words = ["first", "second", "third", "fourth", "fifth", "sixth"]
            scene = order[-1] if ordinal == "last" else order[words.index(ordinal)]
            expected = _letter(item, f"a {scene.colour} {scene.shape}")
        elif family == "audio_only":
            ordinal = item.question.removeprefix("Which sound played ").removesuffix("?")
            order = sorted(tl.sounds, key=lambda s: s.start)
            words = ["first", "second", "third", "fourth", "fifth"]
            sound = order[-1] if ordinal == "last" else order[words.index(ordinal)]
            expected = _letter(item, f"the {sound.kind}")
        else:  # glitch: look for impossible physics by sampling the scene state densely
            manipulated = False
            for scene in tl.scenes:
                ts = np.arange(scene.start, scene.end, 0.02)
                pos = np.array([scene.position(t) for t in ts])
                if len(pos) > 1 and np.abs(np.diff(pos, axis=0)).max() > 0.05:
                    manipulated = True
                if len({scene.colour_at(t) for t in ts}) > 1:
                    manipulated = True
                if scene.impact is not None:
                    thuds = [s for s in tl.sounds if s.kind == "thud" and scene.start <= s.start < scene.end]
                    assert len(thuds) == 1
                    manipulated |= thuds[0].start != scene.impact
            expected = "YES" if manipulated else "NO"
            assert (item.extras["glitch"] is not None) == manipulated
        assert item.answer == expected, (item.id, family)


def test_config_knobs_change_the_clip():
    config = SynthConfig(num_options=5, min_scenes=6, max_scenes=6, min_duration=10.0, max_duration=12.0)
    items = [generate_item("train", i, config).item for i in range(12)]
    assert all(len(it.options) == 5 for it in items if it.options)
    assert all(it.extras["num_scenes"] == 6 for it in items)
    only = SynthConfig(families=("cross_modal_counting",))
    assert {generate_item("train", i, only).item.category for i in range(5)} == {"cross_modal_counting"}


def test_render_media_shapes_and_speed():
    sample = generate_item("test", 3)
    start = time.perf_counter()
    media = render_media(sample, fps=2.0, size=64)
    elapsed = time.perf_counter() - start
    duration = sample.timeline.duration
    assert media.kind == "video" and media.has_audio
    assert media.frames.dtype == np.uint8 and media.frames.shape[1:] == (64, 64, 3)
    assert np.allclose(media.frame_times, np.arange(0, duration, 0.5))
    assert media.audio.dtype == np.float32 and media.audio.shape == (int(duration * 16000),)
    assert elapsed < 0.1
    assert render_media(sample, size=32).frames.shape[1:] == (32, 32, 3)
