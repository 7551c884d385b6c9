import json

import pytest
import torch
from release_layout import released_names

from salmonn_o1.cli import main
from salmonn_o1.errors import CheckpointError
from salmonn_o1.model import SalmonnO1ForConditionalGeneration
from salmonn_o1.release.loading import ShardReader, find_release_checkpoint, weight_files
from salmonn_o1.release.writing import convert_checkpoint, save_release_checkpoint


def read_all(directory) -> dict[str, torch.Tensor]:
    tensors = {}
    for path, keys in weight_files(directory).items():
        with ShardReader(path) as shard:
            tensors.update({key: shard.get(key) for key in keys})
    return tensors


def test_release_to_native_and_back_is_lossless(make_release, tmp_path, config, video_inputs, native_logits, capsys):
    source = make_release(fmt="bin")
    native, back = tmp_path / "native", tmp_path / "back"
    assert main(["convert", str(source), str(native)]) == 0
    assert "(release) ->" in capsys.readouterr().out
    assert find_release_checkpoint(native) is None, "the converted model needs no key map"
    assert json.loads((native / "config.json").read_text())["model_type"] == "salmonn_o1"
    model = SalmonnO1ForConditionalGeneration.from_pretrained(native)  # transformers' own loader
    with torch.no_grad():
        assert torch.equal(model(**video_inputs).logits, native_logits)

    assert main(["convert", str(native), str(back), "--to", "release", "--max-shard-size", "100KB"]) == 0
    assert (back / "model.safetensors.index.json").exists()
    original, restored = read_all(source), read_all(back)
    del original["speech_Qformer.bert.embeddings.position_ids"]  # an unused buffer, not carried
    assert restored.keys() == original.keys() == released_names(config).keys()
    for name, tensor in original.items():
        assert restored[name].dtype == tensor.dtype and torch.equal(restored[name], tensor), name
    restored_config = json.loads((back / "config.json").read_text())
    original_config = json.loads((source / "config.json").read_text())
    for name in ("mm_tunable_parts", "image_grid_pinpoints", "hidden_size", "mm_spatial_pool_stride"):
        assert restored_config[name] == original_config[name]


def test_native_to_release_and_back_is_lossless_in_bfloat16(native_model, tokenizer, tmp_path):
    model = SalmonnO1ForConditionalGeneration(native_model.config).to(torch.bfloat16)
    model.load_state_dict(native_model.state_dict())
    first, release, second = tmp_path / "a", tmp_path / "release", tmp_path / "b"
    model.save_pretrained(first)
    tokenizer.save_pretrained(first)
    convert_checkpoint(first, release)
    assert json.loads((release / "config.json").read_text())["torch_dtype"] == "bfloat16"
    convert_checkpoint(release, second)
    before, after = read_all(first), read_all(second)
    assert before.keys() == after.keys()
    assert all(after[k].dtype == torch.bfloat16 and torch.equal(after[k], v) for k, v in before.items())


def test_a_model_in_memory_can_be_written_in_the_released_layout(native_model, tmp_path, config):
    save_release_checkpoint(native_model, tmp_path, weights_format="bin", max_shard_size="200KB")
    assert (tmp_path / "pytorch_model.bin.index.json").exists()
    assert read_all(tmp_path).keys() == released_names(config).keys()


def test_convert_refuses_what_it_cannot_do(make_release, native_model, tmp_path, capsys):
    source = make_release()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(CheckpointError, match="not empty"):
        convert_checkpoint(source, tmp_path / "taken")
    with pytest.raises(CheckpointError, match="already in the release layout"):
        convert_checkpoint(source, tmp_path / "out", to="release")
    aligned = SalmonnO1ForConditionalGeneration(native_model.config.__class__.from_dict(
        {**native_model.config.to_dict(), "interleave_mode": "aligned"}))
    aligned.save_pretrained(tmp_path / "aligned")
    assert main(["convert", str(tmp_path / "aligned"), str(tmp_path / "out2")]) == 2
    assert "interleave_mode='aligned'" in capsys.readouterr().err


def test_strict_false_converts_a_damaged_checkpoint_and_says_what_it_filled(make_release, tmp_path, capsys):
    source = make_release(edit=lambda tensors: tensors.pop("model.image_newline"))
    assert main(["convert", str(source), str(tmp_path / "strict")]) == 2
    assert "missing: image_newline" in capsys.readouterr().err
    assert main(["convert", str(source), str(tmp_path / "lenient"), "--strict", "false"]) == 0
    assert "initialised (missing): 1 tensors, e.g. image_newline" in capsys.readouterr().out
    SalmonnO1ForConditionalGeneration.from_pretrained(tmp_path / "lenient")
