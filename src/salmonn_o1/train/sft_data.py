"""SFT examples: items (from files or AVR-Synth on the fly) -> chat samples with assistant-only labels.

The sequence of examples a run sees is fixed up front from the recipe's seed
(which source, which item, reasoning or direct mode), so a resumed run and a
straight run see the same data in the same order, and workers only decode.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from salmonn_o1.data.schema import Item, read_items
from salmonn_o1.data.synthetic import generate_item, render_media
from salmonn_o1.data.synthetic.describe import DESCRIBE_TASK, TEXT_TASK, describe_item, text_item
from salmonn_o1.errors import RecipeError
from salmonn_o1.processor import EncodedSample, MediaFeatures, SalmonnO1Processor
from salmonn_o1.prompts import END_OF_STEP, FINAL_ANSWER_QUESTION
from salmonn_o1.train.recipe import DataRecipe, DataSource


class SkipExample(Exception):
    """An example the engine should skip and count (too long, no usable target)."""


def sft_conversation(item: Item, reasoning: bool) -> list[dict]:
    """The released model's usage as targets: turn 1 the numbered steps, turn 2 the final answer.

    Items without steps (or `reasoning=False`) train the direct answer in one turn;
    description items (perception alignment) are one turn of numbered steps.
    """
    if item.extras.get("task") == DESCRIBE_TASK:
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
        if spec.task not in ("qa", DESCRIBE_TASK, TEXT_TASK):
            raise RecipeError(f"data source {spec.path or spec.synthetic}: task must be qa, {DESCRIBE_TASK} "
                              f"or {TEXT_TASK}")
        if spec.weight <= 0:
            raise RecipeError(f"data source {spec.path or spec.synthetic}: weight must be > 0")
        self.spec = spec
        self.processor = processor
        self.synthetic_size = synthetic_size
        self.items: list[Item] | None = None
        self.cache_size = cache_size
        self._cache: OrderedDict[int, MediaFeatures | None] = OrderedDict()
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

    def item(self, index: int) -> Item:
        if self.items is not None:
            return self.items[index]
        if self.spec.task == DESCRIBE_TASK:
            return describe_item(self.spec.synthetic, self.spec.first_index + index)
        if self.spec.task == TEXT_TASK:
            return text_item(self.spec.synthetic, self.spec.first_index + index)
        return generate_item(self.spec.synthetic, self.spec.first_index + index).item

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
        if self.spec.task == TEXT_TASK:
            return None  # the description stands in for the media
        sample = generate_item(self.spec.synthetic, self.spec.first_index + index)
        decoded = render_media(sample, fps=self.processor.config.frames_per_second, size=self.synthetic_size)
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
        if len(sample.input_ids) > self.recipe.max_length:
            raise SkipExample(f"{len(sample.input_ids)} tokens > data.max_length {self.recipe.max_length}")
        return sample


class SFTObjective:
    """Next-token cross-entropy on assistant tokens (prompt and media masked by the processor)."""

    name = "sft"

    def __init__(self, processor: SalmonnO1Processor):
        self.processor = processor

    def collate(self, examples: list[EncodedSample]) -> dict | None:
        if not examples:
            return None
        batch = self.processor.collate(examples, padding_side="right")
        batch["num_tokens"] = int(batch["attention_mask"].sum())
        return batch

    def loss(self, model, batch: dict) -> tuple:
        inputs = {k: v for k, v in batch.items() if k != "num_tokens"}
        loss = model(**inputs).loss
        return loss, {"loss": float(loss.detach())}
