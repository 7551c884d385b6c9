"""The whole model: encode media, interleave, splice at the placeholder, run Qwen2.

The media of a batch arrives as one `MediaBatch` (frames and audio chunks
stacked, plus each sample's `MediaSpec`), so a batch can mix video, video
without audio (silence), audio only, images and text only.
"""

from __future__ import annotations

import math
import os

import torch
from safetensors import SafetensorError
from torch import nn
from transformers import PreTrainedModel, Qwen2ForCausalLM
from transformers.activations import ACT2FN

from salmonn_o1.chat import IGNORE_INDEX
from salmonn_o1.config import SalmonnO1Config
from salmonn_o1.errors import CheckpointError
from salmonn_o1.model.audio import WindowQFormer, build_audio_encoder, chunk_position_table
from salmonn_o1.model.interleave import MediaSpec, interleave_plan
from salmonn_o1.model.media_batch import MediaBatch
from salmonn_o1.model.vision import add_row_newlines, build_vision_tower, pool_grid, tower_features

# Parameter groups, by module-name prefix, for freezing and for optimiser groups.
PARAMETER_GROUPS = {
    "vision_tower": ("vision_tower.",),
    "audio_encoder": ("audio_encoder.",),
    "aligners": ("mm_projector.", "image_newline", "audio_qformer.", "audio_projector.", "audio_final_mlp.",
                 "time_embedding."),
    "llm": ("language_model.",),
}


def _sinusoid(values: torch.Tensor, dim: int) -> torch.Tensor:
    """(N,) seconds -> (N, dim) sinusoidal encoding, for optional time tokens."""
    freqs = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    angles = values.float().unsqueeze(1) * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=1)[:, :dim]


class SalmonnO1PreTrainedModel(PreTrainedModel):
    config_class = SalmonnO1Config
    base_model_prefix = "salmonn_o1"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["Qwen2DecoderLayer", "SiglipEncoderLayer", "WhisperEncoderLayer"]

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, WindowQFormer):
            nn.init.normal_(module.query_tokens, mean=0.0, std=std)
        elif isinstance(module, SalmonnO1ForConditionalGeneration):
            nn.init.normal_(module.image_newline, mean=0.0, std=1.0 / math.sqrt(module.image_newline.numel()))


class SalmonnO1ForConditionalGeneration(SalmonnO1PreTrainedModel):
    """video-SALMONN-o1: frames + audio + text in, text out.

    forward/generate take the processor's output: `input_ids` whose media
    placeholder is already expanded to the media token count, and `media`, a
    `MediaBatch` (all frames and audio chunks of the batch, with each sample's spec).
    """

    def __init__(self, config: SalmonnO1Config):
        super().__init__(config)
        hidden = config.text_config.hidden_size
        vision_width = config.vision_config.hidden_size
        self.vision_tower = build_vision_tower(config)
        self.mm_projector = nn.Sequential(
            nn.Linear(vision_width, hidden), ACT2FN[config.projector_hidden_act], nn.Linear(hidden, hidden)
        )
        self.image_newline = nn.Parameter(torch.zeros(hidden))
        self.audio_encoder = build_audio_encoder(config)
        self.audio_qformer = WindowQFormer(config)
        self.audio_projector = nn.Linear(config.qformer_config.hidden_size, hidden)
        self.audio_final_mlp = (
            nn.Sequential(nn.Linear(hidden, hidden), ACT2FN["gelu"], nn.Linear(hidden, hidden))
            if config.audio_final_mlp
            else None
        )
        self.time_embedding = (
            nn.Linear(hidden, hidden) if config.time_tokens and config.time_token_mode == "learned" else None
        )
        self.language_model = Qwen2ForCausalLM(config.text_config)
        self.post_init()
        self.set_trainable(vision_tower=not config.freeze_vision_tower, audio_encoder=not config.freeze_audio_encoder)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, strict: bool = True, **kwargs):
        """`PreTrainedModel.from_pretrained`, but a checkpoint that does not fit is an error, not a warning.

        strict=True (default): any missing, unexpected or wrongly shaped tensor
        raises `CheckpointError` listing the keys by name. strict=False loads
        what fits and leaves the rest as initialised (reported in the log).
        Our layout only (config.json with model_type salmonn_o1), as in
        transformers, where a model class never knows a foreign checkpoint's
        names: a released video-SALMONN-o1 directory is refused with a pointer
        to the loader that maps its keys (`salmonn_o1.load`,
        `salmonn_o1.checkpoints.load_model_and_processor`) or to `salmonn-o1 convert`.
        """
        source = str(pretrained_model_name_or_path)
        if (source.startswith((".", "/", "~")) or os.sep in source.strip("/").split("/", 1)[-1]) and not os.path.isdir(
            os.path.expanduser(source)
        ):
            raise CheckpointError(f"{source}: no such checkpoint directory")
        if kwargs.get("config") is None:  # refuse a foreign layout before transformers half-loads it
            hub = ("cache_dir", "force_download", "proxies", "token", "revision", "local_files_only", "subfolder")
            try:
                raw, _ = SalmonnO1Config.get_config_dict(source, **{k: kwargs[k] for k in hub if k in kwargs})
            except (OSError, ValueError) as error:
                raise CheckpointError(f"{source}: cannot load a checkpoint: {error}") from error
            if raw.get("model_type") != SalmonnO1Config.model_type:
                raise CheckpointError(
                    f"{source}: config.json has model_type {raw.get('model_type')!r}, not "
                    f"{SalmonnO1Config.model_type!r}; SalmonnO1ForConditionalGeneration.from_pretrained reads our "
                    "layout only. A released video-SALMONN-o1 checkpoint loads with salmonn_o1.load(...) or "
                    "salmonn_o1.checkpoints.load_model_and_processor(...), or converts once with "
                    "`salmonn-o1 convert SRC DST`"
                )
        want_info = kwargs.pop("output_loading_info", False)
        kwargs.setdefault("ignore_mismatched_sizes", True)
        try:
            model, info = super().from_pretrained(
                pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs
            )
        except (OSError, ValueError, SafetensorError) as error:
            raise CheckpointError(f"{pretrained_model_name_or_path}: cannot load a checkpoint: {error}") from error
        problems = describe_loading_problems(info)
        if strict and problems:
            raise CheckpointError(
                f"{pretrained_model_name_or_path}: the checkpoint does not match the model config: "
                + "; ".join(problems) + " (pass strict=False to load the matching tensors only)"
            )
        model.set_trainable(
            vision_tower=not model.config.freeze_vision_tower, audio_encoder=not model.config.freeze_audio_encoder
        )
        return (model, info) if want_info else model

    # ---- parameter groups ----
    def set_trainable(self, **groups: bool) -> None:
        """Freeze or unfreeze parameter groups: vision_tower, audio_encoder, aligners, llm."""
        for group, trainable in groups.items():
            if group not in PARAMETER_GROUPS:
                raise KeyError(f"unknown parameter group {group!r}; choose from {sorted(PARAMETER_GROUPS)}")
            for name, param in self.named_parameters():
                if name.startswith(PARAMETER_GROUPS[group]):
                    param.requires_grad_(trainable)
        # Whisper's sinusoidal position table is never trained.
        self.audio_encoder.embed_positions.weight.requires_grad_(False)

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    # ---- encoders ----
    def encode_frames(self, pixel_values: torch.Tensor, pooled: bool) -> torch.Tensor:
        """(F, 3, S, S) -> (F, tokens_per_frame, H): video frames pooled, an image not."""
        config = self.config
        features = tower_features(self.vision_tower, pixel_values.to(self.dtype))  # (F, g*g, C)
        grid = config.patch_grid
        tokens = (
            pool_grid(features, grid, config.spatial_pool_stride, config.spatial_pool_mode)
            if pooled
            else features.view(features.shape[0], grid, grid, -1)
        )
        return add_row_newlines(self.mm_projector(tokens), self.image_newline)

    def encode_audio(self, input_features: torch.Tensor, batch_size: int | None | str = "config") -> torch.Tensor:
        """(C, mel, 3000) -> (C, tokens_per_chunk, H), before the per-sample chunk offsets.

        Chunks go through Whisper `batch_size` at a time (default: `config.audio_encode_batch_size`;
        None = all at once) and only each batch's projected tokens are kept, so a long clip's
        encoder activations never exist for all its chunks at once. Chunks are independent, so
        the batch size changes memory, not the result (beyond float rounding of batched kernels).
        """
        if batch_size == "config":
            batch_size = self.config.audio_encode_batch_size
        if not batch_size or batch_size >= input_features.shape[0]:
            return self._encode_audio_batch(input_features)
        return torch.cat([self._encode_audio_batch(part) for part in torch.split(input_features, batch_size)])

    def _encode_audio_batch(self, input_features: torch.Tensor) -> torch.Tensor:
        states = self.audio_encoder(input_features.to(self.dtype)).last_hidden_state  # (C, 1500, D)
        tokens = self.audio_projector(self.audio_qformer(states))
        return self.audio_final_mlp(tokens) if self.audio_final_mlp is not None else tokens

    def embed_inputs(self, input_ids: torch.Tensor, media: MediaBatch | None = None) -> torch.Tensor:
        """Text embeddings with every sample's media sequence written over its placeholders."""
        if media is None:
            return self.splice_media(input_ids, [None] * input_ids.shape[0])
        return self.splice_media(input_ids, self.encode_media(media))

    def encode_media(self, media: MediaBatch) -> list[torch.Tensor | None]:
        """Each sample's interleaved media sequence, (N_b, H), or None for text-only samples.

        Separate from splicing so one encoding can serve many questions.
        """
        visual = self._encode_visual_per_sample(media.pixel_values, media.kinds, media.frames_per_sample)
        audio = self._encode_audio_per_sample(media.input_features, media.chunks_per_sample)
        # Each sample's spec carries its frame times (the processor computed them once).
        return [None if spec is None else
                self._gather(spec, visual[b], audio[b], torch.tensor(spec.frame_times, dtype=torch.float32))
                for b, spec in enumerate(media.specs)]

    def splice_media(self, input_ids: torch.Tensor, sequences: list[torch.Tensor | None]) -> torch.Tensor:
        """Embed the text and write sample b's media sequence over its placeholder tokens."""
        is_media = input_ids == self.config.media_token_id
        embeds = self.get_input_embeddings()(input_ids.masked_fill(is_media, 0))
        for b, sequence in enumerate(sequences):
            positions = is_media[b].nonzero().squeeze(1)
            count = 0 if sequence is None else sequence.shape[0]
            if count != positions.numel():
                raise ValueError(
                    f"sample {b}: its media needs {count} media tokens but input_ids hold "
                    f"{positions.numel()} placeholders; build inputs with SalmonnO1Processor for this config"
                )
            if count:
                embeds[b, positions] = sequence.to(embeds.dtype)
        return embeds

    def _encode_visual_per_sample(
        self, pixel_values: torch.Tensor | None, kinds: list[str], frames_per_sample: tuple[int, ...]
    ) -> list[torch.Tensor | None]:
        if pixel_values is None or sum(frames_per_sample) == 0:
            return [None] * len(kinds)
        per_sample = torch.split(pixel_values, list(frames_per_sample))
        # Frames of the same kind go through the tower together.
        out: list[torch.Tensor | None] = [None] * len(kinds)
        for pooled in (True, False):
            index = [b for b, k in enumerate(kinds) if per_sample[b].shape[0] and (k == "image") != pooled]
            if not index:
                continue
            encoded = self.encode_frames(torch.cat([per_sample[b] for b in index]), pooled=pooled)
            for b, chunk in zip(index, torch.split(encoded, [per_sample[b].shape[0] for b in index])):
                out[b] = chunk
        return out

    def _encode_audio_per_sample(
        self, input_features: torch.Tensor | None, chunks_per_sample: tuple[int, ...]
    ) -> list[torch.Tensor | None]:
        if input_features is None or sum(chunks_per_sample) == 0:
            return [None] * len(chunks_per_sample)
        tokens = self.encode_audio(input_features)  # (sumC, T, H)
        out: list[torch.Tensor | None] = []
        for chunks in torch.split(tokens, list(chunks_per_sample)):
            if chunks.shape[0] == 0:
                out.append(None)
                continue
            offsets = chunk_position_table(chunks.shape[0], chunks.shape[-1]).to(chunks)
            out.append((chunks + offsets.unsqueeze(1)).flatten(0, 1))
        return out

    def _gather(self, spec: MediaSpec, visual: torch.Tensor | None, audio: torch.Tensor | None, times: torch.Tensor):
        hidden = self.config.text_config.hidden_size
        empty = self.image_newline.new_zeros(0, hidden)
        parts = [visual.flatten(0, 1) if visual is not None else empty, audio if audio is not None else empty]
        if spec.time_tokens:
            parts.append(self._time_token_embeddings(times))
        sources = torch.cat(parts, dim=0)
        if self.config.media_rms is not None:
            sources = nn.functional.rms_norm(sources, (hidden,), eps=1e-6) * self.config.media_rms
        return sources[interleave_plan(spec).to(sources.device)]

    def _time_token_embeddings(self, times: torch.Tensor) -> torch.Tensor:
        """(F,) seconds -> (F * K, H) time tokens: learned from a sinusoid, or the time's text tokens."""
        hidden = self.config.text_config.hidden_size
        if self.config.time_token_mode == "learned":
            return self.time_embedding(_sinusoid(times, hidden).to(self.image_newline))
        table = self._time_text_table(self.image_newline.device)
        rows = torch.round(times.to(table.device).float() / self.config.time_text_step).long()
        ids = table[rows.clamp(0, table.shape[0] - 1)]  # (F, K); past the table: its last time
        embeds = self.get_input_embeddings()(ids.clamp(min=0)) * (ids >= 0).unsqueeze(-1)
        return embeds.flatten(0, 1).to(self.image_newline.dtype)

    def _time_text_table(self, device: torch.device) -> torch.Tensor:
        """The config's time-text ids as a tensor, built once per table and device, not per clip.

        A plain attribute, not a buffer: it is configuration (saved in config.json), not weights.
        """
        ids = self.config.time_text_ids
        cached = getattr(self, "_time_text_cache", None)  # (the list it was built from, tensor)
        if cached is None or cached[0] is not ids or cached[1].device != device:
            cached = (ids, torch.tensor(ids, dtype=torch.long, device=device))
            self._time_text_cache = cached
        return cached[1]

    # ---- language model ----
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        media: MediaBatch | None = None,
        inputs_embeds: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        **kwargs,
    ):
        """Logits (and the loss, given labels) of the spliced sequence.

        `inputs_embeds` replaces `input_ids` + `media` (a caller that spliced once
        and decodes step by step); `cache`, `use_cache`, `logits_to_keep` pass
        through to the language model.
        """
        if inputs_embeds is None:
            inputs_embeds = self.embed_inputs(input_ids, media)
        if labels is not None and input_ids is not None:
            labels = labels.masked_fill(input_ids == self.config.media_token_id, IGNORE_INDEX)
        if position_ids is None and attention_mask is not None and not _has_cache(kwargs):
            # Left-padded batches must count positions from each sample's first real token.
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        return self.language_model(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
            labels=labels, **kwargs,
        )

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        media: MediaBatch | None = None,
        **generate_kwargs,
    ) -> torch.Tensor:
        """Hugging Face `generate` over the spliced embeddings; returns only the new tokens."""
        inputs_embeds = self.embed_inputs(input_ids, media)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return self.language_model.generate(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, **generate_kwargs
        )


def _has_cache(kwargs: dict) -> bool:
    cache = kwargs.get("past_key_values", kwargs.get("cache"))
    return cache is not None and (not hasattr(cache, "get_seq_length") or cache.get_seq_length() > 0)


def describe_loading_problems(info: dict, limit: int = 12) -> list[str]:
    """Human-readable lines for missing / unexpected / mismatched keys of a loading report."""
    problems = []
    for label, keys in (("missing", info.get("missing_keys")), ("unexpected", info.get("unexpected_keys"))):
        keys = sorted(keys or [])
        if keys:
            shown = ", ".join(keys[:limit]) + (f" ... ({len(keys)} in all)" if len(keys) > limit else "")
            problems.append(f"{label} keys: {shown}")
    mismatched = sorted(info.get("mismatched_keys") or [], key=str)
    if mismatched:
        shown = ", ".join(
            f"{m[0]} (checkpoint {tuple(m[1])} vs model {tuple(m[2])})" if isinstance(m, tuple) and len(m) == 3
            else str(m) for m in mismatched[:limit]
        )
        problems.append(f"wrong shapes: {shown}")
    return problems
