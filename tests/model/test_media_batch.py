"""MediaBatch: per-sample specs and counts survive collation, and a batch encodes as its samples do alone."""

import torch

from salmonn_o1.model.media_batch import MediaBatch, MediaFeatures


def features(config, kind: str, frames: int = 0, chunks: int = 0, duration: float = 0.0) -> MediaFeatures:
    size, mel = config.image_size, config.num_mel_bins
    return MediaFeatures.build(
        config, kind,
        torch.randn(frames, 3, size, size, dtype=torch.float64) if frames else None,
        torch.randn(chunks, mel, config.mel_frames_per_chunk, dtype=torch.float64) if chunks else None,
        torch.arange(frames) / 2.0, duration,
    )


def test_collate_keeps_each_samples_spec_and_counts(tiny_config):
    torch.manual_seed(0)
    video, audio = features(tiny_config, "video", 4, 1, 2.0), features(tiny_config, "audio", 0, 2, 31.0)
    batch = MediaBatch.collate([video, None, audio])
    assert batch.kinds == ["video", "none", "audio"] and len(batch) == 3
    assert batch.specs == (video.spec, None, audio.spec)
    assert batch.frames_per_sample == (4, 0, 0) and batch.chunks_per_sample == (1, 0, 2)
    assert batch.durations == [2.0, 0.0, 31.0]
    assert torch.equal(batch.input_features, torch.cat([video.input_features, audio.input_features]))
    moved = batch.to("cpu")
    assert moved.specs == batch.specs and torch.equal(moved.pixel_values, video.pixel_values)
    assert MediaBatch.collate([None, None]).kinds == ["none", "none"]


def test_a_batch_encodes_as_its_samples_do_alone(tiny_model, tiny_config):
    torch.manual_seed(0)
    model = tiny_model.double()
    samples = [features(tiny_config, "video", 4, 1, 2.0), None, features(tiny_config, "audio", 0, 2, 31.0),
               features(tiny_config, "image", 1), features(tiny_config, "video", 6, 1, 3.0)]
    with torch.no_grad():
        together = model.encode_media(MediaBatch.collate(samples))
        alone = [model.encode_media(MediaBatch.collate([s]))[0] for s in samples]
    assert together[1] is None and alone[1] is None
    for sample, a, b in zip(samples, together, alone):
        if sample is not None:
            assert a.shape == (sample.token_count, tiny_config.text_config.hidden_size)
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
