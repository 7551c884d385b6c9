"""`salmonn-o1 pdpo rollout|select|label|pairs`: the pDPO data stages, one folder, resumable."""

from __future__ import annotations

import argparse


def _common(parser: argparse.ArgumentParser) -> None:
    from salmonn_o1.commands.common import add_model_arguments

    add_model_arguments(parser)
    parser.add_argument("--out", required=True, help="stage folder (each stage reads the previous stage's JSONL)")
    parser.add_argument("--paths", type=int, default=10, help="sampled paths per question (paper: 10)")
    parser.add_argument("--rollouts", type=int, default=6, help="completions per step and branch (paper: 6)")
    parser.add_argument("--top-t", type=int, default=3, help="steps selected per path (paper: 3)")
    parser.add_argument("--selection", choices=["contrastive", "all", "random"], default="contrastive")
    parser.add_argument("--perturb", choices=["frames-noise", "audio-noise", "audio-mute", "frame-shuffle"],
                        default="frames-noise")
    parser.add_argument("--noise-step", type=int, default=100, help="diffusion noise step t of 1000 (release: 100)")
    parser.add_argument("--max-paths", type=int, default=None, help="paths per question to branch (wrong first)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=512, help="reasoning turn")
    parser.add_argument("--answer-max-new-tokens", type=int, default=64, help="final-answer turn")
    parser.add_argument("--max-step-tokens", type=int, default=128, help="an alternative step")
    parser.add_argument("--label-mode", choices=["hard", "soft"], default="hard")
    parser.add_argument("--mu", type=float, default=0.1, help="soft-label temperature (not published)")
    parser.add_argument("--no-ref-logps", action="store_true", help="pairs: do not store reference log-probs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pdpo", help="process DPO data: rollouts, contrastive step selection, step values, pairs",
        description="Each stage reads OUT/<previous>.jsonl, appends to OUT/<stage>.jsonl (questions already "
        "there are skipped, so re-running resumes) and writes OUT/<stage>_summary.json.",
    )
    stages = parser.add_subparsers(dest="stage", required=True)
    helps = {
        "rollout": "sample P paths per question; keep questions answered wrong at least once",
        "select": "score steps by KL(real || perturbed media) and pick the top T (or all / random)",
        "label": "alternative step + N rollouts from each branch at the selected steps",
        "pairs": "step pairs (hard/soft labels) + full-path pairs with reference log-probs",
    }
    for stage, text in helps.items():
        sub = stages.add_parser(stage, help=text, description=text)
        _common(sub)
        if stage == "rollout":
            source = sub.add_mutually_exclusive_group(required=True)
            source.add_argument("--data", help="items JSONL (toolkit schema)")
            source.add_argument("--synthetic-split", choices=["train", "dev", "test"], help="AVR-Synth split")
            sub.add_argument("--n", type=int, default=100, help="synthetic: number of items")
            sub.add_argument("--start", type=int, default=0, help="synthetic: first index")
        sub.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace):
    from salmonn_o1.pdpo.stages import PDPOSettings

    return PDPOSettings(
        paths=args.paths, rollouts=args.rollouts, top_t=args.top_t, selection=args.selection, perturb=args.perturb,
        noise_step=args.noise_step, max_paths=args.max_paths, temperature=args.temperature, top_p=args.top_p,
        max_new_tokens=args.max_new_tokens, answer_max_new_tokens=args.answer_max_new_tokens,
        max_step_tokens=args.max_step_tokens, label_mode=args.label_mode, mu=args.mu,
        reference_logps=not args.no_ref_logps, seed=args.seed, model=args.model,
    )


def run(args: argparse.Namespace) -> int:
    import json

    from salmonn_o1.commands.common import load_pipeline
    from salmonn_o1.pdpo import stages

    settings = settings_from_args(args)
    progress = not args.quiet
    needs_model = not (args.stage == "select" and settings.selection != "contrastive") and not (
        args.stage == "pairs" and not settings.reference_logps)
    pipeline = load_pipeline(args) if needs_model else None
    if args.stage == "rollout":
        if args.data:
            questions = stages.file_questions(args.data)
        else:
            questions = stages.synthetic_questions(args.synthetic_split, args.n, pipeline.processor, args.start)
        summary = stages.run_rollout(args.out, pipeline, questions, settings, progress=progress)
    elif args.stage == "select":
        summary = stages.run_select(args.out, pipeline, settings, progress=progress)
    elif args.stage == "label":
        summary = stages.run_label(args.out, pipeline, settings, progress=progress)
    else:
        summary = stages.run_pairs(args.out, pipeline, settings, progress=progress)
    print(json.dumps(summary, indent=2))
    return 0
