"""pDPO's training questions and where they come from.

A question is what the model is asked, what counts as correct and where its
media is (`pdpo.media`). Sources: a JSONL items file (`{path: items.jsonl}`),
or any question-source component a recipe names,
`{_component_: package.module.source, **kwargs}`, called with `processor=` and
returning question records (id, question, options, reference, media) or
`PDPOQuestion`s; AVR-Synth's lives in the data layer for that reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salmonn_o1 import components
from salmonn_o1.data.schema import read_items
from salmonn_o1.errors import RecipeError
from salmonn_o1.pdpo.judge import Target
from salmonn_o1.pdpo.media import MediaRef, path_ref
from salmonn_o1.prompts import format_question


@dataclass
class PDPOQuestion:
    """One training question: what the model is asked, what counts as correct, where the media is."""

    id: str
    question: str
    options: list[str]
    reference: str
    media: MediaRef  # see pdpo.media

    @property
    def prompt(self) -> str:
        """The user-turn text, exactly as the pipeline asks it (step-marked reasoning prompt)."""
        return format_question(self.question, self.options or None, reasoning=True)

    @property
    def target(self) -> Target:
        return Target(self.reference, list(self.options))

    def to_dict(self) -> dict[str, Any]:
        """The fields every stage record starts with (the prompt as asked, for readers of the files)."""
        return {"id": self.id, "question": self.question, "options": self.options, "reference": self.reference,
                "prompt": self.prompt, "media": self.media}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> PDPOQuestion:
        """From any stage record (they all start with the question's fields)."""
        return cls(record["id"], record["question"], list(record["options"]), record["reference"],
                   record["media"])


def file_questions(path: str | Path) -> list[PDPOQuestion]:
    """Items of a JSONL file (toolkit schema); their videos are decoded when needed."""
    return [PDPOQuestion(item.id, item.question, list(item.options), item.answer, path_ref(item.video))
            for item in read_items(path, require_answer=True)]


def load_questions(spec: dict[str, Any] | None, processor, where: str = "pdpo.questions") -> list[PDPOQuestion]:
    """The questions a recipe's `pdpo.questions` names."""
    if spec and "path" in spec and components.COMPONENT_KEY not in spec:
        return file_questions(spec["path"])
    if spec and components.COMPONENT_KEY in spec:
        made = components.build(spec, where, processor=processor)
        return [q if isinstance(q, PDPOQuestion) else PDPOQuestion.from_dict(q) for q in made]
    raise RecipeError(f"{where}: give {{path: items.jsonl}} or a question source "
                      f"{{{components.COMPONENT_KEY}: package.module.source, ...}}, got {spec!r}")
