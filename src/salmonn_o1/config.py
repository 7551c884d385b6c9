"""Configuration of the audio-visual model: data, with presets as named constructors.

Defaults equal the released video-SALMONN-o1 (docs/released-model.md) except
`interleave_mode`, which defaults to true time alignment for new models, and the
media rules `frame_sampling`, `duration_source`, `pad_audio_to_video` and
`single_frame_as_image`, which default to our own decoding; the
`video-salmonn-o1-7b` preset sets the released ("release") interleaving, and
loading a released-layout checkpoint sets the release's media rules.
"""

from __future__ import annotations

import math
import os
from typing import Literal

from transformers import AutoConfig, Blip2QFormerConfig, Qwen2Config, SiglipVisionConfig, WhisperConfig
from transformers.configuration_utils import PreTrainedConfig, SubConfigSpec

from salmonn_o1.remote_code import AUTO_MAP, write_remote_code

InterleaveMode = Literal["aligned", "release"]


class SalmonnO1Config(PreTrainedConfig):
    """video-SALMONN-o1: SigLIP frames + Whisper/window-Q-Former audio, interleaved into Qwen2.

    Sub-configs: `vision_config` (SigLIP vision tower, full depth as published),
    `audio_config` (Whisper; only the encoder is built), `qformer_config`
    (BLIP-2 Q-Former; `encoder_hidden_size` = Whisper `d_model`), `text_config` (Qwen2).
    """

    model_type = "salmonn_o1"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(config_class=SiglipVisionConfig),
        "audio_config": SubConfigSpec(config_class=WhisperConfig),
        "qformer_config": SubConfigSpec(config_class=Blip2QFormerConfig),
        "text_config": SubConfigSpec(config_class=Qwen2Config),
    }

    vision_config: dict | PreTrainedConfig | None = None
    audio_config: dict | PreTrainedConfig | None = None
    qformer_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None

    # Visual branch. hidden_states index of the tower: -2 = penultimate layer, before post-layernorm.
    vision_feature_layer: int = -2
    spatial_pool_stride: int = 2
    spatial_pool_mode: str = "max"  # "max" (released) or "average"
    projector_hidden_act: str = "gelu"

    # Sampling of the media.
    frames_per_second: float = 2.0
    max_frames: int = 60
    sampling_rate: int = 16_000
    audio_chunk_seconds: float = 30.0
    audio_min_seconds: float = 1.0
    # Release-compatible media rules (each saved in config.json, so a converted model keeps them;
    # the defaults are our own behaviour, released-layout checkpoints set the release's values).
    # frame_sampling: "time" keeps, for each frame the sampling rule picks, the decoded frame
    # nearest to index / average_rate seconds (robust to variable frame rate); "index" takes
    # the decoded frames *by position* in presentation order, as the release's decord reader
    # does, for constant-frame-rate streams (a variable-frame-rate stream still samples by time).
    frame_sampling: str = "time"
    # duration_source: "stream" = the video stream's declared duration (else the container's);
    # "frames" = video frame count / average frame rate, what the release uses. It sets the
    # audio cut, the audio chunk count and the release interleaving's audio split.
    duration_source: str = "stream"
    # pad_audio_to_video: True zero-pads an audio track that ends before the video to the video's
    # duration; False (the release) keeps the track's own length (fewer chunks, fewer tokens).
    pad_audio_to_video: bool = True
    # single_frame_as_image: True (the release) lays a video that yields one sampled frame out as
    # the release's image branch: its pooled grid and one newline, no audio tokens.
    single_frame_as_image: bool = False

    # Window-level Q-Former: one window of `audio_window_seconds`, `audio_queries_per_window` queries each.
    audio_window_seconds: float = 0.2
    audio_queries_per_window: int = 1
    audio_final_mlp: bool = True
    max_audio_chunks: int = 200

    # How audio and visual tokens are laid out (see salmonn_o1.model.interleave).
    interleave_mode: str = "aligned"
    time_tokens: bool = False
    # How a frame's time token(s) are made. "learned": one token, a linear map of a sinusoid of
    # the time. "text": the time written as the steps write it (" 3.5") and embedded with the
    # LLM's own token embeddings -- what the release computes (and then discards);
    # a model trained from scratch can then match "at 3.5 s" in a question to the frame by
    # copying tokens. Needs `time_text_ids`: token ids of the time text on a `time_text_step`
    # grid from 0 s (row k is k * step; -1 pads rows to one length), built from the tokenizer.
    time_token_mode: str = "learned"
    time_text_ids: list | None = None
    time_text_step: float = 0.5
    # None (the release): media tokens enter the LLM at whatever scale the aligners give.
    # A float: each media token is RMS-normalised to this per-dimension RMS (no parameters).
    # Encoders trained from scratch need it: without it Adam inflates the aligners' outputs
    # (the LLM's RMSNorm makes the loss blind to their scale) until they dwarf the text
    # embeddings, the media path's effective step size collapses and the model ignores media.
    media_rms: float | None = None

    # The instruction appended to a question that asks for reasoning: a preset name of
    # salmonn_o1.prompts.REASONING_PROMPTS or the text itself. Kept per model because each model
    # answers best in the wording it was trained with ("step-marked" for ours).
    reasoning_prompt: str = "step-marked"

    # Token ids of the chat format.
    media_token_id: int = 151646
    initializer_range: float = 0.02

    # What is trained by default; each part can be frozen independently at run time too.
    freeze_vision_tower: bool = True
    freeze_audio_encoder: bool = True

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.interleave_mode not in ("aligned", "release"):
            raise ValueError(f"interleave_mode must be 'aligned' or 'release', got {self.interleave_mode!r}")
        if self.time_token_mode not in ("learned", "text"):
            raise ValueError(f"time_token_mode must be 'learned' or 'text', got {self.time_token_mode!r}")
        if self.frame_sampling not in ("time", "index"):
            raise ValueError(f"frame_sampling must be 'time' or 'index', got {self.frame_sampling!r}")
        if self.duration_source not in ("stream", "frames"):
            raise ValueError(f"duration_source must be 'stream' or 'frames', got {self.duration_source!r}")
        if self.spatial_pool_mode not in ("max", "average"):
            raise ValueError(f"spatial_pool_mode must be 'max' or 'average', got {self.spatial_pool_mode!r}")
        if self.qformer_config.encoder_hidden_size != self.audio_config.d_model:
            raise ValueError(
                f"qformer_config.encoder_hidden_size ({self.qformer_config.encoder_hidden_size}) must equal "
                f"audio_config.d_model ({self.audio_config.d_model})"
            )
        if self.audio_encoder_frames_per_chunk % self.audio_tokens_per_chunk_per_query:
            raise ValueError("audio_window_seconds must divide the Whisper frames of one chunk evenly")

    # ---- transformers' remote-code loading (salmonn_o1.remote_code) ----
    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs) -> None:
        """`config.json` with our `auto_map`, and the shim modules it names beside it.

        Every save goes through here (the model's and the processor's save the config), so
        every directory we write loads with `trust_remote_code=True` without `import salmonn_o1`.
        """
        os.makedirs(save_directory, exist_ok=True)
        write_remote_code(save_directory)
        self.auto_map = dict(AUTO_MAP)
        super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)

    @classmethod
    def register_for_auto_class(cls, auto_class: str = "AutoConfig") -> None:
        """Nothing to do: the shims written on save already serve every Auto class.

        transformers calls this on a class it loaded through `auto_map`; the default would set
        `_auto_class`, and the next save would copy this module's source over the shims.
        """

    # ---- derived numbers (one place for the token arithmetic) ----
    @property
    def time_tokens_per_frame(self) -> int:
        if not self.time_tokens:
            return 0
        if self.time_token_mode == "learned":
            return 1
        if not self.time_text_ids:
            raise ValueError("time_token_mode='text' needs time_text_ids (salmonn_o1.tokenizer.time_text_ids)")
        return len(self.time_text_ids[0])

    @property
    def hidden_size(self) -> int:
        return self.text_config.hidden_size

    @property
    def image_size(self) -> int:
        return self.vision_config.image_size

    @property
    def num_mel_bins(self) -> int:
        return self.audio_config.num_mel_bins

    @property
    def patch_grid(self) -> int:
        """Patches per side of one frame (27 for SigLIP so400m-patch14-384)."""
        return self.vision_config.image_size // self.vision_config.patch_size

    @property
    def pooled_grid(self) -> int:
        """Patches per side after the 2x2 pooling (floor mode: 27 -> 13)."""
        return self.patch_grid // self.spatial_pool_stride

    @property
    def video_tokens_per_frame(self) -> int:
        """Pooled grid plus one newline per row: 13 x 14 = 182."""
        return self.pooled_grid * (self.pooled_grid + 1)

    @property
    def single_frame_image_tokens(self) -> int:
        """A one-frame video in the release's image branch: pooled grid + one newline (13 x 13 + 1 = 170)."""
        return self.pooled_grid * self.pooled_grid + 1

    @property
    def image_tokens(self) -> int:
        """An image is one unpooled frame with a newline per row: 27 x 28 = 756."""
        return self.patch_grid * (self.patch_grid + 1)

    @property
    def vision_layers_used(self) -> int:
        """Encoder layers that must be built: features come from `vision_feature_layer`."""
        n = self.vision_config.num_hidden_layers
        layer = self.vision_feature_layer
        return layer if layer >= 0 else n + 1 + layer

    @property
    def audio_encoder_frames_per_chunk(self) -> int:
        """Whisper encoder output frames of one 30 s chunk (1500)."""
        return self.audio_config.max_source_positions

    @property
    def audio_tokens_per_chunk_per_query(self) -> int:
        """Windows in one chunk: 30 s / 0.2 s = 150."""
        return round(self.audio_chunk_seconds / self.audio_window_seconds)

    @property
    def audio_window_frames(self) -> int:
        """Whisper frames per window: 1500 / 150 = 10."""
        return self.audio_encoder_frames_per_chunk // self.audio_tokens_per_chunk_per_query

    @property
    def audio_tokens_per_chunk(self) -> int:
        return self.audio_tokens_per_chunk_per_query * self.audio_queries_per_window

    @property
    def audio_tokens_per_second(self) -> float:
        return self.audio_queries_per_window / self.audio_window_seconds

    @property
    def mel_frames_per_chunk(self) -> int:
        """Log-mel frames Whisper expects per chunk: exactly twice its positions (3000)."""
        return 2 * self.audio_config.max_source_positions

    def num_audio_chunks(self, seconds: float) -> int:
        seconds = max(seconds, self.audio_min_seconds)
        return max(1, math.ceil(seconds / self.audio_chunk_seconds - 1e-9))


def _whisper_encoder_config(**kwargs) -> WhisperConfig:
    # Token ids must lie inside the (unused) decoder vocabulary or WhisperModel refuses to build.
    vocab = kwargs.pop("vocab_size", 51866)
    ids = {k: min(v, vocab - 1) for k, v in
           {"pad_token_id": 50256, "bos_token_id": 50257, "eos_token_id": 50257,
            "decoder_start_token_id": 50258}.items()}
    return WhisperConfig(vocab_size=vocab, **ids, **kwargs)


def tiny_config(vocab_size: int = 704, media_token_id: int = 3, **overrides) -> SalmonnO1Config:
    """A few-million-parameter model for tests and CPU experiments.

    The token arithmetic is the released model's (30 s chunks of 1500 Whisper
    frames, 0.2 s windows, 2x2 pooling); only widths, depths and the frame
    size (32 px, 8 px patches -> 4x4 grid -> 2x2 pooled) shrink.
    """
    config = dict(
        vision_config=SiglipVisionConfig(
            image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
            num_hidden_layers=3, num_attention_heads=2, vision_use_head=False,
        ),
        audio_config=_whisper_encoder_config(
            vocab_size=64, num_mel_bins=16, d_model=32, encoder_layers=2, encoder_attention_heads=2,
            encoder_ffn_dim=64, decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=64,
            max_source_positions=1500, max_target_positions=32,
        ),
        qformer_config=Blip2QFormerConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            encoder_hidden_size=32, cross_attention_frequency=1,
        ),
        text_config=Qwen2Config(
            vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
            tie_word_embeddings=False,
        ),
        media_token_id=media_token_id,
    )
    config.update(overrides)
    return SalmonnO1Config(**config)


def mini_config(vocab_size: int = 704, media_token_id: int = 3, **overrides) -> SalmonnO1Config:
    """The shipped miniature model: the full architecture at a few million parameters.

    64 px frames with 8 px patches give an 8x8 grid that the tower sees whole;
    4x4 max pooling keeps 2x2 (6 tokens per frame with newlines), which keeps
    CPU training affordable while AVR-Synth's one-shape scenes stay legible;
    32 mel bins are enough to tell its tones apart.
    """
    config = dict(
        vision_config=SiglipVisionConfig(
            image_size=64, patch_size=8, hidden_size=96, intermediate_size=192,
            num_hidden_layers=3, num_attention_heads=4, vision_use_head=False,
        ),
        audio_config=_whisper_encoder_config(
            vocab_size=64, num_mel_bins=32, d_model=64, encoder_layers=2, encoder_attention_heads=4,
            encoder_ffn_dim=128, decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=64,
            max_source_positions=1500, max_target_positions=32,
        ),
        qformer_config=Blip2QFormerConfig(
            hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
            encoder_hidden_size=64, cross_attention_frequency=1,
        ),
        text_config=Qwen2Config(
            vocab_size=vocab_size, hidden_size=192, intermediate_size=512, num_hidden_layers=4,
            num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=4096,
            tie_word_embeddings=False,
            # The released LLM's base (1e6): its lowest frequencies barely turn over a clip's
            # tokens, which a match of tokens regardless of distance needs.
            rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        ),
        spatial_pool_stride=4,
        media_token_id=media_token_id,
        # AVR-Synth's steps state times ("from 3.5 s to 5.0 s"): each frame is preceded by its
        # time written the same way, so "at 3.5 s" is found by matching tokens, not by counting
        # frames. A learned sinusoid token was not read by the model in the miniature model's runs
        # (src/salmonn_o1_mini/docs/notebook.md).
        time_tokens=True,
        time_token_mode="text",
        media_rms=0.05,  # about twice the text embeddings' scale (see the field's comment)
        # No pretrained encoders exist at this size: they are trained with the rest.
        freeze_vision_tower=False,
        freeze_audio_encoder=False,
    )
    config.update(overrides)
    return SalmonnO1Config(**config)


def video_salmonn_o1_7b_config(**overrides) -> SalmonnO1Config:
    """The released model's dimensions (never instantiated in tests)."""
    config = dict(
        vision_config=SiglipVisionConfig(
            image_size=384, patch_size=14, hidden_size=1152, intermediate_size=4304,
            num_hidden_layers=27, num_attention_heads=16, hidden_act="gelu_pytorch_tanh",
            layer_norm_eps=1e-6, vision_use_head=False,
        ),
        audio_config=_whisper_encoder_config(
            vocab_size=51866, num_mel_bins=128, d_model=1280, encoder_layers=32,
            encoder_attention_heads=20, encoder_ffn_dim=5120, decoder_layers=32,
            decoder_attention_heads=20, decoder_ffn_dim=5120, max_source_positions=1500,
        ),
        qformer_config=Blip2QFormerConfig(
            hidden_size=768, num_hidden_layers=2, num_attention_heads=12, intermediate_size=3072,
            hidden_act="gelu", layer_norm_eps=1e-12, encoder_hidden_size=1280, cross_attention_frequency=1,
        ),
        text_config=Qwen2Config(
            vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
            num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768,
            rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
        ),
        interleave_mode="release",
        media_token_id=151646,
    )
    config.update(overrides)
    return SalmonnO1Config(**config)


PRESETS = {
    "tiny": tiny_config,
    "mini": mini_config,
    "video-salmonn-o1-7b": video_salmonn_o1_7b_config,
}


def preset_config(name: str, **overrides) -> SalmonnO1Config:
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name](**overrides)


# Known to AutoConfig, so transformers' Auto classes (AutoTokenizer reads a checkpoint's config.json)
# read our checkpoints without falling back to a bare config and warning on every load.
AutoConfig.register(SalmonnO1Config.model_type, SalmonnO1Config, exist_ok=True)
