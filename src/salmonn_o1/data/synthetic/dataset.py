"""AVR-Synth items: seeds, splits, answer balancing, media, and writing a split to disk.

Seeds: clip `index` of a split is generated from numpy's
`default_rng([config.seed, SPLIT_OFFSETS[split] + index])` with
train 0..999,999, dev 1,000,000.., test 2,000,000.., so splits never share a
clip and any item can be regenerated alone. The family is
`families[index % len(families)]` and the answer slot is
`(index // len(families)) % num_options` (or YES/NO alternating), so every
block of consecutive items is exactly balanced over families and letters.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from salmonn_o1.data.schema import Item, read_items, write_items
from salmonn_o1.data.synthetic.config import SynthConfig
from salmonn_o1.data.synthetic.questions import FAMILY_BUILDERS
from salmonn_o1.data.synthetic.render import frame_times, render_audio, render_frames
from salmonn_o1.data.synthetic.timeline import Timeline
from salmonn_o1.data.synthetic.video_io import write_mp4
from salmonn_o1.errors import DataError
from salmonn_o1.media_types import SAMPLE_RATE, DecodedMedia
from salmonn_o1.records import replace_file

SPLIT_OFFSETS = {"train": 0, "dev": 1_000_000, "test": 2_000_000}
SPLIT_SIZE = 1_000_000
SOURCE = "avr-synth"
SETTINGS_FILE = "synth_settings.json"
# The `salmonn-o1 synth` option behind each recorded setting, for the message that names a change.
SETTING_FLAGS = {"split": "--split", "num_options": "--options", "min_scenes": "--min-scenes",
                 "max_scenes": "--max-scenes", "min_duration": "--min-duration", "max_duration": "--max-duration",
                 "families": "--families", "seed": "--seed", "fps": "--fps", "size": "--size"}


@dataclass
class SynthSample:
    """One generated clip: its item (video None until written) and its timeline."""

    item: Item
    timeline: Timeline
    config: SynthConfig

    def render(self, fps: float = 2.0, size: int = 64) -> DecodedMedia:
        return render_media(self, fps=fps, size=size)


def clip_seed(split: str, index: int) -> int:
    if split not in SPLIT_OFFSETS:
        raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLIT_OFFSETS)}")
    if not 0 <= index < SPLIT_SIZE:
        raise ValueError(f"index {index} out of range 0..{SPLIT_SIZE - 1}")
    return SPLIT_OFFSETS[split] + index


def item_id(split: str, index: int) -> str:
    return f"avr-{split}-{index:06d}"


def generate_item(split: str, index: int, config: SynthConfig | None = None) -> SynthSample:
    """The deterministic clip `index` of `split` (timeline + question + gold steps; no rendering)."""
    config = config or SynthConfig()
    seed = clip_seed(split, index)
    rng = np.random.default_rng([config.seed, seed])
    family = config.families[index % len(config.families)]
    block = index // len(config.families)
    target = block % 2 if family == "glitch_detection" else block % config.num_options
    question = FAMILY_BUILDERS[family](rng, config, target)
    extras = {
        "family": family,
        "split": split,
        "index": index,
        "seed": seed,
        "duration": question.timeline.duration,
        "num_scenes": len(question.timeline.scenes),
        "num_sounds": len(question.timeline.sounds),
        **question.extras,
    }
    item = Item(
        id=item_id(split, index),
        video=None,
        question=question.question,
        options=question.options,
        answer=question.answer,
        steps=question.steps,
        category=family,
        source=SOURCE,
        extras=extras,
    )
    return SynthSample(item=item, timeline=question.timeline, config=config)


def render_media(sample: SynthSample, fps: float = 2.0, size: int = 64) -> DecodedMedia:
    """Model-ready media without an mp4: frames at 0, 1/fps, ... (< duration), 16 kHz audio."""
    times = frame_times(sample.timeline.duration, fps)
    return DecodedMedia(
        frames=render_frames(sample.timeline, times, size),
        frame_times=times,
        audio=render_audio(sample.timeline, SAMPLE_RATE),
        duration=float(sample.timeline.duration),
        has_audio=True,
        kind="video",
        source=f"<{sample.item.id}>",
    )


def write_sample_mp4(sample: SynthSample, path: str | Path, fps: int = 10, size: int = 128) -> Path:
    """The clip as H.264 + AAC mp4 (frames rendered at `fps`, size x size pixels)."""
    times = frame_times(sample.timeline.duration, fps)
    frames = render_frames(sample.timeline, times, size)
    return write_mp4(path, frames, fps, render_audio(sample.timeline))


def generate_split(
    split: str,
    n: int,
    out_dir: str | Path,
    config: SynthConfig | None = None,
    start: int = 0,
    fps: int = 10,
    size: int = 128,
    progress: bool = True,
) -> Path:
    """Write clips start..start+n-1 of `split` as `out_dir/videos/<id>.mp4` and
    `out_dir/items.jsonl` (video paths relative to out_dir). Clips already on
    disk are skipped, so an interrupted run resumes where it stopped."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    config = config or SynthConfig()
    if not (out_dir / SETTINGS_FILE).exists():
        check_unrecorded_folder(out_dir, split, config)
    check_split_settings(out_dir, split_settings(split, config, fps, size))
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    items = []
    for index in tqdm(range(start, start + n), desc=f"avr-synth {split}", unit="clip", disable=not progress):
        sample = generate_item(split, index, config)
        relative = f"videos/{sample.item.id}.mp4"
        target = out_dir / relative
        if not (target.is_file() and target.stat().st_size > 0):
            write_sample_mp4(sample, target, fps=fps, size=size)
        sample.item.video = relative
        items.append(sample.item)
    items_path = out_dir / "items.jsonl"
    write_items(items_path, items)
    return items_path


def split_settings(split: str, config: SynthConfig, fps: int, size: int) -> dict[str, Any]:
    """Everything that decides what a clip of a split folder contains, as JSON data."""
    settings = {"split": split, **dataclasses.asdict(config), "fps": fps, "size": size}
    return json.loads(json.dumps(settings))  # tuples as lists, as they read back


def check_split_settings(out_dir: Path, settings: dict[str, Any]) -> None:
    """Record the generation settings in `out_dir`; a DataError naming each change if they differ.

    Clips already on disk are kept on a rerun, so generating with other
    settings into the same folder would pair new questions with old videos.
    """
    path = out_dir / SETTINGS_FILE
    if path.exists():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise DataError(f"{path}: not valid JSON ({error}); delete it only if the folder's clips "
                            "were made with the current settings") from None
        if not isinstance(stored, dict):
            raise DataError(f"{path}: expected a JSON object of generation settings")
        changed = sorted(k for k in settings.keys() | stored.keys() if stored.get(k) != settings.get(k))
        if changed:
            details = ", ".join(f"{SETTING_FLAGS.get(k, k)} {stored.get(k)!r} (now {settings.get(k)!r})"
                                for k in changed)
            raise DataError(f"{out_dir} holds clips generated with {details}; rerun with the same settings "
                            "to resume, or choose another --out")
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    replace_file(path, (json.dumps(settings, indent=2) + "\n").encode())


def check_unrecorded_folder(out_dir: Path, split: str, config: SynthConfig) -> None:
    """A folder written before settings were recorded: its items must be what `config` generates.

    Regenerating an item's question costs no rendering, so every item already in
    `items.jsonl` is compared (the frame rate and size of its clips cannot be).
    """
    items_path = out_dir / "items.jsonl"
    if not items_path.is_file():
        return
    for item in read_items(items_path):
        index, made_for = item.extras.get("index"), item.extras.get("split")
        if made_for != split:
            raise DataError(f"{items_path} holds {made_for!r} items ({item.id}); this run writes the {split!r} "
                            "split: choose another --out")
        fresh = generate_item(split, int(index), config).item.to_dict()
        if {**item.to_dict(), "video": None} != fresh:
            raise DataError(f"{items_path}: item {item.id} is not what these settings generate (the folder "
                            f"predates {SETTINGS_FILE}); rerun with the settings it was made with, "
                            "or choose another --out")


def load_split(out_dir: str | Path) -> list[Item]:
    """Items written by generate_split (video paths resolved to out_dir)."""
    return read_items(Path(out_dir) / "items.jsonl")
