"""SFT examples: items from the recipe's sources -> chat samples with assistant-only labels.

A source is a JSONL items file or any component the recipe names that has the `ItemSource`
shape (items and their media by index; finite or unbounded). The sequence of examples a run
sees is fixed up front from the recipe's seed (which source, which item, reasoning or direct
mode), so a resumed run and a straight run see the same data in the same order, and workers
only decode.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from torch.utils.data import Dataset

from salmonn_o1 import components
from salmonn_o1.data.interop.importers import CONVERSATION
from salmonn_o1.data.schema import Item, read_items
from salmonn_o1.errors import RecipeError, SkipExample
from salmonn_o1.processor import EncodedSample, MediaFeatures, SalmonnO1Processor
from salmonn_o1.prompts import END_OF_STEP, FINAL_ANSWER_QUESTION
from salmonn_o1.train.recipe import DataRecipe, DataSource, Recipe

# Item extras flag: the target is the item's steps alone, one turn of numbered steps and no
# answer turn (a description, or a prefix of a solution). Sources set it on the items they make.
STEPS_TARGET = "steps_target"


@runtime_checkable
class ItemSource(Protocol):
    """What SFT needs of a data source: items and their media by index.

    `size` is the number of items, or None for an unbounded source, whose indices are then
    used in order 0, 1, 2, ... (a finite source is shuffled once per pass). A source may also
    define `mask_labels(input_ids, labels, reasoning) -> labels`, which sets to IGNORE_INDEX the
    target tokens that should carry no loss (e.g. all but the conclusion of a solution).
    """

    @property
    def name(self) -> str: ...

    @property
    def size(self) -> int | None: ...

    def item(self, index: int) -> Item: ...

    def media(self, index: int) -> MediaFeatures | None: ...


class ItemsFile:
    """Items from a JSONL file (`data.sources[].path`), media decoded from each item's `video`."""

    def __init__(self, path: str, processor: SalmonnO1Processor):
        self.name = path
        self.processor = processor
        self.items = read_items(Path(path), require_answer=True)
        if not self.items:
            raise RecipeError(f"{path}: no items")

    @property
    def size(self) -> int:
        return len(self.items)

    def item(self, index: int) -> Item:
        return self.items[index]

    def media(self, index: int) -> MediaFeatures | None:
        video = self.items[index].video
        return self.processor.media_features(video) if video else None


def open_source(spec: DataSource, processor: SalmonnO1Processor) -> ItemSource:
    """The source a recipe entry names: its items file, or its component built with `processor=`."""
    if (spec.path is None) == (spec.component is None):
        raise RecipeError(f"data source {spec}: give exactly one of path or component")
    name = spec.path or str(spec.component.get(components.COMPONENT_KEY))
    if spec.weight <= 0:
        raise RecipeError(f"data source {name}: weight must be > 0")
    if spec.path is not None:
        return ItemsFile(spec.path, processor)
    source = components.build(spec.component, f"data source {name}", processor=processor)
    if not isinstance(source, ItemSource):
        raise RecipeError(f"data source {name}: {type(source).__name__} is not an item source "
                          "(it needs name, size, item(index) and media(index))")
    return source


def sft_conversation(item: Item, reasoning: bool) -> list[dict]:
    """The released model's usage as targets: turn 1 the numbered steps, turn 2 the final answer.

    Items without steps (or `reasoning=False`) train the direct answer in one turn; items
    flagged `STEPS_TARGET` (descriptions, solution prefixes) are one turn of numbered steps.
    Imported items (`data.interop`) carry their own turns in `extras["conversation"]`: trained as they
    are, every assistant turn a target, in either mode.
    """
    conversation = item.extras.get(CONVERSATION)
    if conversation:
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in conversation]
    if item.extras.get(STEPS_TARGET):
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


def length_estimate(item: Item) -> int:
    """A cheap proxy of an item's token count, for length-grouped batching."""
    text = len(item.question) + sum(len(s) for s in item.steps or []) + sum(len(o) for o in item.options)
    text += sum(len(str(m.get("content", ""))) for m in item.extras.get(CONVERSATION) or [])
    duration = float(item.extras.get("duration", 0.0)) if isinstance(item.extras, dict) else 0.0
    return text // 3 + int(duration * 10)


class MediaCache:
    """The media features of one source's last `capacity` items (small sets trained many epochs)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._features: OrderedDict[int, MediaFeatures | None] = OrderedDict()

    def get(self, index: int, load: Callable[[int], MediaFeatures | None]) -> MediaFeatures | None:
        if index in self._features:
            self._features.move_to_end(index)
            return self._features[index]
        features = load(index)
        if self.capacity:
            self._features[index] = features
            while len(self._features) > self.capacity:
                self._features.popitem(last=False)
        return features


@dataclass(frozen=True)
class Slot:
    """Position i of the run's example sequence."""

    source: int
    index: int
    reasoning: bool


def plan_slots(sizes: list[int | None], weights: list[float], total: int, direct_fraction: float,
               seed: int) -> list[Slot]:
    """The run's example sequence: sources drawn by weight, finite ones cycled in per-pass shuffles."""
    rng = np.random.default_rng(seed)
    p = np.array(weights, dtype=float)
    choice = rng.choice(len(sizes), size=total, p=p / p.sum())
    modes = rng.random(total) >= direct_fraction
    cursors = [0] * len(sizes)
    orders: list[list[int]] = [[] for _ in sizes]
    slots = []
    for position in range(total):
        s = int(choice[position])
        size = sizes[s]
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
            raise RecipeError("data.sources is empty: name at least one items file or source component")
        self.recipe = recipe
        self.processor = processor
        self.sources = [open_source(spec, processor) for spec in recipe.sources]
        self.caches = [MediaCache(recipe.cache_media) for _ in self.sources]
        self.slots = plan_slots([s.size for s in self.sources], [spec.weight for spec in recipe.sources],
                                total, recipe.direct_fraction, seed)

    def __len__(self) -> int:
        return len(self.slots)

    def describe(self, position: int) -> str:
        slot = self.slots[position]
        source = self.sources[slot.source]
        return f"{source.name}#{source.item(slot.index).id}"

    def length_of(self, position: int) -> int:
        slot = self.slots[position]
        return length_estimate(self.sources[slot.source].item(slot.index))

    def __getitem__(self, position: int) -> EncodedSample:
        slot = self.slots[position]
        source = self.sources[slot.source]
        item = source.item(slot.index)
        features = self.caches[slot.source].get(slot.index, source.media)
        sample = self.processor.encode(sft_conversation(item, slot.reasoning), features, add_generation_prompt=False)
        mask_labels = getattr(source, "mask_labels", None)
        if mask_labels is not None:
            sample.labels = mask_labels(sample.input_ids, sample.labels, slot.reasoning)
        if len(sample.input_ids) > self.recipe.max_length:
            raise SkipExample(f"{len(sample.input_ids)} tokens > data.max_length {self.recipe.max_length}")
        return sample


class SFTObjective:
    """Next-token cross-entropy on assistant tokens (prompt and media masked by the processor).

    A recipe may name a subclass in `objective` to weight some target tokens more.
    """

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


def build_objective(recipe: Recipe, processor: SalmonnO1Processor) -> SFTObjective:
    """The plain SFT objective, or the component the recipe's `objective` names (built with `processor=`)."""
    if recipe.objective is None:
        return SFTObjective(processor)
    return components.build(recipe.objective, "objective", processor=processor)
