"""SalmonnO1Processor: from files (or decoded media) and text to model inputs.

Two steps, usable separately: `encode(messages, media)` turns one sample into
ids, labels and media features (cheap to do in DataLoader workers), and
`collate(samples, padding_side)` pads a batch ("left" for generation,
"right" for training) and stacks its media into one `MediaBatch`.
`__call__` does both, the `transformers` way: `model(**processor(...))`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase
from transformers.utils import CONFIG_NAME

from salmonn_o1.chat import IGNORE_INDEX, encode_conversation
from salmonn_o1.config import SalmonnO1Config
from salmonn_o1.media_types import DecodedMedia
from salmonn_o1.messages import is_batch, split_conversation
from salmonn_o1.model.media_batch import MediaBatch, MediaFeatures
from salmonn_o1.tokenizer import load_tokenizer

# Older directories hold a second copy of the model config here ({"model_config": {...}}); it is read
# only when config.json is absent, and no longer written.
LEGACY_PROCESSOR_CONFIG = "processor_config.json"
MediaInput = str | Path | DecodedMedia | None

__all__ = ["EncodedSample", "MediaBatch", "MediaFeatures", "MediaInput", "SalmonnO1Processor"]


@dataclass
class EncodedSample:
    input_ids: list[int]
    labels: list[int]
    media: MediaFeatures | None


class SalmonnO1Processor:
    """Turns (conversation, media) into the tensors `SalmonnO1ForConditionalGeneration` takes."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, config: SalmonnO1Config):
        self.tokenizer = tokenizer
        self.config = config
        media_id = tokenizer.convert_tokens_to_ids("<image>")
        if media_id != config.media_token_id:
            raise ValueError(
                f"the tokenizer's <image> id ({media_id}) differs from config.media_token_id ({config.media_token_id})"
            )

    # ---- persistence ----
    @classmethod
    def from_pretrained(cls, path: str | Path, config: SalmonnO1Config | None = None,
                        **loading_kwargs: Any) -> SalmonnO1Processor:
        """The tokenizer saved in `path`, and the model config from its `config.json` (unless given).

        The processor has no settings of its own: everything it needs (frame rate, image size,
        mel bins, token counts) is the model's config, stored once, in `config.json`.
        `loading_kwargs`: what `AutoProcessor.from_pretrained` passes on (`revision`,
        `trust_remote_code`, ...); a local directory needs none of it.
        """
        path = Path(path)
        if config is None:
            legacy = path / LEGACY_PROCESSOR_CONFIG
            if (path / CONFIG_NAME).exists() or not legacy.exists():
                config = SalmonnO1Config.from_pretrained(path)
            else:
                config = SalmonnO1Config.from_dict(json.loads(legacy.read_text())["model_config"])
        return cls(load_tokenizer(path), config)

    def save_pretrained(self, path: str | Path) -> None:
        """The tokenizer; and the model config as `config.json` when the directory has none yet.

        Saved beside its model (`save_model_and_processor`), the model's `config.json` is
        already there and is left as it is; saved alone, the directory still loads.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(path)
        if not (path / CONFIG_NAME).exists():
            self.config.save_pretrained(path)

    # ---- media ----
    def load_media(self, media: MediaInput, kind: str | None = None) -> DecodedMedia | None:
        """A path is decoded by the model's media rules (frame rate, frame sampling, duration,
        audio padding: all from its config); decoded media passes through."""
        if media is None or isinstance(media, DecodedMedia):
            return media
        from salmonn_o1.media import load_media

        config = self.config
        return load_media(media, fps=config.frames_per_second, max_frames=config.max_frames, kind=kind,
                          frame_sampling=config.frame_sampling, duration_source=config.duration_source,
                          pad_audio=config.pad_audio_to_video)

    def media_features(self, media: MediaInput, kind: str | None = None) -> MediaFeatures | None:
        """Decode (if needed) and featurise one input: frames to pixels, audio to log-mel chunks.

        With `config.single_frame_as_image`, a video that yields one sampled frame takes the
        release's image branch: its audio is not featurised at all (the layout has none).
        """
        decoded = self.load_media(media, kind)
        if decoded is None:
            return None
        from salmonn_o1.features import audio_to_features, frames_to_pixel_values

        config = self.config
        media_kind, duration, has_audio = decoded.kind, decoded.duration, decoded.has_audio
        frame_as_image = bool(config.single_frame_as_image) and media_kind == "video" and decoded.num_frames == 1
        frame_times = torch.as_tensor(np.asarray(decoded.frame_times, dtype=np.float32))
        frames, audio = decoded.frames, decoded.audio
        # Decoded here, the media is ours: let each part go as soon as its features exist, so the
        # raw frames and samples of a long clip never sit beside its features (nor reach encoding).
        del decoded
        pixel_values = None
        if media_kind != "audio":
            pixel_values = frames_to_pixel_values(frames, config.image_size)
        del frames
        input_features = None
        if media_kind != "image" and not frame_as_image:
            audio = audio if audio is not None else np.zeros(0, np.float32)
            if media_kind == "video":
                # Audio is cut to the video's duration (the release does the same).
                audio = audio[: int(round(duration * config.sampling_rate))]
            input_features = audio_to_features(
                audio, num_mel_bins=config.num_mel_bins, chunk_seconds=config.audio_chunk_seconds,
                min_seconds=config.audio_min_seconds,
            )
        del audio
        if media_kind == "audio":
            frame_times = torch.zeros(0)
        return MediaFeatures.build(config, media_kind, pixel_values, input_features, frame_times,
                                   duration, has_audio=has_audio, frame_as_image=frame_as_image)

    # ---- text ----
    def encode(
        self,
        messages: list[dict] | str,
        media: MediaInput | MediaFeatures = None,
        add_generation_prompt: bool = True,
        kind: str | None = None,
    ) -> EncodedSample:
        """One sample: a conversation (or a bare question) and at most one media input."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        features = media if isinstance(media, MediaFeatures) else self.media_features(media, kind)
        encoded = encode_conversation(
            self.tokenizer, messages, media_token_count=features.token_count if features else 0,
            add_generation_prompt=add_generation_prompt,
        )
        return EncodedSample(encoded.input_ids, encoded.labels, features)

    def collate(self, samples: list[EncodedSample], padding_side: str = "left") -> dict[str, torch.Tensor | MediaBatch]:
        """Pad a batch: "left" for generation, "right" (with labels) for training.

        Returns input_ids, attention_mask, labels (B, L) and media (a `MediaBatch`).
        """
        pad_id = self.tokenizer.pad_token_id
        length = max(len(s.input_ids) for s in samples)
        input_ids = torch.full((len(samples), length), pad_id, dtype=torch.long)
        labels = torch.full((len(samples), length), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(samples), length), dtype=torch.long)
        for i, sample in enumerate(samples):
            n = len(sample.input_ids)
            span = slice(length - n, length) if padding_side == "left" else slice(0, n)
            input_ids[i, span] = torch.tensor(sample.input_ids)
            labels[i, span] = torch.tensor(sample.labels)
            attention_mask[i, span] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
                "media": MediaBatch.collate([s.media for s in samples])}

    def __call__(
        self,
        text: str | list[str] | None = None,
        messages: list[dict] | list[list[dict]] | None = None,
        videos: MediaInput | list[MediaInput] = None,
        audios: MediaInput | list[MediaInput] = None,
        images: MediaInput | list[MediaInput] = None,
        add_generation_prompt: bool = True,
        padding_side: str = "left",
    ) -> dict[str, torch.Tensor | MediaBatch]:
        """`processor(text|messages, videos=..., audios=..., images=...)` -> the model's inputs.

        One media input per sample at most: for sample i, videos[i], else audios[i], else images[i].
        """
        conversations = _as_conversations(text, messages)
        n = len(conversations)
        media_lists = {kind: _as_list(value, n, kind) for kind, value in
                       (("video", videos), ("audio", audios), ("image", images))}
        samples = []
        for i, conversation in enumerate(conversations):
            chosen = [(kind, items[i]) for kind, items in media_lists.items() if items[i] is not None]
            if len(chosen) > 1:
                raise ValueError(f"sample {i} has more than one media input ({[k for k, _ in chosen]})")
            kind, media = chosen[0] if chosen else (None, None)
            samples.append(self.encode(conversation, media, add_generation_prompt, kind=kind))
        return self.collate(samples, padding_side)

    # ---- chat messages, as transformers' multimodal processors take them ----
    def apply_chat_template(
        self,
        conversation: list[dict] | list[list[dict]],
        *,
        tokenize: bool = False,
        return_dict: bool = False,
        return_tensors: str | None = "pt",
        add_generation_prompt: bool = False,
        use_audio_in_video: bool | None = None,
        load_audio_from_video: bool | None = None,
        padding: bool = True,
        padding_side: str = "left",
    ) -> str | list[str] | torch.Tensor | dict[str, torch.Tensor | MediaBatch]:
        """Chat messages with typed content items -> the prompt text, or the model's inputs.

        Content items as Qwen2.5-Omni's processor takes them: `{"type": "video", "video": PATH}`,
        `{"type": "audio", "audio": PATH}`, `{"type": "image", "image": PATH}` (a path or
        `DecodedMedia`), `{"type": "text", "text": ...}`; a plain string content is text. At most
        one media item per conversation (`salmonn_o1.messages`). A batch is a list of conversations.

        tokenize=False (the default, as in transformers): the prompt text, one `<image>` where the
        media goes. tokenize=True: the input ids; with return_dict=True the dict
        `model.generate(**inputs)` takes: input_ids, attention_mask (left-padded) and media.
        use_audio_in_video (Qwen2.5-Omni's name; `load_audio_from_video` is transformers' newer one):
        True (our default) takes a video's audio from its own track; False gives the video as a file
        without an audio track is given: silence as long as the video, marked `has_audio=False`.
        """
        if return_tensors not in ("pt", None):
            raise ValueError(f"return_tensors={return_tensors!r}: only 'pt' (PyTorch tensors) is supported")
        if not padding:
            raise ValueError("padding=False: a batch is always padded (left for generation)")
        if None not in (use_audio_in_video, load_audio_from_video) and use_audio_in_video != load_audio_from_video:
            raise ValueError("use_audio_in_video and load_audio_from_video disagree; pass one of them")
        with_audio = next((flag for flag in (use_audio_in_video, load_audio_from_video) if flag is not None), True)
        batched = is_batch(conversation)
        conversations = [split_conversation(c, i) for i, c in enumerate(conversation if batched else [conversation])]
        if not tokenize:
            texts = [self.decode(encode_conversation(self.tokenizer, c.messages, media_token_count=int(c.kind is not None),
                                                     add_generation_prompt=add_generation_prompt).input_ids)
                     for c in conversations]
            return texts if batched else texts[0]
        samples = []
        for c in conversations:
            media = c.media
            if c.kind == "video" and not with_audio:
                media = self.load_media(media, "video").without_audio()
            samples.append(self.encode(c.messages, media, add_generation_prompt, kind=c.kind))
        batch = self.collate(samples, padding_side)
        del batch["labels"]  # generate takes no labels; training goes through `encode` + `collate`
        return batch if return_dict else batch["input_ids"]

    def register_for_auto_class(self, auto_class: str = "AutoProcessor") -> None:
        """Nothing to do: saved directories carry the shim `auto_map` points at (`salmonn_o1.remote_code`)."""

    def decode(self, ids, **kwargs) -> str:
        return self.tokenizer.decode(ids, **kwargs)

    def batch_decode(self, ids, **kwargs) -> list[str]:
        return self.tokenizer.batch_decode(ids, **kwargs)


def _as_conversations(text, messages) -> list[list[dict]]:
    if messages is not None:
        if messages and isinstance(messages[0], dict):
            return [messages]
        return list(messages)
    if text is None:
        raise ValueError("pass `text` or `messages`")
    texts = [text] if isinstance(text, str) else list(text)
    return [[{"role": "user", "content": t}] for t in texts]


def _as_list(value, n: int, kind: str) -> list:
    if value is None:
        return [None] * n
    if not isinstance(value, list | tuple):
        value = [value]
    if len(value) != n:
        raise ValueError(f"{len(value)} {kind} inputs for {n} samples")
    return list(value)
