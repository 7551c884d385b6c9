"""Features from decoded media: SigLIP pixel values and Whisper log-mel chunks, per the config."""

import numpy as np
import pytest
import torch

from salmonn_o1.config import tiny_config
from salmonn_o1.features import audio_to_features, frames_to_pixel_values, num_audio_chunks
from salmonn_o1.media import load_video
from salmonn_o1.media_types import SAMPLE_RATE


def test_pixel_values_shape_and_normalisation():
    config = tiny_config()
    size = config.image_size
    frames = np.zeros((3, 48, 64, 3), np.uint8)
    frames[1] = 255
    frames[2] = 51  # 0.2 after /255
    pixels = frames_to_pixel_values(frames, size)
    assert pixels.shape == (3, 3, size, size) and pixels.dtype == torch.float32
    torch.testing.assert_close(pixels[0], torch.full_like(pixels[0], -1.0))  # (0 - 0.5) / 0.5
    torch.testing.assert_close(pixels[1], torch.full_like(pixels[1], 1.0))
    torch.testing.assert_close(pixels[2], torch.full_like(pixels[2], -0.6))  # (0.2 - 0.5) / 0.5


def test_pixel_values_keep_channels_and_ignore_aspect():
    frame = np.zeros((1, 30, 90, 3), np.uint8)
    frame[..., 0] = 255  # red
    frame[:, :, 45:, 2] = 255  # right half blue too
    pixels = frames_to_pixel_values(frame, 16)
    assert pixels.shape == (1, 3, 16, 16)  # squashed, not cropped or padded
    assert (pixels[0, 0] > 0.99).all() and (pixels[0, 1] < -0.99).all()
    assert (pixels[0, 2, :, :7] < -0.99).all() and (pixels[0, 2, :, 9:] > 0.99).all()


def test_pixel_values_match_the_transformers_siglip_processor():
    processor_class = pytest.importorskip("transformers").SiglipImageProcessorPil
    frames = np.random.default_rng(0).integers(0, 256, (2, 48, 64, 3), dtype=np.uint8)
    reference = processor_class(size={"height": 32, "width": 32})(list(frames), return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(frames_to_pixel_values(frames, 32), reference, atol=1e-5, rtol=0)


def test_decoded_video_to_pixel_values(av_clip):
    config = tiny_config()
    media = load_video(av_clip.path)
    pixels = frames_to_pixel_values(media.frames, config.image_size)
    assert pixels.shape == (media.num_frames, 3, config.image_size, config.image_size)
    assert pixels.min() >= -1.0 and pixels.max() <= 1.0


@pytest.mark.parametrize("seconds, chunks", [(0.2, 1), (1.0, 1), (29.9, 1), (30.0, 1), (30.5, 2), (45.0, 2),
                                             (60.0, 2), (61.0, 3)])
def test_chunk_count(seconds, chunks):
    config = tiny_config()
    assert num_audio_chunks(int(seconds * SAMPLE_RATE)) == chunks
    assert config.num_audio_chunks(seconds) == chunks


def test_45_seconds_of_audio_is_two_log_mel_chunks():
    config = tiny_config()
    t = np.arange(45 * SAMPLE_RATE) / SAMPLE_RATE
    audio = np.where(t >= 35, 0.5 * np.sin(2 * np.pi * 440 * t), 0).astype(np.float32)
    features = audio_to_features(audio, num_mel_bins=config.num_mel_bins)
    assert features.shape == (2, config.num_mel_bins, 3000)  # 30 s of 10 ms hops per chunk
    # The tone at 35-45 s lands in the second chunk (5-15 s of it): nothing was truncated at 30 s.
    loudest = features[1].max(dim=0).values  # per 10 ms frame, the loudest mel bin
    assert loudest[600:1400].min() > loudest[100:400].max() + 1.0
    assert loudest[1600:].max() < loudest[600:1400].min() - 1.0  # after 45 s: padding
    assert features[0].std() < 1e-3 < features[1].std()  # first chunk: silence


@pytest.mark.parametrize("mel", [80, 128])
def test_mel_bins_are_configurable(mel):
    features = audio_to_features(np.zeros(SAMPLE_RATE // 2, np.float32), num_mel_bins=mel)
    assert features.shape == (1, mel, 3000)  # padded to the 1 s minimum, then one 30 s chunk
