"""Grounding probes: can a model learn one media-only answer from real AVR-Synth clips?

Each probe asks one question whose answer letter only the media give, trains the aligners and
the LLM on it (encoders frozen), and prints the answer-letter loss every 10 steps against
chance. They isolate one skill of the full SFT mix, in minutes (salmonn_o1_mini/docs/notebook.md):

    first-colour  "What colour is the first shape?"  (reading the picture)
    colour-at     "What colour is on screen at 3.5 s?"  (a time look-up)

    python -m salmonn_o1_mini.probes MODEL_DIR first-colour [--steps 120] [--lr 5e-4]
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

import numpy as np
import torch

from salmonn_o1.data.synthetic.dataset import SynthSample, generate_item
from salmonn_o1.train.sft_data import SFTObjective
from salmonn_o1_mini.perception import COLOUR_NAMES

LETTERS = "ABCDEF"
OPTIONS = " ".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(COLOUR_NAMES))


def first_colour(sample: SynthSample, rng: np.random.Generator) -> tuple[str, int]:
    return f"What colour is the first shape? Options: {OPTIONS}", COLOUR_NAMES.index(sample.timeline.scenes[0].colour)


def colour_at(sample: SynthSample, rng: np.random.Generator) -> tuple[str, int]:
    scene = sample.timeline.scenes[int(rng.integers(len(sample.timeline.scenes)))]
    t = scene.start + 0.5 * int(rng.integers(max(1, int((scene.end - scene.start) / 0.5))))
    return f"What colour is on screen at {t:.1f} s? Options: {OPTIONS}", COLOUR_NAMES.index(scene.colour_at(t))


PROBES: dict[str, Callable[[SynthSample, np.random.Generator], tuple[str, int]]] = {
    "first-colour": first_colour,
    "colour-at": colour_at,
}


def run_probe(model, processor, probe: str, steps: int, lr: float, batch_size: int = 8,
              seed: int = 0, log: Callable[[str], None] | None = print) -> list[float]:
    """Train on the probe (in place); returns the answer-letter loss of every step."""
    question_of = PROBES[probe]
    torch.manual_seed(seed)
    model.set_trainable(vision_tower=False, audio_encoder=False, aligners=True, llm=True)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    objective = SFTObjective(processor)
    size = model.config.image_size
    model.train()
    losses: list[float] = []
    index = 0
    for step in range(steps):
        encoded = []
        for _ in range(batch_size):
            sample = generate_item("train", index)
            question, answer = question_of(sample, np.random.default_rng(index))
            index += 1
            encoded.append(processor.encode(
                [{"role": "user", "content": question}, {"role": "assistant", "content": LETTERS[answer]}],
                processor.media_features(sample.render(size=size)), add_generation_prompt=False))
        batch = objective.collate(encoded)
        inputs = {k: v for k, v in batch.items() if k != "num_tokens"}
        out = model(**inputs)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad()
        labels = inputs["labels"]
        first = (labels >= 0).int().argmax(1)  # the answer letter: the first supervised token
        rows = torch.arange(labels.shape[0])
        losses.append(float(torch.nn.functional.cross_entropy(out.logits[rows, first - 1].detach(),
                                                              labels[rows, first])))
        if log and (step + 1) % 10 == 0:
            log(f"step {step + 1}: letter loss {np.mean(losses[-10:]):.3f} (chance {math.log(len(LETTERS)):.3f})")
    return losses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="checkpoint directory (e.g. runs/mini-perception/final) or preset")
    parser.add_argument("probe", choices=sorted(PROBES))
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)
    from salmonn_o1.checkpoints import load_model_and_processor

    model, processor = load_model_and_processor(args.model, device="cpu", dtype="float32")
    run_probe(model, processor, args.probe, args.steps, args.lr, args.batch_size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
