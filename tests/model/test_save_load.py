import pytest
import torch
from safetensors.torch import load_file, save_file

from salmonn_o1.errors import CheckpointError
from salmonn_o1.model import SalmonnO1ForConditionalGeneration

from batches import video_batch


@pytest.fixture()
def saved(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    return tmp_path


def test_round_trip_reproduces_logits_exactly(tiny_model, tiny_config, saved):
    batch = video_batch(tiny_config)
    reloaded = SalmonnO1ForConditionalGeneration.from_pretrained(saved).eval()
    with torch.no_grad():
        assert torch.equal(tiny_model(**batch).logits, reloaded(**batch).logits)
    assert not reloaded.vision_tower.embeddings.patch_embedding.weight.requires_grad, "freezing survives loading"


def _rewrite(path, edit):
    weights = load_file(path / "model.safetensors")
    edit(weights)
    save_file(weights, path / "model.safetensors", metadata={"format": "pt"})


def test_missing_and_unexpected_keys_are_named(saved):
    def edit(weights):
        weights.pop("audio_projector.weight")
        weights["speech_llama_proj.weight"] = torch.zeros(1)

    _rewrite(saved, edit)
    with pytest.raises(CheckpointError) as error:
        SalmonnO1ForConditionalGeneration.from_pretrained(saved)
    message = str(error.value)
    assert "missing keys: audio_projector.weight" in message
    assert "unexpected keys: speech_llama_proj.weight" in message
    assert str(saved) in message


def test_config_that_does_not_match_the_weights_is_refused(saved):
    def edit(weights):
        weights["mm_projector.0.weight"] = torch.zeros(64, 31)

    _rewrite(saved, edit)
    with pytest.raises(CheckpointError, match=r"mm_projector\.0\.weight \(checkpoint \(64, 31\) vs model \(64, 32\)\)"):
        SalmonnO1ForConditionalGeneration.from_pretrained(saved)


def test_non_strict_loading_keeps_the_matching_tensors(tiny_model, saved):
    _rewrite(saved, lambda weights: weights.pop("image_newline"))
    reloaded = SalmonnO1ForConditionalGeneration.from_pretrained(saved, strict=False)
    assert torch.equal(reloaded.mm_projector[0].weight, tiny_model.mm_projector[0].weight)


def test_corrupted_file_and_missing_directory_are_clear_errors(saved, tmp_path):
    (saved / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match=str(saved)):
        SalmonnO1ForConditionalGeneration.from_pretrained(saved)
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        SalmonnO1ForConditionalGeneration.from_pretrained(tmp_path / "absent")


def test_auto_config_reads_a_saved_checkpoint_as_ours(tiny_config, saved):
    """AutoTokenizer reads config.json through AutoConfig: unregistered, it fell back to a bare
    config and warned on every load of the shipped model."""
    from transformers import AutoConfig

    from salmonn_o1.config import SalmonnO1Config

    config = AutoConfig.from_pretrained(saved)
    assert isinstance(config, SalmonnO1Config)
    assert config.text_config.hidden_size == tiny_config.text_config.hidden_size
