"""The miniature model's curriculum: AVR-Synth items reshaped into the stages a 4-layer LLM
trained from scratch could learn one at a time.

`CurriculumSource` is an SFT data source component (recipes/mini-*.yaml name it):

    data:
      sources:
        - component:
            _component_: salmonn_o1_mini.curriculum.CurriculumSource
            split: train
            task: text             # qa | describe | text | options
            families: [cross_modal_counting]
            first_steps: 1

Its devices, each a switch of the source:
- `task`: "qa" (the clip's own question), "describe" (a dense description of the timeline as the
  target: perception alignment), "text" (the question asked about the description in words, no
  media: reasoning learnt from short text) or "options" (no clip: "Which option is the purple
  circle?", the option-letter look-up alone);
- `families`: only these question families;
- `first_steps: k`: the target is only the first k gold steps, one turn (a copy to learn first);
- `loss_last_steps: k`: the earlier steps stay in the input but only the last k steps of the
  reasoning turn and the answer turn carry the loss (learn the conclusion of a solution);
- `step_format: lookup`: the cross-modal families' gold steps rewritten as look-ups of the frame
  at a time ("At 9.0 s the screen shows the green square."); other items unchanged.
- `step_format: checks`: the look-ups, with counting and glitch detection as checks of
  looked-up facts (a running count at each beep on the asked shape; the thud's time and the
  falling shape's screen reads at the thud and 1.5 s before it),
  `salmonn_o1.data.synthetic.questions.CHECK_STEPS`;
- `glitch_kinds: [none, early_sound]`: glitch-detection clips only, of these planted kinds in
  turn ("none": not manipulated), so a rare kind (an early thud is one clip in six) is seen as
  often as the others.
"""

from __future__ import annotations

from dataclasses import replace

from salmonn_o1.chat import IGNORE_INDEX
from salmonn_o1.data.schema import Item
from salmonn_o1.data.synthetic.dataset import generate_item
from salmonn_o1.data.synthetic.describe import DESCRIBE_TASK, TEXT_TASK, description_item, text_item_of
from salmonn_o1.data.synthetic.options import OPTIONS_TASK, option_item
from salmonn_o1.data.synthetic.questions import CHECK_STEPS, GLITCH_KINDS, LOOKUP_STEPS
from salmonn_o1.data.synthetic.sft_source import SynthSource
from salmonn_o1.errors import RecipeError
from salmonn_o1.processor import MediaFeatures, SalmonnO1Processor
from salmonn_o1.prompts import END_OF_STEP
from salmonn_o1.train.sft_data import STEPS_TARGET

QA_TASK = "qa"
TASKS = (QA_TASK, DESCRIBE_TASK, TEXT_TASK, OPTIONS_TASK)
STEP_FORMATS = ("gold", "lookup", "checks")
NOT_MANIPULATED = "none"
GLITCH_FAMILY = "glitch_detection"


def mask_leading_steps(input_ids: list[int], labels: list[int], end_of_step_id: int, keep_last: int) -> list[int]:
    """Labels with the first assistant turn's steps before its last `keep_last` set to IGNORE_INDEX.

    Steps end with the `<end_of_step>` token, so the cut falls on a token boundary whatever the
    tokenizer merges. The masked steps are still in the input: the model is teacher-forced
    through them and learns only the conclusion (e.g. mapping its entity to an option letter).
    """
    labels = list(labels)
    start = next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), None)
    if start is None:
        return labels
    end = next((i for i in range(start, len(labels)) if labels[i] == IGNORE_INDEX), len(labels))
    ends = [i for i in range(start, end) if input_ids[i] == end_of_step_id]
    if len(ends) <= keep_last:
        return labels
    cut = ends[len(ends) - keep_last - 1] + 1
    labels[start:cut] = [IGNORE_INDEX] * (cut - start)
    return labels


class CurriculumSource(SynthSource):
    """AVR-Synth items of `split` as one curriculum stage sees them (see the module docstring)."""

    def __init__(self, processor: SalmonnO1Processor, *, split: str, task: str = QA_TASK, first_index: int = 0,
                 families: list[str] | None = None, first_steps: int = 0, loss_last_steps: int = 0,
                 step_format: str = "gold", frame_size: int = 64, glitch_kinds: list[str] | None = None):
        where = f"curriculum source {split}"
        if task not in TASKS:
            raise RecipeError(f"{where}: task must be {', '.join(TASKS[:-1])} or {TASKS[-1]}, got {task!r}")
        if task == OPTIONS_TASK and families is not None:
            raise RecipeError(f"{where}: task {OPTIONS_TASK} has no clip, so no families")
        if step_format not in STEP_FORMATS:
            raise RecipeError(f"{where}: step_format must be one of {', '.join(STEP_FORMATS)}, got {step_format!r}")
        if first_steps < 0 or loss_last_steps < 0:
            raise RecipeError(f"{where}: first_steps and loss_last_steps must be >= 0")
        if glitch_kinds is not None:
            unknown = sorted(set(glitch_kinds) - {NOT_MANIPULATED, *GLITCH_KINDS})
            if unknown or not glitch_kinds or families not in (None, [GLITCH_FAMILY]):
                raise RecipeError(f"{where}: glitch_kinds must be a non-empty list of {NOT_MANIPULATED}, "
                                  f"{', '.join(GLITCH_KINDS)} (glitch-detection clips only), got {glitch_kinds!r}"
                                  + (f" with families {families!r}" if not unknown and glitch_kinds else ""))
            families = [GLITCH_FAMILY]
        super().__init__(processor, split=split, first_index=first_index, families=families, frame_size=frame_size)
        self.glitch_kinds = glitch_kinds
        self._clips_of_kind: dict[str, list[int]] = {kind: [] for kind in glitch_kinds or []}
        self._scanned = 0  # glitch clips of the split looked at so far, from first_index on
        self.task = task
        self.first_steps = first_steps
        self.loss_last_steps = loss_last_steps
        self.step_format = step_format
        self.end_of_step_id = processor.tokenizer.convert_tokens_to_ids(END_OF_STEP)

    def clip_index(self, index: int) -> int:
        """With `glitch_kinds`, the `index`-th clip cycles through the kinds; clips of the glitch
        family are scanned in order (generating a timeline takes under a millisecond)."""
        if self.glitch_kinds is None:
            return super().clip_index(index)
        kind = self.glitch_kinds[index % len(self.glitch_kinds)]
        wanted = self._clips_of_kind[kind]
        while len(wanted) <= index // len(self.glitch_kinds):
            clip = super().clip_index(self._scanned)
            self._scanned += 1
            planted = generate_item(self.split, clip).item.extras["glitch"] or NOT_MANIPULATED
            if planted in self._clips_of_kind:
                self._clips_of_kind[planted].append(clip)
        return wanted[index // len(self.glitch_kinds)]

    def item(self, index: int) -> Item:
        if self.task == DESCRIBE_TASK:
            item = description_item(self.sample(index))
            item = replace(item, extras={**item.extras, STEPS_TARGET: True})
        elif self.task == TEXT_TASK:
            item = text_item_of(self.sample(index))
        elif self.task == OPTIONS_TASK:
            item = option_item(self.split, self.first_index + index)
        else:
            item = self.sample(index).item
        if self.step_format == "checks" and item.extras.get(CHECK_STEPS):
            item = replace(item, steps=list(item.extras[CHECK_STEPS]))
        elif self.step_format in ("lookup", "checks") and item.extras.get(LOOKUP_STEPS):
            item = replace(item, steps=list(item.extras[LOOKUP_STEPS]))
        if self.first_steps and item.steps:
            item = replace(item, steps=item.steps[:self.first_steps], extras={**item.extras, STEPS_TARGET: True})
        return item

    def media(self, index: int) -> MediaFeatures | None:
        if self.task in (TEXT_TASK, OPTIONS_TASK):
            return None  # text only: the description stands in for the media, or no clip at all
        return super().media(index)

    def mask_labels(self, input_ids: list[int], labels: list[int], reasoning: bool) -> list[int]:
        """`loss_last_steps`: only the reasoning turn's last steps and the answer turn are learnt."""
        if not self.loss_last_steps or not reasoning:
            return labels
        return mask_leading_steps(input_ids, labels, self.end_of_step_id, self.loss_last_steps)
