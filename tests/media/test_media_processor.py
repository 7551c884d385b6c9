"""Real files (written with PyAV) through the processor and the tiny model's forward."""

import pytest
import torch

from salmonn_o1.errors import MediaError
from salmonn_o1.processor import SalmonnO1Processor


@pytest.fixture()
def processor(tokenizer, tiny_config):
    return SalmonnO1Processor(tokenizer, tiny_config)


def test_files_of_every_kind_round_trip_through_the_model(processor, tiny_model, av_clip, silent_clip, m4a_clip,
                                                          png_path, long_clip):
    config = processor.config
    batch = processor(
        text=["video?", "silent video?", "audio?", "image?", "long video?", "text only?"],
        videos=[str(av_clip.path), silent_clip.path, None, None, long_clip.path, None],
        audios=[None, None, m4a_clip.path, None, None, None],
        images=[None, None, None, png_path, None, None],
    )
    media = batch["media"]
    assert media.kinds == ["video", "video", "audio", "image", "video", "none"]
    assert media.frames_per_sample == (30, 30, 0, 1, 60, 0)
    # 14 s -> 1 chunk, 14 s of silence -> 1, 3 s -> 1, 65 s -> 3 (the audio is cut to the video's duration)
    assert media.chunks_per_sample == (1, 1, 1, 0, 3, 0)
    size = config.image_size
    assert media.pixel_values.shape == (30 + 30 + 1 + 60, 3, size, size)
    assert media.input_features.shape == (6, config.num_mel_bins, 3000)
    assert media.durations[4] == pytest.approx(65.0, abs=0.05)
    with torch.no_grad():
        out = tiny_model(**batch)
    assert out.logits.shape[:2] == batch["input_ids"].shape
    assert torch.isfinite(out.logits).all()


def test_a_bad_file_in_a_batch_is_a_media_error(processor, av_clip, bad_inputs):
    path, reason = bad_inputs["truncated_faststart"]
    with pytest.raises(MediaError, match=reason):
        processor(text=["ok?", "broken?"], videos=[av_clip.path, path])
