"""The audio-visual model: vision branch, audio branch, interleaving, the whole model."""

from salmonn_o1.model.interleave import MediaSpec, interleave_plan, media_token_count
from salmonn_o1.model.modeling import SalmonnO1ForConditionalGeneration

__all__ = ["MediaSpec", "SalmonnO1ForConditionalGeneration", "interleave_plan", "media_token_count"]
