"""Fixtures: a tiny native model and released-layout checkpoints of its weights (see release_layout)."""

from __future__ import annotations

import json

import pytest
import torch
from release_layout import release_config_json, released_names, write_encoder_checkpoints, write_weights

from salmonn_o1.config import tiny_config
from salmonn_o1.model.media_batch import MediaBatch, MediaFeatures


# Session-scoped: the tests read these and never change them.
@pytest.fixture(scope="session")
def config():
    return tiny_config(interleave_mode="release")


@pytest.fixture(scope="session")
def native_model(config):
    from salmonn_o1.model import SalmonnO1ForConditionalGeneration

    torch.manual_seed(0)
    return SalmonnO1ForConditionalGeneration(config).eval()


@pytest.fixture()
def make_release(tmp_path, config, native_model, tokenizer):
    """make_release(fmt=..., shards=..., edit=...) -> a released-layout directory of `native_model`'s weights.

    `edit(tensors)` may rename, drop or reshape released tensors before writing.
    """
    counter = iter(range(100))

    def make(fmt: str = "safetensors", shards: int = 2, edit=None, tensors=None, with_tokenizer: bool = True):
        root = tmp_path / f"release{next(counter)}"
        siglip, whisper = write_encoder_checkpoints(root, config)
        native = native_model.state_dict()
        if tensors is None:
            tensors = {theirs: native[ours].clone() for theirs, ours in released_names(config).items()}
            # The release also saves the Q-Former's (unused) position buffer.
            tensors["speech_Qformer.bert.embeddings.position_ids"] = torch.arange(512).unsqueeze(0)
        if edit is not None:
            edit(tensors)
        directory = root / "video-SALMONN-o1"
        write_weights(directory, tensors, fmt, shards)
        (directory / "config.json").write_text(json.dumps(release_config_json(config, siglip, whisper), indent=1))
        if with_tokenizer:
            tokenizer.save_pretrained(directory)
        return directory

    return make


@pytest.fixture(scope="session")
def video_inputs(config):
    """One 2 s video sample, placeholder expanded for the released interleaving."""
    torch.manual_seed(1)
    times = torch.arange(0, 2.0, 0.5)
    chunks = config.num_audio_chunks(2.0)
    features = MediaFeatures.build(
        config, "video", torch.randn(len(times), 3, config.image_size, config.image_size),
        torch.randn(chunks, config.num_mel_bins, config.mel_frames_per_chunk), times, 2.0,
    )
    ids = torch.tensor([[5, 6, *[config.media_token_id] * features.token_count, 7, 8, 9]])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "media": MediaBatch.collate([features])}


@pytest.fixture(scope="session")
def native_logits(native_model, video_inputs):
    with torch.no_grad():
        return native_model(**video_inputs).logits
