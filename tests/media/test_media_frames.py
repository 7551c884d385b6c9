"""Frame sampling: the released 2 fps / at most 60 frames rule, by timestamp, checked by frame colour."""

import numpy as np
import pytest
from avgen import colour_error, index_of

from salmonn_o1.media import load_image, load_media, load_video, sample_frame_times


def release_indices(num_frames: int, native_fps: float, fps: float = 2.0, max_frames: int = 60) -> np.ndarray:
    """The released rule, written out independently: every round(native/fps)-th frame,
    or exactly `max_frames` by linspace(0, N - 1, dtype=int) when there are more."""
    step = max(round(native_fps / fps), 1)
    indices = list(range(0, num_frames, step))
    if len(indices) > max_frames:
        indices = np.linspace(0, num_frames - 1, max_frames, dtype=int)
    return np.asarray(indices)


def assert_frames_are_what_was_encoded(media, clip):
    """Each kept frame is the encoded frame at its timestamp (colour code = index of that pts)."""
    true_times = clip.frame_times
    for frame, t in zip(media.frames, media.frame_times):
        index = int(np.argmin(np.abs(true_times - t)))
        assert abs(true_times[index] - t) < 1e-3, f"{t:.4f} s is not the pts of any encoded frame"
        assert index_of(frame) == index, f"frame kept for {t:.3f} s shows frame {index_of(frame)}, not {index}"
        assert colour_error(frame, index) < 8


@pytest.mark.parametrize("fixture, native_fps", [("short_clip", 25), ("av_clip", 25), ("long_clip", 25)])
def test_sampled_frames_follow_the_release_rule(request, fixture, native_fps):
    clip = request.getfixturevalue(fixture)
    media = load_video(clip.path)
    expected = release_indices(clip.num_frames, native_fps)
    assert media.kind == "video"
    assert media.num_frames == len(expected) == len(media.frame_times)
    np.testing.assert_allclose(media.frame_times, expected / native_fps, atol=1e-3)
    assert media.duration == pytest.approx(clip.duration, abs=0.05)
    assert media.frames.dtype == np.uint8 and media.frames.shape[1:] == media.frames[0].shape
    assert_frames_are_what_was_encoded(media, clip)


def test_frame_counts_for_1_14_and_65_seconds(short_clip, av_clip, long_clip):
    # 25 fps: step round(12.5) = 12 (half to even, as Python rounds in the release).
    assert load_video(short_clip.path).num_frames == 3  # 0, 0.48, 0.96 s
    assert load_video(av_clip.path).num_frames == 30  # 350 frames, every 12th
    long = load_video(long_clip.path)
    assert long.num_frames == 60  # 1625 frames -> 136 at ~2 fps -> exactly 60, uniform
    gaps = np.diff(long.frame_times)
    assert long.frame_times[0] == 0.0
    assert long.frame_times[-1] == pytest.approx((long_clip.num_frames - 1) / 25, abs=1e-3)
    assert gaps.max() - gaps.min() <= 1 / 25 + 1e-6, "spread uniformly over the whole video"


def test_configured_rate_and_max_frames(av_clip):
    capped = load_video(av_clip.path, max_frames=8)
    np.testing.assert_allclose(capped.frame_times, release_indices(350, 25, max_frames=8) / 25, atol=1e-3)
    assert_frames_are_what_was_encoded(capped, av_clip)
    one_fps = load_video(av_clip.path, fps=1.0)
    assert one_fps.num_frames == 14  # every 25th frame
    assert_frames_are_what_was_encoded(one_fps, av_clip)


def test_seeking_through_a_long_video_lands_on_the_right_frames(long_clip):
    """The 65 s clip has targets ~1.1 s apart; with a small seek distance every target is a seek."""
    import salmonn_o1.media as media_module

    old = media_module.SEEK_AHEAD_SECONDS
    media_module.SEEK_AHEAD_SECONDS = 0.5
    try:
        media = load_video(long_clip.path)
    finally:
        media_module.SEEK_AHEAD_SECONDS = old
    np.testing.assert_allclose(media.frame_times, release_indices(long_clip.num_frames, 25) / 25, atol=1e-3)
    assert_frames_are_what_was_encoded(media, long_clip)


def test_mpeg4_video(mpeg4_clip):
    media = load_video(mpeg4_clip.path)
    np.testing.assert_allclose(media.frame_times, release_indices(30, 10) / 10, atol=1e-3)
    assert_frames_are_what_was_encoded(media, mpeg4_clip)


def test_frame_size_resizes_every_frame(av_clip):
    media = load_video(av_clip.path, frame_size=32)
    assert media.frames.shape == (30, 32, 32, 3)
    assert_frames_are_what_was_encoded(media, av_clip)


def test_one_frame_video(one_frame_clip):
    media = load_video(one_frame_clip.path)
    assert media.num_frames == 1
    assert media.frame_times.tolist() == [0.0]
    assert index_of(media.frames[0]) == 0
    assert media.duration == pytest.approx(0.04, abs=0.01)


def test_variable_frame_rate_is_sampled_by_timestamp(vfr_clip):
    media = load_video(vfr_clip.path)
    true = vfr_clip.frame_times
    assert media.duration == pytest.approx(vfr_clip.duration, abs=0.05)
    # The rule's targets, from the average frame rate the container reports.
    native = len(true) / media.duration
    targets = sample_frame_times(media.duration, native)
    assert media.num_frames == len(targets)
    assert np.all(np.diff(media.frame_times) >= 0)
    assert_frames_are_what_was_encoded(media, vfr_clip)
    for target, got in zip(targets, media.frame_times):
        nearest = true[np.argmin(np.abs(true - target))]
        assert abs(got - nearest) < 1e-6, f"target {target:.3f} s: kept {got:.3f} s, the nearest frame is {nearest:.3f} s"
    # Frame-count-based sampling would have kept frames at a fixed index stride instead:
    # in the 5 fps stretch (2-4 s) that shows frames more than a second off their target.
    by_index = true[np.round(targets * native).astype(int)]
    assert np.abs(by_index - targets).max() > 0.5


def test_image_is_one_frame(png_path):
    media = load_media(png_path)
    assert media.kind == "image"
    assert media.frames.shape == (1, 30, 40, 3)
    assert media.frame_times.tolist() == [0.0]
    assert media.audio is None and not media.has_audio
    assert (media.frames[0, :, :4] == 255).all()
    assert index_of(media.frames[0]) == 77
    resized = load_image(png_path, frame_size=16)
    assert resized.frames.shape == (1, 16, 16, 3)
