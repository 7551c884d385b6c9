"""Audio branch: Whisper encoder, LayerNorm, window-level Q-Former, projections, chunk offsets."""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import Blip2QFormerModel
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from salmonn_o1.config import SalmonnO1Config


def build_audio_encoder(config: SalmonnO1Config) -> WhisperEncoder:
    return WhisperEncoder(config.audio_config)


class WindowQFormer(nn.Module):
    """One (or a few) learned queries attend to each 0.2 s window of Whisper frames.

    Windows do not overlap, so windowing is a reshape: chunk (1500, D) ->
    (150 windows, 10 frames, D). Every window is an independent Q-Former call,
    batched together.
    """

    def __init__(self, config: SalmonnO1Config):
        super().__init__()
        qformer_config = config.qformer_config
        self.window_frames = config.audio_window_frames
        self.norm = nn.LayerNorm(config.audio_config.d_model)
        self.query_tokens = nn.Parameter(torch.zeros(1, config.audio_queries_per_window, qformer_config.hidden_size))
        self.qformer = Blip2QFormerModel(qformer_config)

    def forward(self, encoder_states: torch.Tensor) -> torch.Tensor:
        """(C, frames, D) -> (C, windows * queries, Dq)."""
        chunks, frames, dim = encoder_states.shape
        windows = frames // self.window_frames
        x = self.norm(encoder_states)[:, : windows * self.window_frames]
        x = x.reshape(chunks * windows, self.window_frames, dim)
        queries = self.query_tokens.expand(x.shape[0], -1, -1)
        out = self.qformer(query_embeds=queries, encoder_hidden_states=x).last_hidden_state
        return out.reshape(chunks, windows * queries.shape[1], -1)


def chunk_position_table(num_chunks: int, hidden_size: int) -> torch.Tensor:
    """(num_chunks, H): row 0 zeros, row p+1 the standard sinusoid of position p (the release's offset)."""
    positions = torch.arange(max(num_chunks - 1, 0), dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, hidden_size, 2, dtype=torch.float32) * (-math.log(10000.0) / hidden_size))
    table = torch.zeros(max(num_chunks - 1, 0), hidden_size)
    table[:, 0::2] = torch.sin(positions * div)
    table[:, 1::2] = torch.cos(positions * div)[:, : hidden_size // 2]
    return torch.cat([torch.zeros(1, hidden_size), table], dim=0)[:num_chunks]
