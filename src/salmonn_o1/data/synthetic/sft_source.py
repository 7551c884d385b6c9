"""AVR-Synth as an SFT data source: clips generated and rendered on the fly, never written to disk.

A recipe names it as a component of a data source:

    data:
      sources:
        - component: {_component_: salmonn_o1.data.synthetic.sft_source.SynthSource, split: train}

The source is unbounded: its i-th item is clip `first_index + i` of the split (or the i-th clip
of the chosen families), so training streams fresh clips instead of repeating a fixed set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from salmonn_o1.data.schema import Item
from salmonn_o1.data.synthetic.config import FAMILIES
from salmonn_o1.data.synthetic.dataset import SPLIT_OFFSETS, SynthSample, generate_item, render_media
from salmonn_o1.errors import RecipeError

if TYPE_CHECKING:
    from salmonn_o1.processor import MediaFeatures, SalmonnO1Processor


class SynthSource:
    """AVR-Synth QA items of `split` from clip `first_index` on, optionally of some families only.

    `frame_size` is the side in pixels of the frames rendered for the processor (the processor
    resizes them to the vision tower's input); small frames render fast on CPU.
    """

    def __init__(self, processor: SalmonnO1Processor, *, split: str, first_index: int = 0,
                 families: list[str] | None = None, frame_size: int = 64):
        if split not in SPLIT_OFFSETS:
            raise RecipeError(f"AVR-Synth source: unknown split {split!r}; choose from {', '.join(SPLIT_OFFSETS)}")
        self.processor = processor
        self.split = split
        self.first_index = first_index
        self.frame_size = frame_size
        self.family_slots = self._family_slots(split, families)
        self._last_sample: tuple[int, SynthSample] | None = None

    @property
    def name(self) -> str:
        return f"avr-synth:{self.split}"

    @property
    def size(self) -> None:
        return None  # unbounded: a run takes as many clips as it needs

    @staticmethod
    def _family_slots(split: str, families: list[str] | None) -> list[int] | None:
        """Offsets within each block of len(FAMILIES) clips that hold the wanted families."""
        if families is None:
            return None
        unknown = sorted(set(families) - set(FAMILIES))
        if unknown or not families:
            raise RecipeError(f"data source {split}: unknown families {unknown or '[]'}; "
                              f"choose from {', '.join(FAMILIES)}")
        return sorted(FAMILIES.index(f) for f in set(families))

    def clip_index(self, index: int) -> int:
        """The split's clip for the source's `index`-th item (skipping other families)."""
        if self.family_slots is None:
            return self.first_index + index
        # A clip's family is its index modulo len(FAMILIES): count whole blocks from the first
        # block at or after first_index, so the family does not depend on first_index.
        first_block = -(-self.first_index // len(FAMILIES))
        block, slot = divmod(index, len(self.family_slots))
        return (first_block + block) * len(FAMILIES) + self.family_slots[slot]

    def sample(self, index: int) -> SynthSample:
        """The generated clip; the last one is kept, as `item()` and `media()` ask for it in turn."""
        if self._last_sample is None or self._last_sample[0] != index:
            self._last_sample = (index, generate_item(self.split, self.clip_index(index)))
        return self._last_sample[1]

    def item(self, index: int) -> Item:
        return self.sample(index).item

    def media(self, index: int) -> MediaFeatures | None:
        """The clip rendered straight from its timeline at the processor's frame rate."""
        decoded = render_media(self.sample(index), fps=self.processor.config.frames_per_second, size=self.frame_size)
        return self.processor.media_features(decoded)
