"""The 7B preset's size, counted on the meta device (nothing is allocated)."""

import torch

from salmonn_o1.config import video_salmonn_o1_7b_config
from salmonn_o1.model import SalmonnO1ForConditionalGeneration

# Published / documented sizes (DESIGN.md section 2), in parameters.
PUBLISHED = {
    "llm": 7.616e9,  # Qwen2-7B
    "vision_tower": 397.7e6,  # SigLIP so400m, 26 of 27 layers
    "audio_encoder": 637.0e6,  # Whisper large-v3 encoder
    "qformer": 20.5e6,
    "speech_llama_proj": 2.8e6,
    "final_linear": 25.7e6,
    "mm_projector": 17.0e6,
}


def test_7b_parameter_count_matches_published_parts():
    with torch.device("meta"):
        model = SalmonnO1ForConditionalGeneration(video_salmonn_o1_7b_config())
    total = sum(p.numel() for p in model.parameters())
    assert abs(total - sum(PUBLISHED.values())) / sum(PUBLISHED.values()) < 0.02

    def count(prefix: str) -> int:
        return sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix))

    assert abs(count("language_model.") - PUBLISHED["llm"]) / PUBLISHED["llm"] < 0.01
    assert abs(count("vision_tower.") - PUBLISHED["vision_tower"]) / PUBLISHED["vision_tower"] < 0.01
    assert abs(count("audio_encoder.") - PUBLISHED["audio_encoder"]) / PUBLISHED["audio_encoder"] < 0.01
    assert abs(count("audio_qformer.") - PUBLISHED["qformer"]) / PUBLISHED["qformer"] < 0.02
    assert abs(count("mm_projector.") - PUBLISHED["mm_projector"]) / PUBLISHED["mm_projector"] < 0.01
