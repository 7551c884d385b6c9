"""Retrain the bundled tokenizer on AVR-Synth text (offline, seconds).

    .venv/bin/python scripts/train_tokenizer.py [--items 4000] [--vocab 1024]

The tiny and mini presets size their vocabulary to it (704 rows >= its 677 ids).
"""

from __future__ import annotations

import argparse

from salmonn_o1.data.synthetic import generate_item
from salmonn_o1.prompts import format_question, format_steps
from salmonn_o1.tokenizer import DEFAULT_TOKENIZER_DIR, train_tokenizer


def corpus(n: int):
    for index in range(n):
        item = generate_item("train", index).item
        for reasoning in (True, False):
            yield format_question(item.question, item.options, reasoning=reasoning)
        yield format_steps(item.steps or [], item.answer)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=4000)
    parser.add_argument("--vocab", type=int, default=1024)
    args = parser.parse_args()
    tokenizer = train_tokenizer(corpus(args.items), vocab_size=args.vocab)
    tokenizer.save_pretrained(DEFAULT_TOKENIZER_DIR)
    print(f"{len(tokenizer)} tokens -> {DEFAULT_TOKENIZER_DIR}")


if __name__ == "__main__":
    main()
