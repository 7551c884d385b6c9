"""The release's media rules behind their config switches, on files written here with PyAV.

frame_sampling="index" (frames by position on constant-frame-rate streams), duration_source="frames"
(frame count / average rate), pad_audio_to_video=False (a short audio track keeps its length) and
single_frame_as_image=True (a one-frame clip takes the image branch). Each is checked against the
release's rule written out here, and against our default, which must not change.
"""

from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from avgen import SR, index_of, write_video

from salmonn_o1.config import tiny_config, video_salmonn_o1_7b_config
from salmonn_o1.media import is_constant_rate, load_video
from salmonn_o1.model.interleave import media_token_count, spec_for
from salmonn_o1.processor import SalmonnO1Processor

NTSC = Fraction(30000, 1001)
RELEASE = dict(frame_sampling="index", duration_source="frames", pad_audio_to_video=False,
               single_frame_as_image=True)


def release_indices(num_frames: int, avg_fps: float, fps: float = 2.0, max_frames: int = 60) -> list[int]:
    """The released sampling (decord: N = len(reader), avg_fps = get_avg_fps()), written out."""
    step = max(round(avg_fps / fps), 1)
    indices = list(range(0, num_frames, step))
    if len(indices) > max_frames:
        indices = np.linspace(0, num_frames - 1, max_frames, dtype=int).tolist()
    return indices


def time_mode_indices(clip, avg_fps: float, declared: float) -> list[int]:
    """Today's choice: the release's indices over round(duration * avg) frames, as times i / avg,
    each taken by the true frame nearest in time."""
    targets = np.asarray(release_indices(int(round(declared * avg_fps)), avg_fps)) / avg_fps
    return [int(np.argmin(np.abs(clip.frame_times - t))) for t in targets]


def stream_facts(path) -> tuple[float, float, int]:
    """(average rate, the stream's declared duration in s, packets) as PyAV reports them."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = sum(1 for p in container.demux(stream) if p.size)
        return float(stream.average_rate), float(stream.duration * stream.time_base), packets


def decoded_indices(media) -> list[int]:
    return [index_of(frame) for frame in media.frames]


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def off_rate_clips(media_dir) -> dict:
    """29.97 fps files (pts 1001 apart in 1/30000 s) whose last frame lasts 1 tick, so mp4's average
    rate (frames / summed durations) is above the true 29.97: 30 s (every 15th frame) and 45 s (60 by linspace)."""
    return {n: write_video(media_dir / f"ntsc_off_rate_{n}.mp4", n, NTSC, size=(64, 32), ticks_per_frame=1001,
                           last_frame_ticks=1)
            for n in (899, 1349)}


@pytest.fixture(scope="module")
def short_audio_clip(media_dir):
    """30.5 s of video (10 fps) whose audio track ends at 29.6 s."""
    return write_video(media_dir / "audio_short.mp4", 305, 10, size=(32, 32), audio=[(0.0, 440.0)],
                       audio_seconds=29.6, audio_rate=SR, audio_layout="mono")


@pytest.fixture(scope="module")
def clip_04(media_dir):
    """0.4 s at 29.97 fps (12 frames) with a tone: one sampled frame."""
    return write_video(media_dir / "ntsc_04.mp4", 12, NTSC, size=(64, 32), ticks_per_frame=1001,
                       audio=[(0.0, 440.0)], audio_rate=SR, audio_layout="mono")


@pytest.fixture(scope="module")
def mkv_45(media_dir):
    """45 s at 29.97 fps in Matroska: no per-stream duration, the container's is in whole milliseconds."""
    return write_video(media_dir / "ntsc_45.mkv", 1349, NTSC, size=(32, 32), ticks_per_frame=1001,
                       container_format="matroska")


def processor_for(tokenizer, **switches) -> SalmonnO1Processor:
    return SalmonnO1Processor(tokenizer, tiny_config(**switches))


# ------------------------------------------------------------------ 1. frame sampling
@pytest.mark.parametrize("num_frames", [899, 1349])
def test_index_sampling_takes_the_release_frames_where_the_average_rate_is_off(off_rate_clips, num_frames):
    clip = off_rate_clips[num_frames]
    avg, declared, packets = stream_facts(clip.path)
    true_rate = (num_frames - 1) / clip.frame_times[-1]  # frames / last pts (s), less the first frame
    assert packets == num_frames
    assert true_rate == pytest.approx(float(NTSC), rel=1e-9)
    assert abs(avg - true_rate) > 0.02, "the container must report an average rate that is off"

    released = release_indices(num_frames, avg)
    index = load_video(clip.path, frame_sampling="index")
    assert decoded_indices(index) == released
    np.testing.assert_allclose(index.frame_times, clip.frame_times[released], atol=1e-6)

    today = time_mode_indices(clip, avg, declared)
    time = load_video(clip.path)  # the default: "time"
    assert decoded_indices(time) == today
    assert decoded_indices(load_video(clip.path, frame_sampling="time")) == today
    # The signature: by time, the frames from the 31st on come one frame early.
    assert [r - t for t, r in zip(today, released, strict=True)] == [0] * 30 + [1] * 30


def test_index_sampling_seeks_to_the_right_frames(long_clip, monkeypatch):
    """65 s at 25 fps: 60 targets about 1.1 s apart; with a short seek distance each one is a seek."""
    import salmonn_o1.media as media_module

    monkeypatch.setattr(media_module, "SEEK_AHEAD_SECONDS", 0.5)
    media = load_video(long_clip.path, frame_sampling="index", duration_source="frames")
    assert decoded_indices(media) == release_indices(long_clip.num_frames, 25.0)
    assert media.duration == pytest.approx(long_clip.num_frames / 25)


def test_variable_frame_rate_keeps_time_sampling(vfr_clip):
    time = load_video(vfr_clip.path)
    index = load_video(vfr_clip.path, frame_sampling="index")
    assert decoded_indices(index) == decoded_indices(time)
    np.testing.assert_allclose(index.frame_times, time.frame_times)


def test_constant_rate_detection(vfr_clip):
    assert is_constant_rate(np.arange(100) * 1001)
    assert is_constant_rate(np.round(np.arange(100) * 1001 / 30).astype(int))  # ms time base: 33 / 34
    assert is_constant_rate(np.array([0]))
    dropped = np.delete(np.arange(100) * 1001, 50)  # one frame missing: one gap twice as long
    assert not is_constant_rate(dropped)
    assert not is_constant_rate(np.round(vfr_clip.frame_times * 30).astype(int))  # pts in 1/30 s


# ------------------------------------------------------------------ 2. duration
def test_duration_from_frames_or_from_the_stream(mkv_45, tokenizer):
    with av.open(str(mkv_45.path)) as container:
        assert container.streams.video[0].duration is None  # Matroska: the container's duration it is
        container_seconds = container.duration / av.time_base
        avg = float(container.streams.video[0].average_rate)
    frames_seconds = 1349 / avg
    assert avg == pytest.approx(float(NTSC))
    assert frames_seconds == pytest.approx(45.0116, abs=1e-4)
    assert container_seconds == pytest.approx(45.011, abs=1e-6)

    stream = load_video(mkv_45.path)
    frames = load_video(mkv_45.path, duration_source="frames")
    assert stream.duration == pytest.approx(container_seconds, abs=1e-9)
    assert frames.duration == pytest.approx(frames_seconds, abs=1e-9)
    # Both cut (and, with no audio track, fill) the audio to their duration.
    assert len(stream.audio) == round(container_seconds * SR) == 720_176
    assert len(frames.audio) == round(frames_seconds * SR) == 720_186
    assert decoded_indices(stream) == decoded_indices(frames)  # the frames themselves do not move

    for switches, seconds in (({}, container_seconds), ({"duration_source": "frames"}, frames_seconds)):
        features = processor_for(tokenizer, **switches).media_features(mkv_45.path)
        assert features.spec.duration == pytest.approx(seconds, abs=1e-9)
        assert features.num_chunks == 2


def test_frames_duration_of_a_04_second_clip(clip_04):
    assert load_video(clip_04.path, duration_source="frames").duration == pytest.approx(12 / float(NTSC))
    assert 12 / float(NTSC) == pytest.approx(0.4004, abs=1e-4)


# ------------------------------------------------------------------ 3. audio shorter than the video
def test_short_audio_track_is_padded_or_keeps_its_length(short_audio_clip, tokenizer):
    padded = load_video(short_audio_clip.path)
    own = load_video(short_audio_clip.path, pad_audio=False)
    assert padded.duration == own.duration == pytest.approx(30.5)
    assert len(padded.audio) == 30.5 * SR
    assert not padded.audio[int(29.7 * SR):].any(), "padding is silence"
    assert abs(len(own.audio) / SR - 29.6) < 0.07  # the track's own end (an AAC frame at most)
    assert np.abs(own.audio[int(29.0 * SR):int(29.5 * SR)]).max() > 0.3  # real audio to its end
    np.testing.assert_array_equal(own.audio, padded.audio[:len(own.audio)])

    ours = processor_for(tokenizer).media_features(short_audio_clip.path)
    release = processor_for(tokenizer, pad_audio_to_video=False).media_features(short_audio_clip.path)
    assert (ours.num_chunks, ours.spec.num_audio_tokens) == (2, 300)
    assert (release.num_chunks, release.spec.num_audio_tokens) == (1, 150)
    assert ours.num_frames == release.num_frames == 60
    # The release's layout of it: 60 frames, all 150 audio tokens (T >= 3 s) stretched to 180: 3 each.
    config = video_salmonn_o1_7b_config()
    spec = spec_for(config, "video", 60, release.num_chunks, release.duration, tuple(release.frame_times.tolist()))
    assert media_token_count(spec) == 60 * (182 + 3)


def test_audio_running_past_the_video_is_still_cut_without_padding(audio_longer_clip):
    media = load_video(audio_longer_clip.path, pad_audio=False)
    assert len(media.audio) == round(media.duration * SR) == 4 * SR


def test_no_audio_track_is_silence_of_the_video_length_in_both_modes(silent_clip):
    media = load_video(silent_clip.path, pad_audio=False, duration_source="frames")
    assert not media.has_audio and len(media.audio) == round(media.duration * SR) and not media.audio.any()


# ------------------------------------------------------------------ 4. one sampled frame
def test_one_frame_clip_takes_the_image_branch(clip_04, tokenizer):
    ours = processor_for(tokenizer).media_features(clip_04.path)
    release = processor_for(tokenizer, single_frame_as_image=True).media_features(clip_04.path)
    assert ours.num_frames == release.num_frames == 1
    assert not ours.spec.frame_as_image and ours.num_chunks == 1
    assert release.spec.frame_as_image and release.input_features is None and release.num_chunks == 0
    # tiny: 4x4 patches pooled to 2x2 -> 4 grid tokens + 1 newline (a video frame has 2 x 3 = 6)
    assert release.token_count == 2 * 2 + 1 and ours.spec.tokens_per_frame == 6

    # The released model's arithmetic: 13 x 13 pooled + 1 newline = 170, no audio; a video layout is 332.
    big = video_salmonn_o1_7b_config()
    image = spec_for(big, "video", 1, 0, 0.4004, (0.0,), frame_as_image=True)
    video = spec_for(big, "video", 1, 1, 0.4004, (0.0,))
    assert media_token_count(image) == big.single_frame_image_tokens == 170
    assert media_token_count(video) == 182 + 150 == 332


def test_the_model_encodes_a_one_frame_clip_as_the_release_image_branch(clip_04, tokenizer):
    processor = processor_for(tokenizer, single_frame_as_image=True)
    torch.manual_seed(0)
    from salmonn_o1.model import SalmonnO1ForConditionalGeneration

    model = SalmonnO1ForConditionalGeneration(processor.config).eval()
    batch = processor(text=["what is shown?"], videos=[clip_04.path])
    media = batch["media"]
    assert media.input_features is None and media.frames_per_sample == (1,)
    with torch.no_grad():
        sequence = model.encode_media(media)[0]
        frame = model.encode_frames(media.pixel_values, pooled=True)[0]  # rows of (2 grid + newline)
        out = model(**batch)
    assert sequence.shape[0] == 5 == int((batch["input_ids"] == processor.config.media_token_id).sum())
    # The pooled grid row by row (the release's flatten order), then one newline.
    torch.testing.assert_close(sequence[:4], frame[[0, 1, 3, 4]])
    torch.testing.assert_close(sequence[4], model.image_newline.to(sequence.dtype))
    assert out.logits.shape[:2] == batch["input_ids"].shape and torch.isfinite(out.logits).all()


def test_a_clip_of_more_frames_keeps_the_video_layout_with_the_switch_on(av_clip, tokenizer):
    features = processor_for(tokenizer, single_frame_as_image=True).media_features(av_clip.path)
    assert not features.spec.frame_as_image and features.num_frames == 30 and features.num_chunks == 1


# ------------------------------------------------------------------ all four together, and bad files
def test_release_switches_through_the_processor(off_rate_clips, tokenizer):
    clip = off_rate_clips[1349]
    avg, _, _ = stream_facts(clip.path)
    features = processor_for(tokenizer, **RELEASE).media_features(clip.path)
    assert features.spec.duration == pytest.approx(1349 / avg)
    expected_times = clip.frame_times[release_indices(1349, avg)]
    np.testing.assert_allclose(features.frame_times.numpy(), expected_times, atol=1e-5)


@pytest.mark.parametrize("name", ["truncated_faststart", "truncated_mkv", "zero_length"])
def test_truncated_files_are_still_refused_with_the_release_rules(bad_inputs, name):
    from salmonn_o1.errors import MediaError

    path, reason = bad_inputs[name]
    with pytest.raises(MediaError, match=reason):
        load_video(path, frame_sampling="index", duration_source="frames", pad_audio=False)


def test_unknown_switch_values_are_refused(av_clip):
    with pytest.raises(ValueError, match="frame_sampling"):
        load_video(av_clip.path, frame_sampling="nearest")
    with pytest.raises(ValueError, match="duration_source"):
        load_video(av_clip.path, duration_source="container")
