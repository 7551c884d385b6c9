"""Predictions of a model on AVR-Synth items rendered in memory, appended and resumable.

Rendering straight to frames + waveform gives the same content as the mp4s
`salmonn-o1 synth` writes, without the encode/decode round trip, so a
1,000-item evaluation fits on a CPU. Output lines follow the predictions
schema, so `salmonn-o1 eval` and the report functions read them.
"""

from __future__ import annotations

import json
from pathlib import Path

from tqdm.auto import tqdm

from salmonn_o1.data.schema import Item, Prediction
from salmonn_o1.data.synthetic import generate_item, render_media
from salmonn_o1.inference import Question, SalmonnO1Pipeline


def synth_items(split: str, n: int, first_index: int = 0) -> list[Item]:
    return [generate_item(split, first_index + i).item for i in range(n)]


def done_ids(path: Path) -> set[str]:
    """Ids already predicted; a torn last line (a killed run) is dropped and redone."""
    if not path.exists():
        return set()
    ids, lines = set(), path.read_text().splitlines(keepends=True)
    good = []
    for line in lines:
        try:
            ids.add(json.loads(line)["id"])
            good.append(line if line.endswith("\n") else line + "\n")
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    path.write_text("".join(good))
    return ids


def predict_synthetic(pipe: SalmonnO1Pipeline, split: str, n: int, out: str | Path, reasoning: bool = True,
                      batch_size: int = 16, max_new_tokens: int = 512, first_index: int = 0,
                      frame_size: int | None = None) -> Path:
    """Answer items first_index..first_index+n-1 of a split, appending to `out` (resumes by id).

    `max_new_tokens` bounds the reasoning turn. 512 is what `salmonn-o1 infer` allows by default;
    the check steps of a counting question with many beeps run past 256 (one gold reasoning in
    seven), so a lower bound cuts exactly the longest counting answers. A row stops at its own end
    of turn, so the bound costs only rows that ramble."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = done_ids(out)
    size = frame_size or pipe.model.config.vision_config.image_size
    todo = [i for i in range(first_index, first_index + n) if generate_item(split, i).item.id not in done]
    with out.open("a") as handle, tqdm(total=n, initial=n - len(todo), desc=f"predict {out.stem}",
                                       unit="item") as bar:
        for start in range(0, len(todo), batch_size):
            samples = [generate_item(split, i) for i in todo[start:start + batch_size]]
            questions = [Question(pipe.features(render_media(s, fps=pipe.model.config.frames_per_second, size=size)),
                                  s.item.question, s.item.options or None, reasoning) for s in samples]
            results = pipe.ask_batch(questions, max_new_tokens=max_new_tokens, answer_max_new_tokens=16)
            for sample, result in zip(samples, results):
                prediction = Prediction(id=sample.item.id, answer=result.answer_text, reasoning=result.reasoning,
                                        extras={"extracted": result.answer,
                                                "reasoning_tokens": result.tokens["reasoning"]})
                handle.write(json.dumps(prediction.to_dict()) + "\n")
            handle.flush()
            bar.update(len(samples))
    return out
