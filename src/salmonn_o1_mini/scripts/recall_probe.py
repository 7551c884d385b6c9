"""Does a from-scratch LLM of the mini model's size learn associative recall at all?

Every AVR-Synth step starts from a look-up ("when is the white circle on screen?"), and the
text-stage probes (salmonn_o1_mini/docs/notebook.md) never learnt it. This probe strips the look-up to its
core, multi-query associative recall (MQAR) on the task's own words: a list of facts
"<shape> <time>" (each shape one token, each time one token), a bar, then every shape again in
a random order, and the loss on the times only:

     white circle 2.0  red square 5.5  blue cross 0.5 |  red square [5.5]  white circle [2.0] ...

A model that does not look up the keys can still learn that each answer is one of the listed
times not yet asked for; the probe prints the accuracy of that guess ("no-recall baseline")
beside the model's, so a plateau at the baseline means no recall.

    python src/salmonn_o1_mini/scripts/recall_probe.py --steps 1500                 # the mini LLM: 4 layers, 192 wide
    python src/salmonn_o1_mini/scripts/recall_probe.py --steps 1500 --layers 2 --kv-heads 6
    python src/salmonn_o1_mini/scripts/recall_probe.py --steps 300 --window 1       # with the built-in recall circuit

`--window k` starts the LLM with the recall circuit of salmonn_o1_mini.recall_circuit (rope_theta
1e6) and pins it; `--no-pin` lets training change it.
"""

from __future__ import annotations

import argparse
import random
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from salmonn_o1.data.synthetic.timeline import COLOURS, SHAPES
from salmonn_o1.tokenizer import load_tokenizer
from salmonn_o1_mini.recall_circuit import pin_recall_circuit, seed_recall_circuit

Example = tuple[list[int], list[int]]


def recall_example(rng: random.Random, keys: list[int], values: list[int], bar: int, max_pairs: int) -> Example:
    """(input ids, labels): facts, a bar, then each key again with its value as the label."""
    count = rng.randint(2, max_pairs)
    chosen = rng.sample(keys, count)
    answers = [rng.choice(values) for _ in chosen]
    ids = [token for pair in zip(chosen, answers) for token in pair] + [bar]
    labels = [-100] * len(ids)
    for index in rng.sample(range(count), count):
        ids += [chosen[index], answers[index]]
        labels += [-100, answers[index]]
    return ids, labels


def no_recall_accuracy(examples: list[Example]) -> float:
    """Expected accuracy of guessing uniformly among the listed values not yet asked for."""
    total, hits = 0, 0.0
    for _ids, labels in examples:
        asked = [label for label in labels if label != -100]
        for position in range(len(asked)):
            hits += 1.0 / len(set(asked[position:]))
            total += 1
    return hits / total


def collate(examples: list[Example]) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(len(ids) for ids, _ in examples)
    ids = torch.zeros(len(examples), length, dtype=torch.long)
    labels = torch.full_like(ids, -100)
    for row, (tokens, targets) in enumerate(examples):
        ids[row, :len(tokens)] = torch.tensor(tokens)
        labels[row, :len(targets)] = torch.tensor(targets)
    return ids, labels


def accuracy(model: Qwen2ForCausalLM, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
    ids, labels = batch
    with torch.no_grad():
        predicted = model(input_ids=ids).logits[:, :-1].argmax(-1)
    target = labels[:, 1:]
    asked = target != -100
    return float((predicted[asked] == target[asked]).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--layers", type=int, default=4, help="LLM depth (the mini preset: 4)")
    parser.add_argument("--hidden", type=int, default=192, help="LLM width (the mini preset: 192)")
    parser.add_argument("--kv-heads", type=int, default=2, help="key/value heads (the mini preset: 2 of 6)")
    parser.add_argument("--max-pairs", type=int, default=8, help="facts per sequence: 2 to this many")
    parser.add_argument("--window", type=int, default=0, help="recall circuit window (0: a plain LLM)")
    parser.add_argument("--no-pin", action="store_true", help="let training change the recall circuit")
    parser.add_argument("--every", type=int, default=100, help="evaluate every this many steps")
    args = parser.parse_args()

    torch.manual_seed(0)
    tokenizer = load_tokenizer()
    tokenizer.add_tokens([f" {colour} {shape}" for colour in COLOURS for shape in SHAPES])
    tokenizer.add_tokens([f" {k / 2:.1f}" for k in range(121)])
    keys = [tokenizer.convert_tokens_to_ids(f" {colour} {shape}") for colour in COLOURS for shape in SHAPES]
    values = [tokenizer.convert_tokens_to_ids(f" {k / 2:.1f}") for k in range(121)]
    bar = tokenizer(" |")["input_ids"][-1]

    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=args.hidden, intermediate_size=args.hidden * 8 // 3,
                         num_hidden_layers=args.layers, num_attention_heads=args.hidden // 32,
                         num_key_value_heads=args.kv_heads, tie_word_embeddings=False,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6 if args.window else 1e4})
    model = Qwen2ForCausalLM(config)
    if args.window:
        seed_recall_circuit(model, args.window)
        if not args.no_pin:
            pin_recall_circuit(model, args.window)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    dev_rng, train_rng = random.Random(1), random.Random(0)
    dev_examples = [recall_example(dev_rng, keys, values, bar, args.max_pairs) for _ in range(256)]
    dev = collate(dev_examples)
    print(f"no-recall baseline on dev: {no_recall_accuracy(dev_examples):.2f}", flush=True)
    started = time.time()
    for step in range(1, args.steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, step / 50)
        ids, labels = collate([recall_example(train_rng, keys, values, bar, args.max_pairs) for _ in range(args.batch)])
        loss = model(input_ids=ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % args.every == 0:
            print(f"step {step}  loss {loss.item():.3f}  dev recall accuracy {accuracy(model, dev):.2f}  "
                  f"{time.time() - started:.0f}s", flush=True)


if __name__ == "__main__":
    main()
