"""AVR-Synth: procedural audio-visual reasoning clips whose questions need sound
and picture together, with gold step-by-step solutions computed from the clip.

    sample = generate_item("train", 42)        # item + timeline, no pixels yet
    media = render_media(sample, fps=2.0, size=64)   # DecodedMedia for the processor
    write_sample_mp4(sample, "clip.mp4")       # H.264 + AAC for the real pipeline
    generate_split("test", 500, "avr_test/")   # mp4s + items.jsonl

Modules: config (knobs), timeline (world model + queries), questions (families),
render (pixels + samples), video_io (mp4), dataset (seeds, splits, writing).
"""

from salmonn_o1.data.synthetic.config import CROSS_MODAL_FAMILIES, FAMILIES, SynthConfig
from salmonn_o1.data.synthetic.dataset import (
    SPLIT_OFFSETS,
    SynthSample,
    generate_item,
    generate_split,
    load_split,
    render_media,
    write_sample_mp4,
)
from salmonn_o1.data.synthetic.timeline import Scene, Sound, Timeline

__all__ = [
    "CROSS_MODAL_FAMILIES",
    "FAMILIES",
    "SPLIT_OFFSETS",
    "Scene",
    "Sound",
    "SynthConfig",
    "SynthSample",
    "Timeline",
    "generate_item",
    "generate_split",
    "load_split",
    "render_media",
    "write_sample_mp4",
]
