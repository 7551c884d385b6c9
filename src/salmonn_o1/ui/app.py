"""The browser page of `salmonn-o1 ui`: watch a video, ask, and see the reasoning laid on its timeline.

One `SalmonnO1Pipeline` (the one `ask` uses) answers; the page shows what the model was given
(the sampled frames with their times, the log-mel audio with its 0.2 s windows and 30 s chunks),
the reasoning steps as they are generated with every time a step mentions highlighted in the text
and on both pictures, the answer, Major@k's votes, the media facts and the timings. Each bad input
(no video, an unreadable or oversize file, a question without text, bad options) is one message in
the page's status line, worded by the same checks `ask` runs. gradio is imported here only, and
this module only by the `ui` command, so nothing else needs it installed.
"""

from __future__ import annotations

import html
import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from salmonn_o1.errors import SalmonnError
from salmonn_o1.prompts import END_OF_STEP
from salmonn_o1.reasoning import split_steps
from salmonn_o1.ui.timeline import Span, audio_picture, find_mentions, frame_strip, log_mel_image, timeline

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "assets" / "sample"
SAMPLE_ITEMS = ("item.json", "clip-miss.json", "sound-order.json")
ALL_STEPS = "all steps"
TIMELINE_CAPTION = ("**Timeline**: the frames the model sees, each at its time; under them the audio it hears "
                    "(log-mel), ticks at its 0.2 s windows, a blue line at each 30 s chunk boundary. "
                    "Yellow: the times the reasoning steps mention.")

CSS = """
#steps ol { padding-left: 1.5em; }
#steps li { margin: 0.25em 0; }
#steps mark.time { background: rgb(255, 196, 0); color: #000; padding: 0 0.2em; border-radius: 0.2em; }
#status .error { color: #d33; font-weight: bold; }
#status .warning { color: #b80; }
"""


@dataclass
class Media:
    """One decoded video and its features, kept per browser session so a step can be refocused."""

    path: str
    frames: np.ndarray | None
    frame_times: list[float]
    duration: float
    mel: np.ndarray | None  # (mel bins, time), None without an audio track
    facts: dict[str, Any]
    features: Any = field(repr=False, default=None)


def sample_examples() -> tuple[list[list[Any]], list[str]]:
    """The bundled clips and their questions as the page's examples ([video, question, options]
    rows) and their labels ("clip.mp4: What was on screen when the chirp played?")."""
    rows, labels = [], []
    for name in SAMPLE_ITEMS:
        item = json.loads((SAMPLE_DIR / name).read_text())
        rows.append([str(SAMPLE_DIR / item["video"]), item["question"], "\n".join(item["options"])])
        labels.append(f"{item['video']}: {item['question']}")
    return rows, labels


def parse_options(text: str | None) -> list[str] | None:
    """One option a line (letters optional); no lines: an open question."""
    options = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return options or None


def check_question(question: str | None, options: list[str] | None) -> None:
    """The question and options checked exactly as `ask` and `infer` check theirs."""
    from salmonn_o1.data.schema import validate_question

    validate_question(question or "", options, None, names=("the question", "the options"))


def load_media(pipeline, path: str | None, max_bytes: int) -> Media:
    """Decode and featurise one file once (the frames for the strip, the features for the model)."""
    from salmonn_o1.errors import MediaError

    if not path:
        raise MediaError("no video: upload one or pick an example")
    file = Path(path)
    if not file.is_file():
        raise MediaError(f"{file.name}: no such file")
    size = file.stat().st_size
    if size > max_bytes:
        raise MediaError(f"{file.name}: the file is larger than this page's limit of {max_bytes / 2**20:g} MiB "
                         "(salmonn-o1 ui --max-upload-mb)")
    decoded = pipeline.processor.load_media(str(file))
    features = pipeline.features(decoded)
    config = pipeline.processor.config
    mel = None
    if features.input_features is not None and decoded.has_audio:
        mel = log_mel_image(features.input_features.numpy(), features.duration)
    frames = decoded.frames
    return Media(str(file), frames, [float(t) for t in decoded.frame_times], float(features.duration), mel,
                 media_facts(features, config), features)


def media_facts(features, config) -> dict[str, Any]:
    """What the model is given: duration, frames and their rate, audio, its windows and chunks, tokens."""
    frames = features.num_frames
    audio = bool(features.has_audio and features.num_chunks)
    return {
        "kind": features.kind,
        "duration_s": round(float(features.duration), 3),
        "frames": frames,
        "frames_per_second": round(frames / features.duration, 3) if frames and features.duration > 0 else None,
        "audio": audio,
        "audio_chunks": features.num_chunks if audio else 0,
        "audio_windows": int(np.ceil(features.duration / config.audio_window_seconds - 1e-9)) if audio else 0,
        "audio_tokens": int(features.spec.num_audio_tokens) if audio else 0,
        "media_tokens": int(features.token_count),
    }


def facts_markdown(facts: dict[str, Any], result=None) -> str:
    """The media facts, and once answered the token counts and timings, as a small table."""
    rate = facts["frames_per_second"]
    rows = [("duration", f"{facts['duration_s']:.1f} s ({facts['kind']})"),
            ("frames used", f"{facts['frames']}" + (f" ({rate:g} per second)" if rate else ""))]
    if facts["audio"]:
        rows.append(("audio", f"yes: {facts['audio_chunks']} chunk(s) of 30 s, {facts['audio_windows']} windows "
                              f"of 0.2 s, {facts['audio_tokens']} tokens"))
    else:
        rows.append(("audio", "**no audio track**: the model hears silence"))
    rows.append(("media tokens", str(facts["media_tokens"])))
    if result is not None:
        tokens = result.tokens
        rows.append(("tokens", f"prompt {tokens['prompt']}, reasoning {tokens['reasoning']}, "
                               f"answer {tokens['answer']}"))
        t = result.timings
        rows.append(("time", f"encode {t['encode_s']:.2f} s, reasoning {t['reasoning_s']:.2f} s, "
                             f"answer {t['answer_s']:.2f} s, total {t['total_s']:.2f} s"))
    return "\n".join(f"- **{k}**: {v}" for k, v in rows)


def visible_steps(text: str) -> list[str]:
    """The steps of streamed text so far; a marker the tokens have only begun is not shown."""
    for n in range(len(END_OF_STEP) - 1, 0, -1):
        if text.endswith(END_OF_STEP[:n]):
            text = text[:-n]
            break
    return split_steps(text)


def mark_times(step: str) -> str:
    """A step as HTML: its text escaped, each time it mentions wrapped in `<mark class="time">`."""
    out, last = [], 0
    for mention in find_mentions(step):
        a, b = mention.span
        title = f"{a:g} s" if a == b else f"{a:g} s to {b:g} s"
        out.append(html.escape(step[last:mention.start]))
        out.append(f'<mark class="time" title="{title}">{html.escape(step[mention.start:mention.end])}</mark>')
        last = mention.end
    out.append(html.escape(step[last:]))
    return "".join(out).replace("\n", "<br>")


def steps_html(steps: list[str], streaming: bool = False) -> str:
    if not steps:
        return "<p><i>thinking...</i></p>" if streaming else ""
    items = "".join(f"<li>{mark_times(_unnumbered(s))}</li>" for s in steps)
    return f"<ol>{items}</ol>" + ("<p><i>...</i></p>" if streaming else "")


def _unnumbered(step: str) -> str:
    from salmonn_o1.reasoning import strip_step_number

    return strip_step_number(step)


def spans_of(steps: list[str], focus: str = ALL_STEPS) -> list[Span]:
    """The spans to highlight: every step's, or those of the one step `focus` names ("step 2")."""
    from salmonn_o1.ui.timeline import find_times

    if focus and focus != ALL_STEPS:
        index = int(focus.split()[-1]) - 1
        steps = steps[index:index + 1]
    return [span for step in steps for span in find_times(step)]


def picture(media: Media, spans: list[Span]):
    """The frame strip over the audio picture, `spans` highlighted on both."""
    strip = frame_strip(media.frames, media.frame_times, spans, media.duration) if media.frames is not None else None
    return timeline(strip, audio_picture(media.mel, media.duration, spans))


def status_html(kind: str, text: str) -> str:
    return f'<p class="{kind}">{html.escape(text)}</p>'


def answer_markdown(answer: str | None, answer_text: str, options: list[str] | None) -> str:
    """The answer as `ask` reads it; a letter is shown with its option ("B. a red triangle")."""
    if answer is None:
        return f"**Answer: unreadable** (the model's answer turn said: {answer_text!r})"
    from salmonn_o1.prompts import OPTION_LETTERS, format_options

    lines = format_options(options).splitlines() if options else []
    index = OPTION_LETTERS.find(answer) if len(answer) == 1 else -1
    return f"## Answer: {lines[index] if 0 <= index < len(lines) else answer}"


class Answerer:
    """The page's one job: turn the inputs into a stream of page updates (a generator gradio runs)."""

    def __init__(self, pipeline, max_bytes: int):
        self.pipeline = pipeline
        self.max_bytes = max_bytes
        self.lock = threading.Lock()  # one generation at a time: the model is shared by every visitor

    def run(self, video, question, options_text, reasoning, temperature, top_p, max_new_tokens,
            answer_max_new_tokens, seed, k) -> Iterator[tuple]:
        """Yields (status, facts, timeline, steps, answer, votes, focus, media state, steps state) updates."""
        import gradio as gr
        import pandas as pd

        options = parse_options(options_text)
        try:
            check_question(question, options)
            media = load_media(self.pipeline, video, self.max_bytes)
        except SalmonnError as error:
            yield (status_html("error", str(error)), "", None, "", "", gr.update(visible=False),
                   gr.update(choices=[ALL_STEPS], value=ALL_STEPS), None, [])
            return
        k = int(k)
        sampling = temperature is not None and float(temperature) > 0
        generation = {"max_new_tokens": int(max_new_tokens), "answer_max_new_tokens": int(answer_max_new_tokens),
                      "do_sample": sampling or k > 1, "temperature": float(temperature) if sampling else 1.0,
                      "top_p": float(top_p), "seed": int(seed)}
        notice = "" if media.facts["audio"] else " The file has no audio track: the model hears silence."
        kind = "warning" if notice else "info"
        drawn: dict[tuple, Any] = {}

        def draw(steps: list[str]):  # redrawn only when the highlighted spans change, not on every token
            spans = tuple(spans_of(steps))
            if spans not in drawn:
                drawn.clear()
                drawn[spans] = picture(media, list(spans))
            return drawn[spans]

        working = f"Sampling {k} reasoning paths for Major@{k}..." if k > 1 else "Reasoning..."
        no_votes = gr.update(visible=False)
        yield (status_html(kind, working + notice), facts_markdown(media.facts), draw([]),
               steps_html([], streaming=True), "", no_votes, gr.update(), media, [])
        with self.lock:
            if k > 1:
                majority = self.pipeline.ask_majority(media.features, question, options, k=k, **generation)
                result = next((r for r in majority.results if r.answer == majority.answer), majority.results[0])
                votes = pd.DataFrame({"answer": list(majority.counts), "votes": list(majority.counts.values())})
                answer = answer_markdown(majority.answer, result.answer_text, options) + (
                    f"\n\nMajor@{k}: {sum(majority.counts.values())} of {k} paths gave a readable answer; the "
                    "steps shown are the first path that gave the majority's answer.")
                vote_update = gr.update(value=votes, visible=True)
            else:
                for steps, result in self._stream(media, question, options, bool(reasoning), generation):
                    if result is None:
                        yield (status_html(kind, working + notice), facts_markdown(media.facts), draw(steps),
                               steps_html(steps, streaming=True), "", no_votes, gr.update(), media, steps)
                answer = answer_markdown(result.answer, result.answer_text, options)
                vote_update = no_votes
        steps = result.steps
        choices = [ALL_STEPS] + [f"step {i}" for i in range(1, len(steps) + 1)]
        yield (status_html(kind, "Done." + notice), facts_markdown(media.facts, result), draw(steps),
               steps_html(steps), answer, vote_update, gr.update(choices=choices, value=ALL_STEPS), media, steps)

    def _stream(self, media: Media, question, options, reasoning: bool, generation: dict):
        """(steps so far, None) each time the reasoning text grows by a step or a line, then (steps, result)."""
        pieces: queue.Queue = queue.Queue()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["result"] = self.pipeline.ask(media.features, question, options, reasoning=reasoning,
                                                      stream=pieces.put, **generation)
            except BaseException as error:  # re-raised in the page's thread below
                outcome["error"] = error
            finally:
                pieces.put(None)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        text, shown, last = "", None, 0.0
        while True:
            piece = pieces.get()
            if piece is None:
                break
            text += piece
            steps = visible_steps(text)
            now = time.monotonic()
            if steps != shown and now - last > 0.1:
                shown, last = steps, now
                yield steps, None
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        yield outcome["result"].steps, outcome["result"]


def refocus(media: Media | None, steps: list[str], focus: str):
    """Redraw the timeline for the spans of one step (or of all)."""
    return None if media is None else picture(media, spans_of(steps or [], focus))


def build_app(pipeline, model_note: str | None = None, max_upload_mb: int = 200, model_name: str = "",
              max_new_tokens: int = 512):
    """The gradio Blocks page around one loaded pipeline."""
    import gradio as gr

    answerer = Answerer(pipeline, max_upload_mb * 2**20)
    with gr.Blocks(title="salmonn-o1") as app:
        gr.Markdown("# salmonn-o1: watch, ask, and see the reasoning on the timeline"
                    + (f"\nmodel: `{model_name}`" if model_name else ""))
        if model_note:
            gr.Markdown(f"**Note:** {model_note}", elem_id="model-note")
        with gr.Row():
            with gr.Column(scale=2):
                video = gr.Video(label="video", sources=["upload"], include_audio=True, elem_id="video")
                question = gr.Textbox(label="question", lines=2, elem_id="question")
                options = gr.Textbox(label="options (one a line, optional)", lines=4, elem_id="options")
                examples, labels = sample_examples()
                gr.Examples(examples, inputs=[video, question, options], label="bundled AVR-Synth clips",
                            example_labels=labels, elem_id="examples")
                with gr.Accordion("settings", open=False):
                    reasoning = gr.Checkbox(True, label="reasoning (two turns: steps, then the answer)")
                    temperature = gr.Slider(0, 2, value=0, step=0.05, label="temperature (0: greedy)")
                    top_p = gr.Slider(0.05, 1, value=1, step=0.05, label="top-p")
                    max_new_tokens = gr.Slider(1, max(2048, max_new_tokens), value=max_new_tokens, step=1,
                                               label="reasoning max new tokens")
                    answer_max_new_tokens = gr.Slider(8, 256, value=64, step=8, label="answer max new tokens")
                    seed = gr.Number(0, precision=0, label="seed")
                    k = gr.Slider(1, 32, value=1, step=1, label="Major@k: sampled paths to vote over (1: one answer)")
                ask = gr.Button("Ask", variant="primary", elem_id="ask")
            with gr.Column(scale=3):
                status = gr.HTML(elem_id="status")
                gr.Markdown(TIMELINE_CAPTION)
                picture_box = gr.Image(show_label=False, type="pil", interactive=False, elem_id="timeline",
                                       buttons=["download", "fullscreen"])
                focus = gr.Radio([ALL_STEPS], value=ALL_STEPS, label="highlight the times of", elem_id="focus")
                steps = gr.HTML(label="reasoning", elem_id="steps")
                answer = gr.Markdown(elem_id="answer")
                votes = gr.BarPlot(x="answer", y="votes", label="Major@k votes", visible=False, elem_id="votes")
                facts = gr.Markdown(elem_id="facts")
        media_state = gr.State(None)
        steps_state = gr.State([])
        ask.click(answerer.run,
                  inputs=[video, question, options, reasoning, temperature, top_p, max_new_tokens,
                          answer_max_new_tokens, seed, k],
                  outputs=[status, facts, picture_box, steps, answer, votes, focus, media_state, steps_state],
                  concurrency_limit=1)
        focus.change(refocus, inputs=[media_state, steps_state, focus], outputs=[picture_box])
    return app


def launch(app, host: str, port: int, max_upload_mb: int) -> None:
    """Serve the page until interrupted (the bundled clips may be served as examples)."""
    app.queue().launch(server_name=host, server_port=port, max_file_size=f"{max_upload_mb}mb",
                       allowed_paths=[str(SAMPLE_DIR)], css=CSS, show_error=True)
