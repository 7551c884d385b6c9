"""One checkpoint directory, one copy of the model config: the processor reads config.json."""

from __future__ import annotations

import json

import torch

from salmonn_o1.checkpoints import load_model_and_processor, save_model_and_processor
from salmonn_o1.config import SalmonnO1Config
from salmonn_o1.processor import LEGACY_PROCESSOR_CONFIG, SalmonnO1Processor


def settings(config: SalmonnO1Config | dict) -> dict:
    """The config as data, without what loading records (where from; the dtype the weights were loaded in)."""
    data = config.to_dict() if isinstance(config, SalmonnO1Config) else config
    return {k: settings(v) if isinstance(v, dict) else v for k, v in data.items() if k not in ("_name_or_path", "dtype")}


def test_a_saved_checkpoint_holds_the_model_config_once(tmp_path):
    model, processor = load_model_and_processor("tiny")
    save_model_and_processor(model, processor, tmp_path)
    assert not (tmp_path / LEGACY_PROCESSOR_CONFIG).exists()
    copies = [p.name for p in tmp_path.glob("*.json") if "text_config" in p.read_text()]
    assert copies == ["config.json"]
    loaded, reloaded = load_model_and_processor(tmp_path)
    assert reloaded.config is loaded.config
    assert settings(SalmonnO1Processor.from_pretrained(tmp_path).config) == settings(loaded.config)
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, model.state_dict()[name]), name


def test_a_processor_saved_alone_writes_the_config_and_leaves_a_model_config_as_it_is(tmp_path):
    model, processor = load_model_and_processor("tiny")
    processor.save_pretrained(tmp_path / "alone")
    alone = SalmonnO1Processor.from_pretrained(tmp_path / "alone")
    assert settings(alone.config) == settings(SalmonnO1Config.from_pretrained(tmp_path / "alone"))
    assert alone.config.video_tokens_per_frame == processor.config.video_tokens_per_frame
    model.save_pretrained(tmp_path / "both")
    written = (tmp_path / "both" / "config.json").read_text()
    processor.save_pretrained(tmp_path / "both")
    assert (tmp_path / "both" / "config.json").read_text() == written


def test_older_directories_with_a_copy_in_processor_config_still_load(tmp_path):
    """Before: processor_config.json held {"model_config": ...}, a second copy of config.json."""
    model, processor = load_model_and_processor("tiny")
    old = tmp_path / "old"
    model.save_pretrained(old)
    processor.tokenizer.save_pretrained(old)
    (old / LEGACY_PROCESSOR_CONFIG).write_text(json.dumps({"model_config": model.config.to_dict()}, indent=2))
    copy = SalmonnO1Config.from_dict(json.loads((old / LEGACY_PROCESSOR_CONFIG).read_text())["model_config"])
    assert settings(SalmonnO1Config.from_pretrained(old)) == settings(copy), "the two copies agree"
    loaded, reloaded = load_model_and_processor(old)
    assert settings(reloaded.config) == settings(copy)
    assert settings(SalmonnO1Processor.from_pretrained(old).config) == settings(copy)
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, model.state_dict()[name]), name
    # a processor saved alone the old way: the copy is its only config
    (old / "config.json").unlink()
    assert settings(SalmonnO1Processor.from_pretrained(old).config) == settings(copy)
