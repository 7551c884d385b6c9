"""AVR-Synth clips as pDPO training questions, for recipes to name as a component.

    pdpo:
      questions: {_component_: salmonn_o1.data.synthetic.pdpo_questions.avr_synth_questions,
                  split: train, n: 1024, start: 900000}

The pDPO stages know questions only as plain records and media only as
references that name their own loader, so they never import AVR-Synth: each
question's media reference names `render_clip`, which renders the clip in
memory at the model's frame rate and frame size (no mp4 round trip).
"""

from __future__ import annotations

from typing import Any

from salmonn_o1.data.synthetic.dataset import generate_item, render_media

RENDER_CLIP = f"{__name__}.render_clip"


def clip_ref(split: str, index: int, processor) -> dict[str, Any]:
    """The media reference of clip `index` of `split`, rendered as `processor` expects it."""
    return {"_component_": RENDER_CLIP, "split": split, "index": int(index),
            "fps": float(processor.config.frames_per_second), "size": int(processor.config.image_size)}


def render_clip(split: str, index: int, processor, fps: float = 2.0, size: int = 64):
    """The model features of one clip (what `pdpo.media.load_features` calls for a `clip_ref`)."""
    return processor.media_features(render_media(generate_item(split, int(index)), fps=fps, size=size))


def avr_synth_questions(processor, split: str = "train", n: int = 32, start: int = 0) -> list[dict[str, Any]]:
    """Clips start..start+n-1 of `split` as question records (id, question, options, reference, media)."""
    questions = []
    for index in range(start, start + n):
        item = generate_item(split, index).item
        questions.append({"id": item.id, "question": item.question, "options": list(item.options),
                          "reference": item.answer, "media": clip_ref(split, index, processor)})
    return questions
