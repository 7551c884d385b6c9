"""Fixtures for training tests: AVR-Synth items written as real mp4s, and small recipes."""

from __future__ import annotations

import pytest

from salmonn_o1.data.schema import write_items
from salmonn_o1.data.synthetic import generate_item, write_sample_mp4
from salmonn_o1.train.recipe import load_recipe


def write_synth_items(folder, split: str, indices: list[int]):
    """Items + mp4s of AVR-Synth clips, written through PyAV like a user's data."""
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for index in indices:
        sample = generate_item(split, index)
        video = folder / f"{sample.item.id}.mp4"
        write_sample_mp4(sample, video, fps=4, size=32)
        item = sample.item
        item.video = str(video)
        items.append(item)
    write_items(folder / "items.jsonl", items)
    return folder / "items.jsonl", items


@pytest.fixture(scope="session")
def synth_files(tmp_path_factory):
    return write_synth_items(tmp_path_factory.mktemp("synth"), "train", [0, 1, 2, 3])


# AVR-Synth train clips rendered on the fly at 32 px, as a recipe names the source (an override value)
SYNTH_TRAIN = "{component: {_component_: salmonn_o1.data.synthetic.sft_source.SynthSource, split: train, frame_size: 32}}"


def tiny_recipe(out_dir, *overrides: str):
    base = ["model.source=tiny", f"data.sources=[{SYNTH_TRAIN}]",
            "optim.lr=1e-3", "optim.batch_size=2", "optim.max_steps=4", "optim.warmup_steps=1",
            "run.save_every=100", "run.eval_every=0", f"run.out_dir={out_dir}"]
    return load_recipe(None, [*base, *overrides])
