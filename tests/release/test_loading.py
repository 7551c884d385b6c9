import json

import pytest
import torch
from release_layout import released_names, write_encoder_checkpoints
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

import salmonn_o1
from salmonn_o1.checkpoints import load_model_and_processor
from salmonn_o1.errors import CheckpointError
from salmonn_o1.model import SalmonnO1ForConditionalGeneration
from salmonn_o1.release.loading import load_release_model, load_release_tokenizer


def logits(model, inputs):
    with torch.no_grad():
        return model(**inputs).logits


def test_every_released_tensor_lands_in_its_parameter(make_release, config):
    names = released_names(config)
    distinct = {}

    def fill(tensors):  # released tensor number k holds the value k everywhere
        for k, name in enumerate(names):
            tensors[name] = torch.full_like(tensors[name], float(k))
            distinct[names[name]] = float(k)

    model = load_release_model(make_release(edit=fill))
    state = model.state_dict()
    assert set(state) == set(distinct)
    for ours, value in distinct.items():
        assert torch.all(state[ours] == value), ours


@pytest.mark.parametrize("fmt, shards", [("safetensors", 2), ("bin", 2), ("safetensors", 1), ("bin", 1)])
def test_a_released_checkpoint_computes_what_the_same_weights_compute_natively(
    make_release, video_inputs, native_logits, fmt, shards
):
    directory = make_release(fmt=fmt, shards=shards)
    model, info = load_release_model(directory, output_loading_info=True)
    assert torch.equal(logits(model, video_inputs), native_logits)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [] and info["mismatched_keys"] == []
    assert list(info["dropped_keys"]) == ["speech_Qformer.bert.embeddings.position_ids"]
    assert info["sources"] == {"checkpoint": str(directory)}
    assert not model.training and not model.vision_tower.embeddings.patch_embedding.weight.requires_grad


def test_the_pipeline_loader_detects_the_released_layout(make_release, video_inputs, native_logits):
    directory = make_release()
    model, processor = load_model_and_processor(directory, dtype="float32")
    assert torch.equal(logits(model, video_inputs), native_logits)
    assert processor.tokenizer.convert_tokens_to_ids("<image>") == model.config.media_token_id == 3
    batch = processor("What happens?", videos=None)
    assert logits(model, batch).shape[-1] == model.config.text_config.vocab_size


def test_the_public_load_reads_the_released_layout_exactly(make_release, video_inputs, native_logits):
    pipe = salmonn_o1.load(make_release(), device="cpu", dtype="float32")
    assert torch.equal(logits(pipe.model, video_inputs), native_logits)
    assert pipe.processor.config is pipe.model.config


def test_the_model_class_reads_our_layout_only_and_points_to_the_loader(make_release):
    """The model never imports the release adapter: a released directory is refused by name, not half-loaded."""
    directory = make_release()
    with pytest.raises(CheckpointError, match="model_type 'videosalmonno1'") as error:
        SalmonnO1ForConditionalGeneration.from_pretrained(directory)
    assert str(directory) in str(error.value) and "load_model_and_processor" in str(error.value)
    assert "salmonn-o1 convert" in str(error.value)


def test_encoders_come_from_their_own_checkpoints_when_the_release_lacks_them(
    tmp_path, make_release, config, native_model, video_inputs, native_logits
):
    siglip, whisper = write_encoder_checkpoints(tmp_path / "encoders", config, native_model.state_dict())

    def drop_encoders(tensors):
        for name in [n for n in tensors if n.startswith(("speech_encoder.", "model.vision_tower."))]:
            del tensors[name]

    directory = make_release(edit=drop_encoders)
    model, info = load_release_model(directory, siglip_path=siglip, whisper_path=whisper, output_loading_info=True)
    assert torch.equal(logits(model, video_inputs), native_logits)
    assert info["sources"] == {"checkpoint": str(directory), "SigLIP": str(siglip), "Whisper": str(whisper)}
    dropped = " ".join(info["dropped_keys"])
    for unused in ("encoder.layers.2.", "vision_model.head.", "text_model.", "model.decoder.", "proj_out."):
        assert unused in dropped


def test_the_checkpoints_own_encoder_weights_win(
    tmp_path, make_release, config, native_model, video_inputs, native_logits
):
    other = {k: torch.randn_like(v) for k, v in native_model.state_dict().items()}
    siglip, whisper = write_encoder_checkpoints(tmp_path / "encoders", config, other)
    model = load_release_model(make_release(), siglip_path=siglip, whisper_path=whisper)
    assert torch.equal(logits(model, video_inputs), native_logits)


def test_a_missing_shard_is_named(make_release):
    directory = make_release()
    (directory / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"shard model-00002-of-00002\.safetensors listed in "
                                              r"model\.safetensors\.index\.json is missing"):
        load_release_model(directory)


def test_a_renamed_tensor_is_named_as_unexpected_and_its_parameter_as_missing(make_release):
    def rename(tensors):
        tensors["model.mm_projector.1.weight"] = tensors.pop("model.mm_projector.2.weight")
        tensors["speech_Qformer.bert.encoder.layer.0.crossattention.self.qeury.bias"] = tensors.pop(
            "speech_Qformer.bert.encoder.layer.0.crossattention.self.query.bias")

    with pytest.raises(CheckpointError) as error:
        load_release_model(make_release(edit=rename))
    message = str(error.value)
    assert "missing: audio_qformer.qformer.encoder.layer.0.crossattention.attention.query.bias (released name " \
           "speech_Qformer.bert.encoder.layer.0.crossattention.self.query.bias)" in message
    assert "mm_projector.2.weight (released name model.mm_projector.2.weight)" in message
    assert "unexpected: model.mm_projector.1.weight, speech_Qformer.bert.encoder.layer.0.crossattention.self.qeury.bias" \
        in message
    assert "strict=False" in message


def test_a_wrong_shape_is_named_with_both_shapes(make_release):
    def reshape(tensors):
        tensors["speech_llama_proj.weight"] = torch.zeros(64, 31)

    with pytest.raises(CheckpointError, match=r"wrong shapes: speech_llama_proj\.weight -> audio_projector\.weight "
                                              r"\(checkpoint \(64, 31\) vs model \(64, 32\)\)"):
        load_release_model(make_release(edit=reshape))


def test_strict_false_loads_what_fits_and_initialises_the_rest(make_release, native_model):
    def damage(tensors):
        del tensors["model.image_newline"]
        tensors["speech_llama_proj.weight"] = torch.zeros(64, 31)
        tensors["speech_extra.weight"] = torch.zeros(2)

    model, info = load_release_model(make_release(edit=damage), strict=False, output_loading_info=True)
    assert info["missing_keys"] == ["audio_projector.weight", "image_newline"]
    assert info["unexpected_keys"] == ["speech_extra.weight"]
    assert info["mismatched_keys"] == [("audio_projector.weight", (64, 31), (64, 32))]
    assert torch.equal(model.mm_projector[0].weight, native_model.mm_projector[0].weight)
    assert model.image_newline.device.type == "cpu" and torch.isfinite(model.image_newline).all()
    assert model.audio_projector.weight.std() > 0


def test_lora_adapters_in_a_training_checkpoint_are_merged(make_release, native_model, config):
    torch.manual_seed(3)
    a, b = torch.randn(4, 64), torch.randn(64, 4)

    def wrap_and_add_lora(tensors):
        for name in list(tensors):  # DeepSpeed + PEFT names
            base = name.replace("q_proj.weight", "q_proj.base_layer.weight")
            tensors["module.base_model.model." + base] = tensors.pop(name)
        prefix = "module.base_model.model.model.layers.1.self_attn.q_proj."
        tensors[prefix + "lora_A.default.weight"] = a
        tensors[prefix + "lora_B.default.weight"] = b

    directory = make_release(edit=wrap_and_add_lora)
    (directory / "adapter_config.json").write_text(json.dumps({"r": 4, "lora_alpha": 8}))
    model, info = load_release_model(directory, output_loading_info=True)
    expected = native_model.language_model.model.layers[1].self_attn.q_proj.weight + 2.0 * (b @ a)
    assert torch.allclose(model.language_model.model.layers[1].self_attn.q_proj.weight, expected, atol=1e-6)
    assert info["lora_merged"] == ["language_model.model.layers.1.self_attn.q_proj.weight"]
    (directory / "adapter_config.json").unlink()
    with pytest.raises(CheckpointError, match="lora_scale"):
        load_release_model(directory)
    assert torch.allclose(load_release_model(directory, lora_scale=2.0).language_model.model.layers[1]
                          .self_attn.q_proj.weight, expected, atol=1e-6)


def test_the_checkpoints_tokenizer_gets_the_media_placeholder_and_keeps_its_template(make_release, tmp_path):
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.train_from_iterator(["system user assistant hello"], trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    qwen_like = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>",
                                        additional_special_tokens=["<|im_start|>", "<|im_end|>"])
    qwen_like.chat_template = "{{ messages[0]['content'] }}"
    directory = make_release(with_tokenizer=False)
    qwen_like.save_pretrained(directory)
    loaded = load_release_tokenizer(directory)
    image_id = loaded.convert_tokens_to_ids("<image>")
    assert image_id == len(qwen_like)  # one new id after the vocabulary
    assert loaded.chat_template == "{{ messages[0]['content'] }}"
    assert loaded.pad_token == "<|endoftext|>"
    assert load_release_model(directory).config.media_token_id == image_id


def test_dtype_and_accelerate_device_map(make_release, video_inputs, native_logits):
    model = load_release_model(make_release(), dtype=torch.bfloat16, device_map="auto")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert set(model.hf_device_map.values()) == {"cpu"}
    out = logits(model, video_inputs)
    assert out.dtype == torch.bfloat16
    assert torch.allclose(out.float(), native_logits, atol=0.1)


def test_quantisation_requests_point_to_the_native_layout(make_release):
    with pytest.raises(CheckpointError, match="salmonn-o1 convert"):
        load_release_model(make_release(), load_in_4bit=True)
