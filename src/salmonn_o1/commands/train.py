"""`salmonn-o1 train STAGE --config RECIPE [key=value ...]`: recipe-driven training (sft, pdpo, or a
stage whose recipe names its objective component, such as perception).

Run under `accelerate launch` for several processes or GPUs (configs in
recipes/accelerate/); a plain `salmonn-o1 train` runs one process. For pdpo
the launch spreads the data stages too: each process takes its share of the
questions, the main process merges the shards (`pdpo.sharding`, docs/pdpo.md).
"""

from __future__ import annotations

import argparse

from salmonn_o1.commands.common import add_threads_argument, apply_threads, parameters_before_loading


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train from a recipe (perception pretraining, reasoning SFT or pDPO)",
        description="Train from a YAML recipe; trailing key=value pairs override it (e.g. optim.lr=1e-4). "
        "Checkpoints go to run.out_dir/checkpoint-N; --resume continues the latest one exactly.",
    )
    parser.add_argument("stage", help="training stage: sft, pdpo, or a stage whose recipe names its objective "
                        "component (perception: encoder pretraining of a model built from scratch)")
    parser.add_argument("--config", required=True, help="recipe YAML (see recipes/)")
    parser.add_argument("overrides", nargs="*", help="key=value recipe overrides")
    parser.add_argument("--resume", nargs="?", const="auto", default=None,
                        help="resume from the latest checkpoint-N in run.out_dir, or from the given checkpoint dir "
                             "(a following key=value is an override, not a checkpoint)")
    parser.add_argument("--stop-at", type=int, default=None, help="stop (after checkpointing) at this step")
    add_threads_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from salmonn_o1.errors import ensure_writable_dir
    from salmonn_o1.train.recipe import load_recipe

    if args.resume not in (None, "auto") and "=" in args.resume and not Path(args.resume).exists():
        # `--resume optim.max_steps=1`: the optional value swallowed an override; resume from the latest
        args.overrides = [args.resume, *args.overrides]
        args.resume = "auto"
    recipe = load_recipe(args.config, args.overrides)
    ensure_writable_dir(recipe.run.out_dir, "run.out_dir")  # before the model is built
    resume = args.resume or False
    if recipe.stage != args.stage:
        from salmonn_o1.errors import RecipeError

        raise RecipeError(f"{args.config}: a recipe for stage {recipe.stage!r}, run with `train {args.stage}`")
    # After the checks that need no torch. --threads (already set by cli.main), OMP_NUM_THREADS, or the
    # default by the model's size told before it is built: a small model trains fastest on one thread too.
    apply_threads(args, num_parameters=parameters_before_loading(getattr(recipe.model, "source", None)))
    if args.stage == "sft":
        from salmonn_o1.train.sft import build_sft

        result = build_sft(recipe).train(resume=resume, stop_at_step=args.stop_at)
    elif args.stage == "pdpo":
        from salmonn_o1.pdpo.pipeline import run_pdpo

        result = run_pdpo(recipe, resume=resume, stop_at_step=args.stop_at)
    else:  # e.g. perception: the recipe's `objective:` component, on the same Trainer
        from salmonn_o1.train.component_stage import run_component_stage

        result = run_component_stage(recipe, resume=resume, stop_at_step=args.stop_at)
    print(f"trained to step {result.step}; skipped examples: {result.skipped}; "
          f"model: {result.final_dir or result.out_dir}")
    return 0
