"""Exploratory SFT of the miniature model on AVR-Synth (rendered on the fly), CPU.

    .venv/bin/python scripts/train_mini_quick.py --out runs/mini-quick --steps 3000

A deliberately small loop over the library's pieces (processor, model,
prompts), checkpointed every --save-every steps and resumable (re-run the same
command). The recipe-driven trainer (`salmonn-o1 train sft`) is the supported
path; this script exists to de-risk the miniature model's size and schedule.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch

from salmonn_o1.checkpoints import save_model_and_processor
from salmonn_o1.config import mini_config
from salmonn_o1.data.synthetic import generate_item, render_media
from salmonn_o1.model import SalmonnO1ForConditionalGeneration
from salmonn_o1.processor import SalmonnO1Processor
from salmonn_o1.prompts import FINAL_ANSWER_QUESTION, format_question, format_steps
from salmonn_o1.tokenizer import load_tokenizer


def conversation(item, reasoning: bool) -> list[dict]:
    if not reasoning:
        return [{"role": "user", "content": format_question(item.question, item.options, reasoning=False)},
                {"role": "assistant", "content": item.answer}]
    return [{"role": "user", "content": format_question(item.question, item.options)},
            {"role": "assistant", "content": format_steps(item.steps or [], item.answer)},
            {"role": "user", "content": FINAL_ANSWER_QUESTION},
            {"role": "assistant", "content": f"The answer is {item.answer}."}]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="runs/mini-quick")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=150)
    parser.add_argument("--direct-fraction", type=float, default=0.2)
    parser.add_argument("--save-every", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = mini_config()
    torch.manual_seed(args.seed)
    model = SalmonnO1ForConditionalGeneration(config)
    processor = SalmonnO1Processor(load_tokenizer(), config)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    start = 0
    state_file = out / "state.pt"
    if state_file.exists():
        state = torch.load(state_file, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["step"]
        print(f"resumed at step {start}")

    def lr_at(step: int) -> float:
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        progress = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    model.train()
    log = (out / "metrics.jsonl").open("a")
    began = time.time()
    for step in range(start, args.steps):
        rng = random.Random(args.seed * 1_000_003 + step)
        samples = []
        for b in range(args.batch):
            sample = generate_item("train", step * args.batch + b)
            features = processor.media_features(render_media(sample, fps=config.frames_per_second, size=64))
            reasoning = rng.random() >= args.direct_fraction
            samples.append(processor.encode(conversation(sample.item, reasoning), features, add_generation_prompt=False))
        batch = processor.collate(samples, padding_side="right")
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        record = {"step": step + 1, "loss": round(loss.item(), 4), "lr": lr_at(step),
                  "elapsed_s": round(time.time() - began, 1)}
        log.write(json.dumps(record) + "\n")
        log.flush()
        if (step + 1) % 25 == 0:
            print(record, flush=True)
        if (step + 1) % args.save_every == 0 or step + 1 == args.steps:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step + 1},
                       state_file)
            save_model_and_processor(model, processor, out / "model")


if __name__ == "__main__":
    main()
