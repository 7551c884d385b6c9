"""Does a model look at the media? Its answer loss with each clip's own media vs another clip's.

A model that learned only the text of AVR-Synth answers scores the same loss whichever clip
it is shown; one that reads the media pays for the wrong clip. This is how the first
miniature-model runs were found to ignore their media (salmonn_o1_mini/docs/notebook.md).

    python -m salmonn_o1_mini.media_use MODEL_DIR [--n 32] [--split dev]
"""

from __future__ import annotations

import argparse
import json

import torch

from salmonn_o1.data.synthetic.dataset import generate_item
from salmonn_o1.processor import MediaFeatures, SalmonnO1Processor
from salmonn_o1.train.sft_data import sft_conversation


@torch.no_grad()
def item_loss(model, processor: SalmonnO1Processor, item, features: MediaFeatures | None) -> float:
    """Mean cross-entropy over the assistant tokens of one item's reasoning target."""
    sample = processor.encode(sft_conversation(item, True), features, add_generation_prompt=False)
    batch = processor.collate([sample], padding_side="right")
    return float(model(**batch).loss)


def media_swap_report(model, processor: SalmonnO1Processor, split: str = "dev", n: int = 32) -> dict:
    """Mean answer loss with own media, with the next clip's media, and the share of items
    whose loss rises by more than 0.05 nats per token when the media are swapped."""
    samples = [generate_item(split, i) for i in range(n)]
    size = model.config.image_size
    features = [processor.media_features(s.render(size=size)) for s in samples]
    own = [item_loss(model, processor, s.item, f) for s, f in zip(samples, features)]
    swapped = [item_loss(model, processor, s.item, features[(i + 1) % n]) for i, s in enumerate(samples)]
    rises = sum(b - a > 0.05 for a, b in zip(own, swapped))
    return {"items": n, "own_media_loss": round(sum(own) / n, 4), "swapped_media_loss": round(sum(swapped) / n, 4),
            "share_hurt_by_swap": round(rises / n, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="checkpoint directory or preset")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--n", type=int, default=32)
    args = parser.parse_args(argv)
    from salmonn_o1.checkpoints import load_model_and_processor

    model, processor = load_model_and_processor(args.model, device="cpu", dtype="float32")
    model.eval()
    print(json.dumps(media_swap_report(model, processor, args.split, args.n)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
