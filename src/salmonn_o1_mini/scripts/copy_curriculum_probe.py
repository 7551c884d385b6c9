"""Does a from-scratch LLM of the mini model's size learn to copy the question's entity?

A bare loop (no media, no chat template): a `Qwen2ForCausalLM` shaped like the mini preset's
LLM learns AVR-Synth text items (the clip's description, then its question) and prints, every
50 steps, the teacher-forced accuracy on the colour words of the dev targets. This is the
experiment behind recipes/mini-copy.yaml (salmonn_o1_mini/docs/notebook.md, "The copy curriculum"):

    python src/salmonn_o1_mini/scripts/copy_curriculum_probe.py --lr 1e-3 --steps 300                # counting, first step
    python src/salmonn_o1_mini/scripts/copy_curriculum_probe.py --lr 1e-3 --steps 600 --families all --full
    python src/salmonn_o1_mini/scripts/copy_curriculum_probe.py --lr 1e-3 --steps 700 --families all --full --warmup-copy 250
    python src/salmonn_o1_mini/scripts/copy_curriculum_probe.py --lr 1e-3 --steps 500 --time-tokens   # " 3.5" is one token
    python src/salmonn_o1_mini/scripts/copy_curriculum_probe.py --lr 1e-3 --steps 400 --window 5     # the recall circuit

It also prints the share of dev targets predicted entirely right (every token, teacher-forced).
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from salmonn_o1.data.synthetic import FAMILIES, SynthConfig
from salmonn_o1.data.synthetic.describe import text_item
from salmonn_o1.data.synthetic.timeline import COLOURS, SHAPES
from salmonn_o1.tokenizer import load_tokenizer
from salmonn_o1_mini.recall_circuit import pin_recall_circuit, seed_recall_circuit

TRANSFORMS: list = []  # text rewrites of prompt and target (--entity-tokens)
COPY_FAMILY = "cross_modal_counting"  # its first step copies the question's shape, then its times
EASY = SynthConfig(num_options=2, min_scenes=3, max_scenes=3, min_duration=4.0, max_duration=6.0,
                   extra_sounds=(0, 1), extra_beeps=(0, 1))  # fewer sentences to search


def target_text(item, full: bool) -> str:
    if not full:
        return " " + item.steps[0]
    steps = " ".join(f"{k}. {step}" for k, step in enumerate(item.steps, 1))
    return f" {steps} The answer is {item.answer}."


def examples(tokenizer, split: str, start: int, n: int, families: set[str], full: bool,
             config: SynthConfig | None = None):
    out, index = [], start
    while len(out) < n:
        item = text_item(split, index % 999_999, config)
        index += 1
        if item.category in families:
            question, target = item.question + "\nAnswer:", target_text(item, full)
            for transform in TRANSFORMS:
                question, target = transform(question), transform(target)
            out.append((tokenizer(question)["input_ids"], tokenizer(target)["input_ids"]))
    return out


def collate(pairs):
    length = max(len(p) + len(t) for p, t in pairs)
    ids = torch.zeros(len(pairs), length, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for row, (prompt, target) in enumerate(pairs):
        sequence = prompt + target
        ids[row, :len(sequence)] = torch.tensor(sequence)
        mask[row, :len(sequence)] = 1
        labels[row, len(prompt):len(sequence)] = torch.tensor(target)
    return ids, mask, labels


def dev_accuracy(model, batch, colour_ids: torch.Tensor, from_id: int) -> tuple[float, float, float]:
    """(accuracy on the colour words, on the first token after " from" (the start time's look-up),
    share of targets right in every token), teacher-forced."""
    ids, mask, labels = batch
    with torch.no_grad():
        predicted = model(input_ids=ids, attention_mask=mask).logits[:, :-1].argmax(-1)
    target = labels[:, 1:]
    is_colour = torch.isin(target, colour_ids)
    right = (predicted == target) | (target == -100)
    after_from = torch.zeros_like(target, dtype=torch.bool)
    for row in range(target.shape[0]):
        positions = ((ids[row, :-1] == from_id) & (target[row] != -100)).nonzero().flatten()
        if len(positions):
            after_from[row, positions[0]] = True
    return (float(((predicted == target) & is_colour).sum()) / max(1, int(is_colour.sum())),
            float(((predicted == target) & after_from).sum()) / max(1, int(after_from.sum())),
            float(right.all(1).float().mean()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--families", default=COPY_FAMILY, help="comma-separated, or 'all'")
    parser.add_argument("--full", action="store_true", help="every step and the answer (default: first step)")
    parser.add_argument("--warmup-copy", type=int, default=0,
                        help="first train this many steps on the counting family's first step only")
    parser.add_argument("--layers", type=int, default=4, help="LLM depth (the mini preset: 4)")
    parser.add_argument("--hidden", type=int, default=192, help="LLM width (the mini preset: 192)")
    parser.add_argument("--easy-steps", type=int, default=0,
                        help="first train this many steps on clips of 3 shapes, few sounds, 2 options")
    parser.add_argument("--entity-tokens", action="store_true",
                        help='each "colour shape" one token and " is visible" dropped: the key right before "from"')
    parser.add_argument("--window", type=int, default=0,
                        help="start the LLM with the recall circuit of this window, pinned (rope_theta 1e6)")
    parser.add_argument("--time-tokens", action="store_true",
                        help='add " 0.0", " 0.5", ... " 60.0" to the tokenizer as single tokens')
    args = parser.parse_args()

    torch.manual_seed(0)
    tokenizer = load_tokenizer()
    if args.time_tokens:
        tokenizer.add_tokens([f" {k / 2:.1f}" for k in range(121)])
    if args.entity_tokens:
        tokenizer.add_tokens([f" {colour} {shape}" for colour in COLOURS for shape in SHAPES])
        TRANSFORMS.append(lambda text: text.replace(" is visible from ", " from "))
    families = set(FAMILIES) if args.families == "all" else set(args.families.split(","))
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=args.hidden, intermediate_size=args.hidden * 8 // 3,
                         num_hidden_layers=args.layers, num_attention_heads=args.hidden // 32, num_key_value_heads=2,
                         tie_word_embeddings=False,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6 if args.window else 1e4})
    model = Qwen2ForCausalLM(config)
    if args.window:
        seed_recall_circuit(model, args.window)
        pin_recall_circuit(model, args.window)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    from_id = tokenizer(" from")["input_ids"][-1]
    colour_ids = torch.tensor([tokenizer(" " + c)["input_ids"][0] for c in COLOURS])
    dev = collate(examples(tokenizer, "dev", 0, 64, families, args.full))
    started = time.time()
    for step in range(1, args.steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, step / 50)
        copying = step <= args.warmup_copy
        config = EASY if step <= args.easy_steps else None
        batch = collate(examples(tokenizer, "train", step * 97, 16, {COPY_FAMILY} if copying else families,
                                 False if copying else args.full, config))
        loss = model(input_ids=batch[0], attention_mask=batch[1], labels=batch[2]).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 50 == 0:
            colour, start_time, whole = dev_accuracy(model, dev, colour_ids, from_id)
            print(f"step {step}  loss {loss.item():.3f}  dev colour-word accuracy {colour:.2f}  "
                  f"start-time look-up {start_time:.2f}  targets all right {whole:.2f}  "
                  f"{time.time() - started:.0f}s", flush=True)


if __name__ == "__main__":
    main()
