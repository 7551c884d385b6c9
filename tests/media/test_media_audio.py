"""Audio: 16 kHz mono float32 of the video's duration, pitch changes where they were encoded."""

import numpy as np
import pytest
from avgen import SR, peak_frequency, pitch_changes

from salmonn_o1.media import load_audio, load_media, load_video

TOLERANCE_S = 0.05


def assert_16k_mono(audio, seconds):
    assert audio.dtype == np.float32
    assert audio.ndim == 1
    assert len(audio) == int(round(seconds * SR))


def test_video_audio_is_16k_mono_float32_of_the_video_duration(av_clip):
    media = load_video(av_clip.path)
    assert media.has_audio
    assert media.duration == pytest.approx(14.0, abs=0.03)
    assert_16k_mono(media.audio, media.duration)


def test_pitch_changes_at_the_encoded_times(av_clip):
    audio = load_video(av_clip.path).audio
    found = pitch_changes(audio, [440.0, 1000.0])
    assert len(found) == len(av_clip.changes), found
    for expected, got in zip(av_clip.changes, found):
        assert abs(got - expected) <= TOLERANCE_S, f"change at {expected} s found at {got:.3f} s"
    # right pitch, so right sample rate (44.1 kHz stereo resampled to 16 kHz mono)
    assert peak_frequency(audio, 1.0, 5.0) == pytest.approx(440.0, rel=0.01)
    assert peak_frequency(audio, 6.0, 9.0) == pytest.approx(1000.0, rel=0.01)
    assert peak_frequency(audio, 10.5, 13.5) == pytest.approx(440.0, rel=0.01)


def test_stereo_is_averaged_not_boosted(av_clip):
    """L = R = 0.5 sin: the mean keeps 0.5 (FFmpeg's own downmix would give about 0.71)."""
    audio = load_video(av_clip.path).audio
    steady = audio[SR:5 * SR]
    assert np.sqrt(np.mean(steady**2)) == pytest.approx(av_clip.amplitude / np.sqrt(2), rel=0.05)
    assert np.abs(audio).max() < 0.6


@pytest.mark.parametrize("fixture", ["short_clip", "long_clip", "mpeg4_clip", "vfr_clip"])
def test_audio_length_matches_duration(request, fixture):
    clip = request.getfixturevalue(fixture)
    media = load_video(clip.path)
    assert media.has_audio
    assert media.duration == pytest.approx(clip.duration, abs=0.05)
    assert_16k_mono(media.audio, media.duration)
    for expected, got in zip(clip.changes, pitch_changes(media.audio, [440.0, 1000.0])):
        assert abs(got - expected) <= TOLERANCE_S


def test_audio_running_past_the_video_is_cut_to_it(audio_longer_clip):
    """The release counts video frames and cuts the audio to the video's duration."""
    media = load_video(audio_longer_clip.path)
    assert media.duration == pytest.approx(4.0, abs=0.01)
    assert media.num_frames == 8  # 0, 0.5, ..., 3.5 s: no frames invented past the video's end
    np.testing.assert_allclose(media.frame_times, np.arange(8) * 0.5, atol=1e-3)
    assert_16k_mono(media.audio, media.duration)
    assert np.abs(media.audio[-SR // 2:]).max() > 0.3  # real audio up to the end, not padding


def test_video_without_audio_gets_silence_and_the_flag(silent_clip):
    media = load_video(silent_clip.path)
    assert not media.has_audio
    assert media.duration == pytest.approx(14.0, abs=0.01)
    assert_16k_mono(media.audio, media.duration)
    assert not media.audio.any()


def test_one_frame_video_gets_silence_of_one_frame(one_frame_clip):
    media = load_video(one_frame_clip.path)
    assert not media.has_audio
    assert_16k_mono(media.audio, media.duration)
    assert len(media.audio) == 640  # 0.04 s


@pytest.mark.parametrize("fixture", ["m4a_clip", "wav_clip"])
def test_audio_only_files(request, fixture):
    clip = request.getfixturevalue(fixture)
    media = load_media(clip.path)
    assert media.kind == "audio"
    assert media.frames is None and media.num_frames == 0
    assert media.has_audio
    assert media.duration == pytest.approx(clip.duration, abs=0.03)
    assert media.audio.dtype == np.float32 and media.audio.ndim == 1
    assert len(media.audio) / SR == pytest.approx(media.duration)
    found = pitch_changes(media.audio, [440.0, 1000.0])
    assert len(found) == 1 and abs(found[0] - clip.changes[0]) <= TOLERANCE_S, found
    assert load_audio(clip.path).duration == media.duration


def test_load_audio_of_a_video_takes_its_track(av_clip):
    media = load_audio(av_clip.path)
    assert media.kind == "audio" and media.frames is None
    assert media.duration == pytest.approx(14.0, abs=0.05)
    found = pitch_changes(media.audio, [440.0, 1000.0])
    assert all(abs(g - e) <= TOLERANCE_S for g, e in zip(found, av_clip.changes)) and len(found) == 2
