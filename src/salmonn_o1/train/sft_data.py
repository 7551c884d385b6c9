"""SFT examples: items (from files or AVR-Synth on the fly) -> chat samples with assistant-only labels.

The sequence of examples a run sees is fixed up front from the recipe's seed
(which source, which item, reasoning or direct mode), so a resumed run and a
straight run see the same data in the same order, and workers only decode.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from salmonn_o1.chat import IGNORE_INDEX
from salmonn_o1.data.schema import Item, read_items
from salmonn_o1.data.synthetic import FAMILIES, generate_item, render_media
from salmonn_o1.data.synthetic.dataset import SynthSample
from salmonn_o1.data.synthetic.describe import DESCRIBE_TASK, TEXT_TASK, description_item, text_item_of
from salmonn_o1.data.synthetic.options import OPTIONS_TASK, option_item
from salmonn_o1.data.synthetic.questions import LOOKUP_STEPS
from salmonn_o1.errors import RecipeError, SkipExample
from salmonn_o1.processor import EncodedSample, MediaFeatures, SalmonnO1Processor
from salmonn_o1.prompts import END_OF_STEP, FINAL_ANSWER_QUESTION
from salmonn_o1.train.recipe import DataRecipe, DataSource

STEP_FORMATS = ("gold", "lookup")  # DataSource.step_format
PARTIAL_TARGET = "partial_target"  # extras flag: the steps are a prefix of the solution, no answer turn


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


def sft_conversation(item: Item, reasoning: bool) -> list[dict]:
    """The released model's usage as targets: turn 1 the numbered steps, turn 2 the final answer.

    Items without steps (or `reasoning=False`) train the direct answer in one turn;
    description items (perception alignment) are one turn of numbered steps.
    """
    if item.extras.get("task") == DESCRIBE_TASK or item.extras.get(PARTIAL_TARGET):
        steps = "\n".join(f"{i}. {step}{END_OF_STEP}" for i, step in enumerate(item.steps or [], start=1))
        return [{"role": "user", "content": item.question}, {"role": "assistant", "content": steps}]
    gold = item.gold_reasoning() if reasoning else None
    if gold is None:
        return [{"role": "user", "content": item.model_question(reasoning=False)},
                {"role": "assistant", "content": item.answer}]
    return [{"role": "user", "content": item.model_question(reasoning=True)},
            {"role": "assistant", "content": gold},
            {"role": "user", "content": FINAL_ANSWER_QUESTION},
            {"role": "assistant", "content": f"The answer is {item.answer}."}]


@dataclass(frozen=True)
class Slot:
    """Position i of the run's example sequence."""

    source: int
    index: int
    reasoning: bool


class ItemSource:
    """One recipe data source: a list of items on disk, or an AVR-Synth split (unbounded)."""

    def __init__(self, spec: DataSource, processor: SalmonnO1Processor, synthetic_size: int, cache_size: int = 0):
        if (spec.path is None) == (spec.synthetic is None):
            raise RecipeError(f"data source {spec}: give exactly one of path or synthetic")
        if spec.task not in ("qa", DESCRIBE_TASK, TEXT_TASK, OPTIONS_TASK):
            raise RecipeError(f"data source {spec.path or spec.synthetic}: task must be qa, {DESCRIBE_TASK}, "
                              f"{TEXT_TASK} or {OPTIONS_TASK}")
        if spec.task == OPTIONS_TASK and (spec.synthetic is None or spec.families is not None):
            raise RecipeError(f"data source {spec.path or spec.synthetic}: task {OPTIONS_TASK} is synthetic "
                              "only and has no families")
        if spec.step_format not in STEP_FORMATS:
            raise RecipeError(f"data source {spec.path or spec.synthetic}: step_format must be one of "
                              f"{', '.join(STEP_FORMATS)}, got {spec.step_format!r}")
        if spec.weight <= 0:
            raise RecipeError(f"data source {spec.path or spec.synthetic}: weight must be > 0")
        if spec.first_steps < 0 or spec.loss_last_steps < 0:
            raise RecipeError(f"data source {spec.path or spec.synthetic}: first_steps and loss_last_steps "
                              "must be >= 0")
        self.family_slots = self._family_slots(spec)
        self.spec = spec
        self.processor = processor
        self.synthetic_size = synthetic_size
        self.items: list[Item] | None = None
        self.cache_size = cache_size
        self._cache: OrderedDict[int, MediaFeatures | None] = OrderedDict()
        self._last_sample: tuple[int, SynthSample] | None = None
        if spec.path is not None:
            self.items = read_items(Path(spec.path))
            if not self.items:
                raise RecipeError(f"{spec.path}: no items")

    @property
    def name(self) -> str:
        return self.spec.path or f"avr-synth:{self.spec.synthetic}"

    @property
    def size(self) -> int | None:
        """Number of items, None for an unbounded synthetic split."""
        return len(self.items) if self.items is not None else None

    @staticmethod
    def _family_slots(spec: DataSource) -> list[int] | None:
        """Offsets within each block of len(FAMILIES) clips that hold the wanted families."""
        if spec.families is None:
            return None
        if spec.synthetic is None:
            raise RecipeError(f"data source {spec.path}: families only apply to synthetic sources")
        unknown = sorted(set(spec.families) - set(FAMILIES))
        if unknown or not spec.families:
            raise RecipeError(f"data source {spec.synthetic}: unknown families {unknown or '[]'}; "
                              f"choose from {', '.join(FAMILIES)}")
        return sorted(FAMILIES.index(f) for f in set(spec.families))

    def clip_index(self, index: int) -> int:
        """The synthetic split's clip for the source's `index`-th item (skipping other families)."""
        if self.family_slots is None:
            return self.spec.first_index + index
        # A clip's family is its index modulo len(FAMILIES): count whole blocks from the first
        # block at or after first_index, so the family does not depend on first_index.
        first_block = -(-self.spec.first_index // len(FAMILIES))
        block, slot = divmod(index, len(self.family_slots))
        return (first_block + block) * len(FAMILIES) + self.family_slots[slot]

    def item(self, index: int) -> Item:
        if self.items is not None:
            item = self.items[index]
        elif self.spec.task == DESCRIBE_TASK:
            item = description_item(self._sample(index))
        elif self.spec.task == TEXT_TASK:
            item = text_item_of(self._sample(index))
        elif self.spec.task == OPTIONS_TASK:
            item = option_item(self.spec.synthetic, self.spec.first_index + index)
        else:
            item = self._sample(index).item
        if self.spec.step_format == "lookup" and item.extras.get(LOOKUP_STEPS):
            item = replace(item, steps=list(item.extras[LOOKUP_STEPS]))
        if self.spec.first_steps and item.steps:
            item = replace(item, steps=item.steps[:self.spec.first_steps],
                           extras={**item.extras, PARTIAL_TARGET: True})
        return item

    def _sample(self, index: int) -> SynthSample:
        """The generated clip; the last one is kept, as `item()` and `media()` ask for it in turn."""
        if self._last_sample is None or self._last_sample[0] != index:
            self._last_sample = (index, generate_item(self.spec.synthetic, self.clip_index(index)))
        return self._last_sample[1]

    def media(self, index: int) -> MediaFeatures | None:
        """Media features: decoded from the item's file, or rendered straight from the synthetic timeline."""
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        features = self._load_media(index)
        if self.cache_size:
            self._cache[index] = features
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return features

    def _load_media(self, index: int) -> MediaFeatures | None:
        if self.items is not None:
            item = self.items[index]
            return self.processor.media_features(item.video) if item.video else None
        if self.spec.task in (TEXT_TASK, OPTIONS_TASK):
            return None  # text only: the description stands in for the media, or no clip at all
        decoded = render_media(self._sample(index), fps=self.processor.config.frames_per_second, size=self.synthetic_size)
        return self.processor.media_features(decoded)

    def length_estimate(self, index: int) -> int:
        """A cheap proxy of the sample's token count, for length-grouped batching."""
        item = self.item(index)
        text = len(item.question) + sum(len(s) for s in item.steps or []) + sum(len(o) for o in item.options)
        duration = float(item.extras.get("duration", 0.0)) if isinstance(item.extras, dict) else 0.0
        return text // 3 + int(duration * 10)


def plan_slots(sources: list[ItemSource], total: int, direct_fraction: float, seed: int) -> list[Slot]:
    """The run's example sequence: sources drawn by weight, files cycled in per-epoch shuffles."""
    rng = np.random.default_rng(seed)
    weights = np.array([s.spec.weight for s in sources], dtype=float)
    choice = rng.choice(len(sources), size=total, p=weights / weights.sum())
    modes = rng.random(total) >= direct_fraction
    cursors = [0] * len(sources)
    orders: list[list[int]] = [[] for _ in sources]
    slots = []
    for position in range(total):
        s = int(choice[position])
        size = sources[s].size
        if size is None:
            index = cursors[s]
        else:
            if cursors[s] % size == 0:
                orders[s] = rng.permutation(size).tolist()
            index = orders[s][cursors[s] % size]
        cursors[s] += 1
        slots.append(Slot(s, index, bool(modes[position])))
    return slots


class SFTExamples(Dataset):
    """Map-style dataset over the planned slots; `__getitem__` decodes and tokenizes one example."""

    def __init__(self, recipe: DataRecipe, processor: SalmonnO1Processor, total: int, seed: int):
        if not recipe.sources:
            raise RecipeError("data.sources is empty: name at least one items file or synthetic split")
        self.recipe = recipe
        self.processor = processor
        self.sources = [ItemSource(spec, processor, recipe.synthetic_size, recipe.cache_media) for spec in recipe.sources]
        self.slots = plan_slots(self.sources, total, recipe.direct_fraction, seed)
        self.end_of_step_id = processor.tokenizer.convert_tokens_to_ids(END_OF_STEP)

    def __len__(self) -> int:
        return len(self.slots)

    def describe(self, position: int) -> str:
        slot = self.slots[position]
        source = self.sources[slot.source]
        return f"{source.name}#{source.item(slot.index).id}"

    def length_of(self, position: int) -> int:
        slot = self.slots[position]
        return self.sources[slot.source].length_estimate(slot.index)

    def __getitem__(self, position: int) -> EncodedSample:
        slot = self.slots[position]
        source = self.sources[slot.source]
        item = source.item(slot.index)
        features = source.media(slot.index)
        sample = self.processor.encode(sft_conversation(item, slot.reasoning), features, add_generation_prompt=False)
        keep = source.spec.loss_last_steps
        if keep and slot.reasoning:
            sample.labels = mask_leading_steps(sample.input_ids, sample.labels, self.end_of_step_id, keep)
        if len(sample.input_ids) > self.recipe.max_length:
            raise SkipExample(f"{len(sample.input_ids)} tokens > data.max_length {self.recipe.max_length}")
        return sample


class SFTObjective:
    """Next-token cross-entropy on assistant tokens (prompt and media masked by the processor).

    `option_letter_weight` > 0 adds that many times the mean loss on the option letters (the
    token after " option" in "The purple cross is option A."): one token in a hundred, so the
    plain mean barely trains the look-up of a two-word option among similar ones. Weighted on
    short `task: options` items it is learnt; weighted on real items it is then kept
    (docs/mini-model.md, "The option letter").
    """

    name = "sft"

    def __init__(self, processor: SalmonnO1Processor, option_letter_weight: float = 0.0):
        self.processor = processor
        self.option_letter_weight = option_letter_weight
        self.option_id = processor.tokenizer(" option", add_special_tokens=False).input_ids[-1]

    def collate(self, examples: list[EncodedSample]) -> dict | None:
        if not examples:
            return None
        batch = self.processor.collate(examples, padding_side="right")
        batch["num_tokens"] = int(batch["attention_mask"].sum())
        return batch

    def option_letters(self, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mask of the target tokens that follow " option" (the letters the weight trains)."""
        after_option = torch.zeros_like(labels, dtype=torch.bool)
        after_option[:, 1:] = input_ids[:, :-1] == self.option_id
        return after_option & (labels != IGNORE_INDEX)

    def loss(self, model, batch: dict) -> tuple:
        inputs = {k: v for k, v in batch.items() if k != "num_tokens"}
        if self.option_letter_weight <= 0:
            loss = model(**inputs).loss
            return loss, {"loss": float(loss.detach())}
        labels = inputs.pop("labels")
        logits = model(**inputs).logits[:, :-1].float()
        targets = labels[:, 1:]
        per_token = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=IGNORE_INDEX, reduction="none")
        plain = per_token.sum() / (targets != IGNORE_INDEX).sum().clamp(min=1)
        letters = self.option_letters(inputs["input_ids"], labels)[:, 1:]
        letter_loss = per_token[letters].mean() if letters.any() else plain.new_zeros(())
        loss = plain + self.option_letter_weight * letter_loss
        return loss, {"loss": float(plain.detach()), "option_letter_loss": float(letter_loss.detach())}
