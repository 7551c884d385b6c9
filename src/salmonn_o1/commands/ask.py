"""`salmonn-o1 ask VIDEO "QUESTION"`: steps and answer for one question.

What the user sees: the media facts (so a long video sampled sparsely is visible), the
reasoning steps (streamed on a terminal, rendered as the final output renders them), and the
answer read by the one rule every command shares (`salmonn_o1.eval.extract.read_answer`); an
unreadable answer is shown as such. With the shipped default model a one-line note on stderr
says what that model knows (AVR-Synth only); `--quiet` silences it and the loading bars.

`--majority K` samples K reasoning paths in one batch and votes on their answers (Major@k,
`SalmonnO1Pipeline.ask_majority`); `--verbose` says on stderr how the model ran (threads,
device, size, load time), which is what to look at first when a run is slower than expected.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from salmonn_o1.commands.common import (
    add_generation_arguments,
    add_majority_argument,
    add_model_arguments,
    add_threads_argument,
    generation_kwargs,
    load_pipeline,
)
from salmonn_o1.prompts import END_OF_STEP

DEFAULT_MODEL_NOTE = (
    "note: the default model is a miniature one trained only on AVR-Synth (synthetic shapes and tones): its "
    "answers about real videos are meaningless. For real videos use the released video-SALMONN-o1 weights "
    "(--model DIR, see docs/released-model.md); --quiet hides this note."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ask", help="ask a question about a video, audio file or image")
    parser.add_argument("media", help="video, audio or image file")
    parser.add_argument("question")
    parser.add_argument("--options", nargs="+", default=None, metavar="OPTION",
                        help='2 to 10 answer options, e.g. --options "A. red" "B. blue" (letters optional)')
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--quiet", action="store_true",
                        help="no note about the default model and no loading progress bars")
    parser.add_argument("--prompt", default=None, metavar="{release,step-marked}|TEXT",
                        help="reasoning instruction: 'release' (the released model's demos), 'step-marked' "
                             "(ours, asks for <end_of_step> after each step) or the text itself "
                             "(default: the one the model's config.json names)")
    parser.add_argument("--verbose", action="store_true",
                        help="say on stderr how the model ran: CPU threads and why, device, parameters, load time")
    add_majority_argument(parser)
    add_model_arguments(parser)
    add_threads_argument(parser)
    add_generation_arguments(parser)
    parser.set_defaults(func=run, exit_at_once=True)  # it holds no files: skip the interpreter's teardown


def validate_arguments(question: str, options: list[str] | None) -> None:
    """The question and options checked exactly as `infer` checks an item's (one function for both)."""
    from salmonn_o1.data.schema import validate_question

    validate_question(question, options, None, names=("the question", "--options"))


def media_facts(features) -> dict[str, Any] | None:
    """What the model was shown: kind, duration, frames used and their rate, audio and its tokens."""
    if features is None:
        return None
    audio_tokens = features.spec.num_audio_tokens if features.has_audio else 0
    frames = features.num_frames
    return {
        "kind": features.kind,
        "duration_s": round(float(features.duration), 3),
        "frames": frames,
        "frames_per_second": round(frames / features.duration, 3) if frames and features.duration > 0 else None,
        "audio": bool(features.has_audio and features.num_chunks),
        "audio_tokens": int(audio_tokens),
        "media_tokens": int(features.token_count),
    }


def describe_media(facts: dict[str, Any]) -> str:
    """One line: `Media: video, 10.0 s; 20 frames at 2 per second; audio: yes (50 tokens); 470 media tokens`."""
    parts = [f"{facts['kind']}, {facts['duration_s']:.1f} s"]
    if facts["frames"]:
        rate = facts["frames_per_second"]
        parts.append(f"{facts['frames']} frame{'s' if facts['frames'] != 1 else ''}"
                     + (f" at {rate:g} per second" if rate is not None and facts["kind"] == "video" else ""))
    parts.append(f"audio: yes ({facts['audio_tokens']} tokens)" if facts["audio"] else "audio: none")
    parts.append(f"{facts['media_tokens']} media tokens")
    return "Media: " + "; ".join(parts)


def format_step(step: str, number: int) -> str:
    """A step as the output lists it: indented (each of its lines), numbered unless it carries its own number."""
    lines = [line.strip() for line in step.splitlines() if line.strip()] or [""]
    head = "  " if lines[0][:1].isdigit() else f"  {number}. "
    return head + lines[0] + "".join(f"\n  {line}" for line in lines[1:])


def format_answer(answer: str | None, answer_text: str) -> str:
    """The answer line; an unreadable answer says so and quotes what the model said."""
    if answer is not None:
        return f"Answer: {answer}"
    return f"Answer: unreadable (the model's answer turn said: {answer_text!r})"


class StepPrinter:
    """Streams reasoning text as the final output lists steps (`format_step`): `<end_of_step>` ends a
    step and the next one is numbered (`  2. ...`) unless it carries its own number; the marker is
    never shown, even when the tokens split it. Until a marker is seen a line break ends a step, as
    `split_steps` reads text without markers one step per line (a numbered line keeps its number)."""

    def __init__(self, out: TextIO):
        self.out = out
        self.pending = ""  # text held back: it may be the start of the marker
        self.number = 0
        self.at_step_start = True
        self.at_line_start = True
        self.wrote = False
        self.saw_marker = False

    def feed(self, piece: str) -> None:
        self.pending += piece
        while END_OF_STEP in self.pending:
            before, self.pending = self.pending.split(END_OF_STEP, 1)
            self._emit(before)
            self.saw_marker = True
            self._end_step()
        keep = next((n for n in range(min(len(END_OF_STEP) - 1, len(self.pending)), 0, -1)
                     if END_OF_STEP.startswith(self.pending[-n:])), 0)
        ready, self.pending = (self.pending[:-keep], self.pending[-keep:]) if keep else (self.pending, "")
        self._emit(ready)
        self.out.flush()

    def close(self) -> None:
        self._emit(self.pending)
        self.pending = ""
        if self.wrote and not self.at_step_start:
            self.out.write("\n")
        self.out.flush()

    def _end_step(self) -> None:
        if not self.at_step_start:
            self.out.write("\n")
        self.at_step_start = self.at_line_start = True

    def _emit(self, text: str) -> None:
        for char in text:
            if char == "\n":
                if not self.saw_marker:
                    self._end_step()
                elif not self.at_line_start:
                    self.out.write("\n")
                    self.at_line_start = True
                continue
            if self.at_line_start:
                if char.isspace():
                    continue  # steps and lines are shown stripped, as the final output shows them
                if self.at_step_start:
                    self.number += 1
                    self.out.write("  " if char.isdigit() else f"  {self.number}. ")
                    self.at_step_start = False
                else:
                    self.out.write("  ")
                self.at_line_start = False
            self.out.write(char)
            self.wrote = True


def runtime_facts(pipeline, load_s: float) -> dict[str, Any]:
    """How the model ran: its CPU threads (and why that many), device, dtype, size, and the seconds
    the model took to load, torch's import included (most of a short clip's wall time)."""
    import torch

    from salmonn_o1.runtime import thread_setting

    setting = thread_setting()
    return {"threads": torch.get_num_threads(), "threads_reason": setting.reason if setting else None,
            "device": str(pipeline.device), "dtype": str(pipeline.model.dtype).removeprefix("torch."),
            "parameters": sum(p.numel() for p in pipeline.model.parameters()), "load_s": round(load_s, 3)}


def describe_runtime(facts: dict[str, Any]) -> str:
    """`Runtime: cpu float32, 2.4M parameters, ready in 4.10 s; 1 CPU thread (--threads)`."""
    threads = facts["threads"]
    return (f"Runtime: {facts['device']} {facts['dtype']}, {facts['parameters'] / 1e6:.1f}M parameters, ready in "
            f"{facts['load_s']:.2f} s (imports and weights); {threads} CPU thread{'s' if threads != 1 else ''} ({facts['threads_reason']})")


def check_majority(args: argparse.Namespace) -> None:
    from salmonn_o1.errors import DataError

    if args.majority is not None and args.no_reasoning:
        raise DataError("--majority votes over sampled reasoning paths; it cannot be used with --no-reasoning")


def run(args: argparse.Namespace) -> int:
    import time

    from salmonn_o1.errors import MediaError

    validate_arguments(args.question, args.options)  # before the model loads
    check_majority(args)
    if args.model is None and not args.quiet:
        print(DEFAULT_MODEL_NOTE, file=sys.stderr)
    started = time.perf_counter()
    pipeline = load_pipeline(args)  # --quiet: without the loading bars
    runtime = runtime_facts(pipeline, time.perf_counter() - started)
    if args.verbose:
        print(describe_runtime(runtime), file=sys.stderr)
    if args.prompt is not None:
        pipeline.prompt = args.prompt
    try:
        features = pipeline.features(args.media)
    except FileNotFoundError as error:
        raise MediaError(f"{args.media}: no such file") from error
    facts = media_facts(features)
    if args.majority is not None:
        return run_majority(args, pipeline, features, facts, runtime)
    streaming = sys.stdout.isatty() and not args.json and not args.no_reasoning
    printer = StepPrinter(sys.stdout) if streaming else None
    if streaming:
        if facts is not None:
            print(describe_media(facts))
        print("Reasoning:", flush=True)
    result = pipeline.ask(
        features, args.question, options=args.options, reasoning=not args.no_reasoning,
        stream=printer.feed if printer is not None else None, **generation_kwargs(args),
    )
    if args.json:
        print(json.dumps({**result.to_dict(), "media": facts, "runtime": runtime}, indent=2, ensure_ascii=False))
        return 0
    if printer is not None:
        printer.close()
    else:
        if facts is not None:
            print(describe_media(facts))
        if result.reasoning is not None:
            print("Reasoning:")
            for i, step in enumerate(result.steps, start=1):
                print(format_step(step, i))
    print(format_answer(result.answer, result.answer_text))
    return 0



def format_votes(counts: dict[str, int], k: int) -> str:
    """`Votes: A 12, B 5 (of 20 paths; 3 unreadable)`: most votes first."""
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    unreadable = k - sum(counts.values())
    text = ", ".join(f"{answer} {votes}" for answer, votes in ranked) or "none"
    return f"Votes: {text} (of {k} paths" + (f"; {unreadable} unreadable)" if unreadable else ")")


def run_majority(args: argparse.Namespace, pipeline, features, facts, runtime) -> int:
    """--majority K: K sampled paths in one batch, the vote, the winner (--json: the whole MajorityResult)."""
    majority = pipeline.ask_majority(features, args.question, options=args.options, k=args.majority,
                                     **generation_kwargs(args, sample=True))
    if args.json:
        print(json.dumps({**majority.to_dict(), "k": args.majority, "media": facts, "runtime": runtime},
                         indent=2, ensure_ascii=False))
        return 0
    if facts is not None:
        print(describe_media(facts))
    print(format_votes(majority.counts, args.majority))
    print(f"Answer: {majority.answer}" if majority.answer is not None
          else f"Answer: unreadable (none of the {args.majority} paths gave a readable answer)")
    return 0
