"""`salmonn-o1 reproduce mini`: train the miniature model's variants, evaluate them, optionally ship.

The research package's subcommands; `salmonn-o1` finds them through the
`salmonn_o1.commands` entry-point group (pyproject.toml), the core never imports them.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register_reproduce(subparsers: argparse._SubParsersAction) -> None:
    from salmonn_o1_mini.reproduce import STRATEGIES

    parser = subparsers.add_parser(
        "reproduce", help="reproduce the shipped miniature model and docs/results.md",
        description="Runs recipes/mini-perception.yaml (encoders), the LLM's curriculum mini-copy.yaml, "
        "mini-text.yaml (clip descriptions in words) and mini-answer.yaml, mini-ground.yaml (the media), "
        "mini-sft.yaml, mini-options.yaml and mini-letters.yaml (the option letter), mini-lookup.yaml (look-ups "
        "of the frame at a time), mini-checks.yaml (counting and glitch detection as checks "
        "of looked-up facts), mini-refine.yaml and mini-anneal.yaml (the same data at half and a quarter "
        "of the learning rate), mini-direct.yaml and mini-pdpo.yaml (contrastive, all-steps, random and "
        "contrastive one-step-per-path selection on shared rollouts), then scores every variant on held-out "
        "AVR-Synth test items. Each run resumes; finished runs are skipped. Stage speeds on 2 CPU cores: "
        "the notebook (src/salmonn_o1_mini/docs/notebook.md).",
    )
    parser.add_argument("target", choices=["mini"], help="what to reproduce")
    parser.add_argument("--recipes", default="recipes", help="folder with the mini-*.yaml recipes")
    parser.add_argument("--runs", default="runs", help="folder for the training runs and prediction caches")
    parser.add_argument("--n", type=int, default=1000, help="held-out test items to score (default 1000)")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES),
                        help="pDPO step selections to train (top1: contrastive, one step per path)")
    parser.add_argument("--no-direct", action="store_true", help="skip the direct-answer variant")
    parser.add_argument("--results", default="docs/results.md", help="report to write (test split)")
    parser.add_argument("--dev-results", default="docs/dev/results.md",
                        help="the same report on the dev split ('' to skip it)")
    parser.add_argument("--grpo", action="store_true",
                        help="also train GRPO (recipes/mini-grpo.yaml) with the contrastive pDPO run's generated "
                             "tokens as its budget, and write --grpo-results (SFT vs pDPO vs GRPO, test and dev)")
    parser.add_argument("--grpo-results", default="docs/results-grpo.md", help="the GRPO report to write")
    parser.add_argument("--ship", nargs="?", const="default", default=None,
                        help="copy the better reasoning model (pDPO or reasoning SFT, by test accuracy) here "
                             "(no value: into the package as the default model); a non-empty folder that is "
                             "not a shipped model is refused unless --force")
    parser.add_argument("--force", action="store_true",
                        help="let --ship replace a non-empty folder that is not a previously shipped model")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from salmonn_o1.inference import DEFAULT_MODEL_DIR
    from salmonn_o1_mini.reproduce import MiniPlan, reproduce_mini

    ship = None if args.ship is None else (DEFAULT_MODEL_DIR if args.ship == "default" else Path(args.ship))
    plan = MiniPlan(recipes=Path(args.recipes), runs=Path(args.runs), n=args.n, strategies=tuple(args.strategies),
                    direct=not args.no_direct, results=Path(args.results),
                    dev_results=Path(args.dev_results) if args.dev_results else None, ship=ship,
                    force=args.force, grpo=args.grpo, grpo_results=Path(args.grpo_results))
    best = reproduce_mini(plan)
    print(f"best reasoning model on the test split: {best}" + (f"; shipped to {ship}" if ship else ""))
    return 0
