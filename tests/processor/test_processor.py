"""Processor: chat format, placeholder expansion, padding, labels, and the round trip through the model."""

import numpy as np
import pytest
import torch
from PIL import Image

from salmonn_o1.media_types import SAMPLE_RATE, DecodedMedia
from salmonn_o1.processor import SalmonnO1Processor


@pytest.fixture()
def processor(tokenizer, tiny_config):
    return SalmonnO1Processor(tokenizer, tiny_config)


def clip(duration=3.0, with_audio=True) -> DecodedMedia:
    times = np.arange(0, duration, 0.5)
    frames = np.random.default_rng(0).integers(0, 255, (len(times), 48, 64, 3), dtype=np.uint8)
    audio = np.sin(np.arange(int(duration * SAMPLE_RATE)) * 0.05).astype(np.float32)
    if not with_audio:
        audio = np.zeros_like(audio)
    return DecodedMedia(frames, times, audio, duration, with_audio, "video")


def write_wav(path, seconds=2.5):
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=SAMPLE_RATE, layout="mono")
        samples = (0.3 * np.sin(np.arange(int(seconds * SAMPLE_RATE)) * 0.1) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples[None], format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def test_prompt_matches_the_released_chat_format(processor, tokenizer):
    sample = processor.encode("What is shown?", clip())
    text = tokenizer.decode(sample.input_ids)
    media = sample.media.token_count
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
    assert text.endswith("<image>\n\nWhat is shown?<|im_end|>\n<|im_start|>assistant\n")
    assert text.count("<image>") == media
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
    after_media = sample.input_ids[sample.input_ids.index(3) + media:][:2]
    assert after_media == newline * 2, "two separate newline tokens after the media, as released"


def test_labels_cover_exactly_the_assistant_turns(processor, tokenizer):
    messages = [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "1. step<end_of_step>"},
                {"role": "user", "content": "Final?"}, {"role": "assistant", "content": "The answer is B."}]
    sample = processor.encode(messages, clip(), add_generation_prompt=False)
    labelled = [t for t, label in zip(sample.input_ids, sample.labels) if label != -100]
    expected = (tokenizer("1. step<end_of_step>", add_special_tokens=False)["input_ids"] + [2]
                + tokenizer("The answer is B.", add_special_tokens=False)["input_ids"] + [2])
    assert labelled == expected


def test_left_padding_for_generation_and_right_padding_for_training(processor):
    short, long = processor.encode("Hi?", None), processor.encode("A much longer question here?", clip())
    left = processor.collate([short, long], padding_side="left")
    right = processor.collate([short, long], padding_side="right")
    n = len(short.input_ids)
    assert left["attention_mask"][0, -n:].all() and not left["attention_mask"][0, :-n].any()
    assert right["attention_mask"][0, :n].all() and not right["attention_mask"][0, n:].any()
    assert (right["labels"][0, n:] == -100).all()
    assert left["media"].kinds == ["none", "video"]


def test_every_kind_of_input_round_trips_through_the_model(processor, tiny_model, tmp_path):
    image = tmp_path / "frame.png"
    Image.fromarray(np.full((40, 30, 3), 128, np.uint8)).save(image)
    wav = write_wav(tmp_path / "sound.wav")
    batch = processor(
        text=["video?", "silent video?", "audio?", "image?", "text only?"],
        videos=[clip(), clip(2.0, with_audio=False), None, None, None],
        audios=[None, None, str(wav), None, None],
        images=[None, None, None, str(image), None],
    )
    assert batch["media"].kinds == ["video", "video", "audio", "image", "none"]
    assert batch["media"].pixel_values.shape[0] == 6 + 4 + 1
    assert batch["media"].input_features.shape == (3, 16, 3000)
    with torch.no_grad():
        out = tiny_model(**batch)
    assert out.logits.shape[:2] == batch["input_ids"].shape
    assert torch.isfinite(out.logits).all()


def test_save_and_load_keep_tokenizer_and_config(processor, tmp_path):
    processor.save_pretrained(tmp_path)
    reloaded = SalmonnO1Processor.from_pretrained(tmp_path)
    assert reloaded.config.video_tokens_per_frame == processor.config.video_tokens_per_frame
    assert reloaded.encode("Q?", clip()).input_ids == processor.encode("Q?", clip()).input_ids


def test_more_than_one_media_input_per_sample_is_refused(processor):
    with pytest.raises(ValueError, match="more than one media input"):
        processor(text="both?", videos=clip(), images=np.zeros(1))
