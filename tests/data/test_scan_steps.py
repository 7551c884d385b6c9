"""The scan step format of glitch detection (the curriculum source's `step_format: scan`).

Every frame read must be what the clip's timeline shows at that time, a jump must be called out
exactly where two neighbouring reads of one shape are `JUMP_TENTHS` apart, and no clip without a
planted glitch may ever show one.
"""

from __future__ import annotations

import re

import pytest

from salmonn_o1.data.synthetic import generate_item
from salmonn_o1.data.synthetic.questions import CHECK_STEPS, JUMP_TENTHS, SCAN_STEPS
from salmonn_o1.data.synthetic.timeline import GRID, find_anomalies, scene_at

SCAN = re.compile(r"At (\d+\.\d) s (?:the (\w+ \w+) is at x (\d\.\d)|the screen shows nothing)\.")
JUMP = re.compile(r"The (\w+ \w+) moved from x (\d\.\d) to x (\d\.\d) in one frame: it jumped\.")


@pytest.fixture(scope="module")
def glitch_samples():
    samples = [generate_item("dev", i) for i in range(5, 6 * 240, 6)]
    assert {s.item.category for s in samples} == {"glitch_detection"}
    return samples


def test_only_glitch_detection_carries_scan_steps():
    for i in range(12):
        item = generate_item("dev", i).item
        assert (SCAN_STEPS in item.extras) == (item.category == "glitch_detection")


def test_every_read_is_the_frame_at_its_time_and_a_jump_is_called_where_two_reads_differ(glitch_samples):
    jumps_called = 0
    for sample in glitch_samples:
        steps = sample.item.extras[SCAN_STEPS]
        reads = [(i, SCAN.fullmatch(step)) for i, step in enumerate(steps) if SCAN.fullmatch(step)]
        if "early_sound" in {kind for kind, _, _ in find_anomalies(sample.timeline)}:
            assert steps == sample.item.extras[CHECK_STEPS] and not reads  # the thud's checks decide
            continue
        assert [float(m[1]) for _, m in reads] == [k * GRID for k in range(len(reads))]  # every frame, in order
        previous = None
        for i, m in reads:
            t = float(m[1])
            scene = scene_at(sample.timeline, t)
            if scene is None:
                assert m[2] is None
                previous = None
                continue
            assert m[2] == f"{scene.colour_at(t)} {scene.shape}"
            assert abs(float(m[3]) - scene.position(t)[0]) <= 0.05 + 1e-9
            tenths = round(float(m[3]) * 10)
            jumped = previous is not None and previous[0] == m[2] and abs(tenths - previous[1]) >= JUMP_TENTHS
            called = JUMP.fullmatch(steps[i + 1]) if i + 1 < len(steps) else None
            assert bool(called) == jumped, (sample.item.id, steps[i + 1])
            if jumped:
                assert (called[1], called[2], called[3]) == (m[2], f"{previous[1] / 10:.1f}", m[3])
                assert steps[i + 2:] == ["A real object cannot jump like that.", "So the video is manipulated."]
                jumps_called += 1
                break
            previous = (m[2], tenths)
    assert jumps_called > 20


def test_a_jump_is_called_only_in_clips_with_a_planted_teleport_and_the_verdict_matches_the_answer(glitch_samples):
    found = {"teleport": 0}
    for sample in glitch_samples:
        steps = sample.item.extras[SCAN_STEPS]
        planted = sample.item.extras["glitch"]
        if any(JUMP.fullmatch(step) for step in steps):
            assert planted == "teleport", sample.item.id
            found["teleport"] += 1
        manipulated = steps[-1] == "So the video is manipulated."
        assert manipulated == (sample.item.answer == "YES")
        if not manipulated:
            assert steps[-1] == "Nothing impossible happens, so the video is not manipulated."
    teleports = sum(s.item.extras["glitch"] == "teleport" for s in glitch_samples)
    assert found["teleport"] >= teleports // 2  # most jumps are visible at two frames per second
