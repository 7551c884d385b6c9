"""Visual branch: SigLIP features, 2x2 pooling, mlp2x_gelu projector, row newlines."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from transformers import SiglipVisionModel

from salmonn_o1.config import SalmonnO1Config


def build_vision_tower(config: SalmonnO1Config) -> SiglipVisionModel:
    """SigLIP with only the layers the features need (the release drops the last one)."""
    vision_config = copy.deepcopy(config.vision_config)
    vision_config.num_hidden_layers = config.vision_layers_used
    vision_config.vision_use_head = False
    return SiglipVisionModel(vision_config)


def tower_features(tower: SiglipVisionModel, pixel_values: torch.Tensor) -> torch.Tensor:
    """(F, 3, S, S) -> (F, g*g, C): the last built layer's output, before post-layernorm."""
    out = tower(pixel_values=pixel_values, output_hidden_states=True)
    return out.hidden_states[-1]


def pool_grid(features: torch.Tensor, grid: int, stride: int, mode: str) -> torch.Tensor:
    """(F, g*g, C) -> (F, g', g', C) with g' = g // stride (floor: the last row/column drop)."""
    frames, _, channels = features.shape
    x = features.view(frames, grid, grid, channels).permute(0, 3, 1, 2)
    x = F.max_pool2d(x, stride, stride) if mode == "max" else F.avg_pool2d(x, stride, stride)
    return x.permute(0, 2, 3, 1)


def add_row_newlines(grid_tokens: torch.Tensor, newline: torch.Tensor) -> torch.Tensor:
    """(F, rows, cols, H) -> (F, rows * (cols + 1), H): a learned newline after each row."""
    frames, rows, _, hidden = grid_tokens.shape
    newlines = newline.view(1, 1, 1, hidden).expand(frames, rows, 1, hidden).to(grid_tokens.dtype)
    return torch.cat([grid_tokens, newlines], dim=2).flatten(1, 2)
