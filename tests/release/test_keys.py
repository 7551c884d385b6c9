import pytest
import torch
from accelerate import init_empty_weights
from release_layout import released_names

from salmonn_o1.config import video_salmonn_o1_7b_config
from salmonn_o1.errors import CheckpointError
from salmonn_o1.model import SalmonnO1ForConditionalGeneration
from salmonn_o1.release.keys import (
    map_keys,
    native_to_release_state_dict,
    release_to_native_state_dict,
    split_lora,
    strip_wrappers,
    to_native,
    to_release,
)


def test_every_tensor_has_the_released_name_the_spec_gives(native_model, config):
    expected = released_names(config)
    ours = set(native_model.state_dict())
    assert set(expected.values()) == ours, "the spec's list and the model cover the same tensors"
    for theirs, mine in expected.items():
        assert to_native(theirs)[0] == mine
        assert to_release(mine) == theirs


def test_the_7b_model_maps_completely_with_the_published_parameter_counts():
    with init_empty_weights():
        model = SalmonnO1ForConditionalGeneration(video_salmonn_o1_7b_config())
    sizes = {to_release(name): p.numel() for name, p in model.named_parameters()}
    assert None not in sizes

    def millions(*prefixes):
        return round(sum(n for k, n in sizes.items() if k.startswith(prefixes)) / 1e6, 1)

    # DESIGN.md section 2 / reference-release-spec.md section 6.
    assert millions("speech_Qformer.") == 20.5
    assert millions("speech_llama_proj.") == 2.8
    assert millions("final_linear.") == 25.7
    assert millions("model.mm_projector.") == 17.0
    assert millions("model.vision_tower.") == 397.7
    assert millions("speech_encoder.") == 637.0
    assert round(sum(n for k, n in sizes.items() if k.startswith(("model.layers.", "model.embed", "model.norm",
                                                                  "lm_head"))) / 1e9, 3) == 7.616
    assert not any(k.startswith(VISION_LAYER_26) for k in sizes), "the release drops SigLIP's last layer"


VISION_LAYER_26 = "model.vision_tower.vision_tower.vision_model.encoder.layers.26."


def test_training_wrappers_and_lora_names_are_understood():
    key = "module.base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight"
    assert strip_wrappers(key) == "model.layers.0.self_attn.q_proj.weight"
    assert split_lora("model.layers.3.self_attn.v_proj.lora_B.default.weight") == (
        "model.layers.3.self_attn.v_proj.weight", "B")
    mapping = map_keys(["module.lm_head.weight", "base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"])
    assert mapping.mapped == {"module.lm_head.weight": "language_model.lm_head.weight"}
    assert mapping.lora == {"model.layers.0.self_attn.q_proj.weight": {
        "A": "base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"}}
    assert "without their A/B partner" in mapping.problems()[0]


def test_released_tensors_we_do_not_use_are_dropped_with_a_reason():
    mapping = map_keys([
        "speech_Qformer.bert.embeddings.position_ids", "model.layers.0.self_attn.rotary_emb.inv_freq",
        "model.vision_tower.vision_tower.vision_model.head.mlp.fc1.weight",
        "model.vision_tower.vision_tower.vision_model.encoder.layers.26.mlp.fc1.weight",
        "speech_Qformer.bert.encoder.layer.0.output.dense.weight",
        "speech_Qformer.bert.encoder.layer.0.output_query.dense.weight",
    ], vision_layers_used=26)
    assert set(mapping.dropped) == {
        "speech_Qformer.bert.embeddings.position_ids", "model.layers.0.self_attn.rotary_emb.inv_freq",
        "model.vision_tower.vision_tower.vision_model.head.mlp.fc1.weight",
        "model.vision_tower.vision_tower.vision_model.encoder.layers.26.mlp.fc1.weight",
        "speech_Qformer.bert.encoder.layer.0.output.dense.weight",
    }
    assert all(mapping.dropped.values())
    assert mapping.mapped == {"speech_Qformer.bert.encoder.layer.0.output_query.dense.weight":
                              "audio_qformer.qformer.encoder.layer.0.output_query.dense.weight"}


def test_whole_state_dicts_map_both_ways_and_name_what_they_cannot(native_model):
    native = native_model.state_dict()
    released = native_to_release_state_dict(native)
    assert release_to_native_state_dict(released).keys() == native.keys()
    released["speech_Qformr.bert.encoder.layer.0.attention.self.query.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"no rule for: speech_Qformr\.bert"):
        release_to_native_state_dict(released)
    assert "Qformr" not in str(release_to_native_state_dict(released, strict=False))
    with pytest.raises(CheckpointError, match="time_embedding.weight"):
        native_to_release_state_dict({"time_embedding.weight": torch.zeros(1)})


def test_two_names_for_one_tensor_are_refused():
    with pytest.raises(CheckpointError, match="both name language_model.lm_head.weight"):
        map_keys(["lm_head.weight", "module.lm_head.weight"])
