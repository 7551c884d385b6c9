"""`processor.apply_chat_template`: Qwen2.5-Omni-shaped messages give the same model inputs as `processor(...)`."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from salmonn_o1.errors import MediaError
from salmonn_o1.model.media_batch import MediaBatch
from salmonn_o1.processor import SalmonnO1Processor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "media"))
from avgen import SR, write_audio, write_video  # noqa: E402

QUESTION = "What sound plays while the screen is red?"


@pytest.fixture()
def processor(tokenizer, tiny_config):
    return SalmonnO1Processor(tokenizer, tiny_config)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 3 s clip with a tone track, the same clip without an audio track, an audio file and an image."""
    folder = tmp_path_factory.mktemp("chat")
    video = write_video(folder / "av.mp4", 6, 2, audio=[(0.0, 440.0), (1.5, 1000.0)], audio_rate=SR,
                        audio_layout="mono").path
    silent = write_video(folder / "silent.mp4", 6, 2).path
    audio = write_audio(folder / "tone.wav", [(0.0, 660.0)], 2.0, SR, codec="pcm_s16le").path
    image = folder / "frame.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(image)
    return {"video": video, "silent": silent, "audio": audio, "image": image}


def user(*items) -> list[dict]:
    return [{"role": "user", "content": list(items)}]


def chat(processor, conversation, **kwargs):
    return processor.apply_chat_template(conversation, tokenize=True, return_dict=True, return_tensors="pt",
                                         add_generation_prompt=True, **kwargs)


def assert_same_inputs(got: dict, expected: dict) -> None:
    assert set(got) == {"input_ids", "attention_mask", "media"}  # what model.generate(**inputs) takes
    assert torch.equal(got["input_ids"], expected["input_ids"])
    assert torch.equal(got["attention_mask"], expected["attention_mask"])
    a, b = got["media"], expected["media"]
    assert isinstance(a, MediaBatch) and a.specs == b.specs
    for name in ("pixel_values", "input_features", "frame_times"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None) and (x is None or torch.equal(x, y)), name


def test_a_video_with_its_own_audio_equals_the_processor_call(processor, files):
    inputs = chat(processor, user({"type": "video", "video": str(files["video"])}, {"type": "text", "text": QUESTION}))
    assert_same_inputs(inputs, processor(text=QUESTION, videos=str(files["video"])))
    assert inputs["media"].specs[0].num_audio_tokens > 0 and inputs["media"].input_features.abs().sum() > 0


def test_without_audio_in_video_the_video_is_given_as_a_file_without_an_audio_track(processor, files):
    conversation = user({"type": "video", "video": files["video"]}, {"type": "text", "text": QUESTION})
    muted = chat(processor, conversation, use_audio_in_video=False)
    # The same frames written without an audio track: what the model gets for a silent file.
    assert_same_inputs(muted, processor(text=QUESTION, videos=files["silent"]))
    assert torch.equal(chat(processor, conversation, load_audio_from_video=False)["input_ids"], muted["input_ids"])
    with_audio = chat(processor, conversation)
    assert not torch.equal(muted["media"].input_features, with_audio["media"].input_features)
    assert torch.equal(muted["media"].pixel_values, with_audio["media"].pixel_values)


def test_an_image_and_an_audio_file_equal_the_processor_call(processor, files):
    image = chat(processor, user({"type": "image", "image": files["image"]}, {"type": "text", "text": QUESTION}))
    assert_same_inputs(image, processor(text=QUESTION, images=files["image"]))
    assert image["media"].kinds == ["image"]
    audio = chat(processor, user({"type": "audio", "audio": str(files["audio"])}, {"type": "text", "text": QUESTION}))
    assert_same_inputs(audio, processor(text=QUESTION, audios=str(files["audio"])))
    assert audio["media"].kinds == ["audio"]


def test_a_batch_of_two_conversations_is_padded_like_the_processor_call(processor, files):
    conversations = [
        [{"role": "system", "content": [{"type": "text", "text": "You are a helpful assistant."}]},
         *user({"type": "video", "video": files["video"]}, {"type": "text", "text": QUESTION})],
        user({"type": "text", "text": "Which pitch is it?"}, {"type": "audio", "audio": files["audio"]}),
    ]
    batch = chat(processor, conversations)
    expected = processor(messages=[[{"role": "user", "content": QUESTION}],
                                   [{"role": "user", "content": "Which pitch is it?<image>\n"}]],
                         videos=[files["video"], None], audios=[None, files["audio"]])
    assert_same_inputs(batch, expected)
    assert batch["input_ids"].shape[0] == 2 and batch["media"].kinds == ["video", "audio"]
    assert batch["attention_mask"][:, -1].tolist() == [1, 1]  # left-padded for generation


def test_text_without_tokenizing_is_the_prompt_with_one_placeholder(processor, files):
    conversation = user({"type": "video", "video": files["video"]}, {"type": "text", "text": QUESTION})
    text = processor.apply_chat_template(conversation, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
    assert text.endswith(f"<image>\n\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n") and text.count("<image>") == 1
    plain = [{"role": "user", "content": "Hello?"}]
    texts = processor.apply_chat_template([conversation, plain])
    assert texts[0] == text.removesuffix("<|im_start|>assistant\n") and "<image>" not in texts[1]
    ids = processor.apply_chat_template(plain, tokenize=True, add_generation_prompt=True)
    assert ids.tolist() == [processor.encode("Hello?").input_ids]


def test_generate_runs_on_the_chat_template_output(processor, tiny_model, files):
    inputs = chat(processor, [user({"type": "video", "video": files["video"]}, {"type": "text", "text": QUESTION}),
                              user({"type": "text", "text": "Hi"})])
    out = tiny_model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape[0] == 2 and 1 <= out.shape[1] <= 3
    one = tiny_model.generate(**chat(processor, user({"type": "text", "text": "Hi"})), max_new_tokens=3,
                              do_sample=False)
    assert torch.equal(out[1, : one.shape[1]], one[0])  # padding and batching change nothing


@pytest.mark.parametrize("conversation, message", [
    (user({"type": "pdf", "pdf": "a.pdf"}), r"conversation 0, message 0: unknown content type 'pdf'"),
    (user({"type": "video"}), r"conversation 0, message 0: a 'video' item needs the file"),
    ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": [{"type": "image", "image": "x.png"}]}],
     r"conversation 0, message 1: media goes in a user turn"),
    ([{"role": "user"}], r"conversation 0, message 0: each message is a dict with 'role' and 'content'"),
])
def test_bad_messages_are_one_clear_error(processor, conversation, message):
    with pytest.raises(ValueError, match=message):
        processor.apply_chat_template(conversation, tokenize=True)


def test_two_media_in_one_conversation_name_the_conversation(processor, files):
    good = user({"type": "text", "text": "Hi"})
    two = user({"type": "video", "video": files["video"]}, {"type": "audio", "audio": files["audio"]},
               {"type": "text", "text": QUESTION})
    with pytest.raises(ValueError, match=r"conversation 1 has 2 media inputs \(video in message 0, audio in message 0\)"):
        processor.apply_chat_template([good, two], tokenize=True, return_dict=True)


def test_a_missing_file_and_bad_options_are_one_clear_error(processor, tmp_path):
    missing = tmp_path / "nowhere.mp4"
    with pytest.raises(MediaError, match="nowhere.mp4: no such file"):
        chat(processor, user({"type": "video", "video": str(missing)}, {"type": "text", "text": QUESTION}))
    conversation = user({"type": "text", "text": "Hi"})
    with pytest.raises(ValueError, match="only 'pt'"):
        processor.apply_chat_template(conversation, tokenize=True, return_tensors="np")
    with pytest.raises(ValueError, match="disagree"):
        processor.apply_chat_template(conversation, use_audio_in_video=True, load_audio_from_video=False)
