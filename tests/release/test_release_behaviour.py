"""Where the release behaves otherwise than our own models, a released-layout checkpoint behaves as the release.

Which SigLIP weights are used (config.json's `mm_tunable_parts`), the five
fields the released inference script overwrites, the Q-Former width taken
from Whisper, the release's media switches and reasoning prompt; our own
models keep theirs.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from release_layout import release_config_json, released_names, write_encoder_checkpoints, write_weights
from transformers import Blip2QFormerConfig, WhisperConfig

from salmonn_o1.checkpoints import load_model_and_processor
from salmonn_o1.cli import main
from salmonn_o1.config import tiny_config, video_salmonn_o1_7b_config
from salmonn_o1.errors import CheckpointError
from salmonn_o1.inference import SalmonnO1Pipeline
from salmonn_o1.model import SalmonnO1ForConditionalGeneration
from salmonn_o1.processor import SalmonnO1Processor
from salmonn_o1.prompts import PromptError
from salmonn_o1.release.config import ReleaseConfigError
from salmonn_o1.release.loading import load_release_model
from salmonn_o1.release.writing import convert_checkpoint

CHECKPOINT_FILL, PUBLISHED_FILL = 1.0, 2.0
RELEASE_WORDING = "Answer the question step by step. Output each thinking step."
STEP_MARKED_WORDING = RELEASE_WORDING + " Mark the end of each step with <end_of_step>."
RELEASE_SWITCHES = {"frame_sampling": "index", "duration_source": "frames", "pad_audio_to_video": False,
                    "single_frame_as_image": True}


def logits(model, inputs):
    with torch.no_grad():
        return model(**inputs).logits


def edit_config(directory: Path, **changes) -> None:
    """Rewrite the checkpoint's config.json; a value None removes the field."""
    raw = json.loads((directory / "config.json").read_text())
    for name, value in changes.items():
        if value is None:
            raw.pop(name, None)
        else:
            raw[name] = value
    (directory / "config.json").write_text(json.dumps(raw))


def fill_vision(tensors: dict[str, torch.Tensor]) -> None:
    for name in [n for n in tensors if n.startswith("model.vision_tower.")]:
        tensors[name] = torch.full_like(tensors[name], CHECKPOINT_FILL)


@pytest.fixture()
def published_siglip(tmp_path, config, native_model) -> Path:
    """A SigLIP checkpoint of its own whose every weight is PUBLISHED_FILL (the checkpoint's copy is CHECKPOINT_FILL)."""
    filled = {k: torch.full_like(v, PUBLISHED_FILL) for k, v in native_model.state_dict().items()}
    siglip, _ = write_encoder_checkpoints(tmp_path / "published", config, filled)
    return siglip


# ---------------------------------------------------------------- item 5: which SigLIP weights
@pytest.mark.parametrize("changes, fill", [
    ({}, CHECKPOINT_FILL),  # the fixture's config.json: mm_tunable_parts names mm_vision_tower
    ({"mm_tunable_parts": None}, PUBLISHED_FILL),
    ({"mm_tunable_parts": "mm_mlp_adapter,mm_language_model"}, PUBLISHED_FILL),
    ({"mm_tunable_parts": None, "unfreeze_mm_vision_tower": True}, CHECKPOINT_FILL),
    ({"mm_tunable_parts": None, "unfreeze_mm_vision_tower": False}, PUBLISHED_FILL),
])
def test_the_checkpoints_siglip_is_used_only_when_config_json_says_the_tower_was_trained(
    make_release, published_siglip, native_model, changes, fill
):
    directory = make_release(edit=fill_vision)
    edit_config(directory, mm_vision_tower=str(published_siglip), **changes)
    model, info = load_release_model(directory, output_loading_info=True)
    vision = dict(model.vision_tower.named_parameters())
    assert vision and all(torch.all(p == fill) for p in vision.values())
    # Everything else still comes from the checkpoint.
    assert torch.equal(model.audio_encoder.conv1.weight, native_model.audio_encoder.conv1.weight)
    assert torch.equal(model.mm_projector[0].weight, native_model.mm_projector[0].weight)
    patch = "model.vision_tower.vision_tower.vision_model.embeddings.patch_embedding.weight"
    if fill == PUBLISHED_FILL:
        assert info["sources"]["SigLIP"] == str(published_siglip)
        assert "mm_tunable_parts" in info["dropped_keys"][patch]
        assert info["missing_keys"] == []
    else:
        assert "SigLIP" not in info["sources"] and patch not in info["dropped_keys"]


def test_siglip_path_names_the_published_siglip_when_config_json_does_not_mark_the_tower_trained(
    make_release, published_siglip
):
    directory = make_release(edit=fill_vision)
    edit_config(directory, mm_tunable_parts=None)  # mm_vision_tower names a SigLIP without weights
    model = load_release_model(directory, siglip_path=published_siglip)
    assert all(torch.all(p == PUBLISHED_FILL) for p in model.vision_tower.parameters())


@pytest.mark.parametrize("where", ["config-only", "absent"])
def test_an_unreadable_published_siglip_is_one_error_naming_what_to_pass(make_release, tmp_path, where):
    directory = make_release()
    changes = {"mm_tunable_parts": None}
    if where == "absent":
        changes["mm_vision_tower"] = str(tmp_path / "no-such-siglip")
    edit_config(directory, **changes)
    with pytest.raises(CheckpointError) as error:
        load_release_model(directory)
    message = str(error.value)
    assert "siglip_path=" in message and "google/siglip-so400m-patch14-384" in message
    assert "mm_tunable_parts" in message and str(directory) in message


def test_our_converter_marks_the_tower_trained_so_the_release_keeps_the_siglip_it_writes(native_model, tmp_path):
    """A model of ours written in the released layout carries its own SigLIP; the released code (and our
    loader) must use it, not swap in the published one."""
    native_model.save_pretrained(tmp_path / "ours")
    convert_checkpoint(tmp_path / "ours", tmp_path / "release")
    raw = json.loads((tmp_path / "release" / "config.json").read_text())
    assert "mm_vision_tower" in raw["mm_tunable_parts"]
    model = load_release_model(tmp_path / "release")
    assert torch.equal(model.vision_tower.embeddings.patch_embedding.weight,
                       native_model.vision_tower.embeddings.patch_embedding.weight)


# ---------------------------------------------------------------- item 6: the fields the release overwrites
def test_a_config_saying_average_still_max_pools_unless_overridden(
    make_release, native_model, video_inputs, native_logits, caplog
):
    directory = make_release()
    edit_config(directory, mm_spatial_pool_mode="average")
    with caplog.at_level(logging.WARNING):
        model = load_release_model(directory)
    assert model.config.spatial_pool_mode == "max"
    assert torch.equal(logits(model, video_inputs), native_logits)
    assert "mm_spatial_pool_mode='average'" in caplog.text and "release_overrides" in caplog.text

    averaging = SalmonnO1ForConditionalGeneration(tiny_config(interleave_mode="release", spatial_pool_mode="average"))
    averaging.load_state_dict(native_model.state_dict())
    expected = logits(averaging.eval(), video_inputs)
    assert not torch.allclose(expected, native_logits)  # the pooling mode shows in the logits
    overridden = load_release_model(directory, release_overrides={"mm_spatial_pool_mode": "average"})
    assert overridden.config.spatial_pool_mode == "average"
    assert torch.equal(logits(overridden, video_inputs), expected)
    # The same override through the loaders every command uses.
    model, _ = load_model_and_processor(directory, dtype="float32",
                                        release_overrides={"mm_spatial_pool_mode": "average"})
    assert torch.equal(logits(model, video_inputs), expected)
    pipe = SalmonnO1Pipeline.from_pretrained(str(directory), device="cpu", dtype="float32",
                                             release_overrides={"mm_spatial_pool_mode": "average"})
    assert pipe.model.config.spatial_pool_mode == "average"


def test_an_override_the_model_cannot_run_is_refused_by_name(make_release):
    directory = make_release()
    with pytest.raises(ReleaseConfigError, match="mm_newline_position='frame'"):
        load_release_model(directory, release_overrides={"mm_newline_position": "frame"})
    with pytest.raises(ReleaseConfigError, match="mm_vision_select_layer"):
        load_release_model(directory, release_overrides={"mm_vision_select_layer": -1})


# ---------------------------------------------------------------- item 7: the Q-Former's width from Whisper
def test_a_whisper_width_other_than_1280_loads_and_runs_without_our_extra_field(tmp_path, tokenizer, video_inputs):
    """The release builds a bert-base Q-Former whose cross-attention reads the Whisper it loaded;
    config.json says nothing of either."""
    base = tiny_config(interleave_mode="release")
    whisper = WhisperConfig.from_dict({**base.audio_config.to_dict(), "d_model": 48})
    qformer = Blip2QFormerConfig.from_dict(
        {**video_salmonn_o1_7b_config().qformer_config.to_dict(), "encoder_hidden_size": 48})
    config = tiny_config(interleave_mode="release", audio_config=whisper, qformer_config=qformer)
    torch.manual_seed(4)
    native = SalmonnO1ForConditionalGeneration(config).eval()
    siglip, whisper_dir = write_encoder_checkpoints(tmp_path, config)
    state = native.state_dict()
    directory = tmp_path / "video-SALMONN-o1"
    write_weights(directory, {theirs: state[ours] for theirs, ours in released_names(config).items()})
    raw = release_config_json(config, siglip, whisper_dir)
    del raw["salmonn_o1"]
    (directory / "config.json").write_text(json.dumps(raw))
    tokenizer.save_pretrained(directory)

    model = load_release_model(directory)
    assert model.config.audio_config.d_model == 48
    assert (model.config.qformer_config.hidden_size, model.config.qformer_config.encoder_hidden_size) == (768, 48)
    assert torch.equal(logits(model, video_inputs), logits(native, video_inputs))


# ---------------------------------------------------------------- items 1-4 switches and the prompt preset
def test_released_layout_loading_sets_the_release_rules_and_conversions_keep_them(
    make_release, native_model, tmp_path
):
    source = make_release()
    config = load_release_model(source).config
    assert {name: getattr(config, name) for name in RELEASE_SWITCHES} == RELEASE_SWITCHES
    assert config.reasoning_prompt == "release"

    assert main(["convert", str(source), str(tmp_path / "native")]) == 0
    written = json.loads((tmp_path / "native" / "config.json").read_text())
    assert {name: written[name] for name in RELEASE_SWITCHES} == RELEASE_SWITCHES
    assert written["reasoning_prompt"] == "release"
    convert_checkpoint(tmp_path / "native", tmp_path / "back")
    assert json.loads((tmp_path / "back" / "config.json").read_text())["salmonn_o1"]["frame_sampling"] == "index"
    back = load_release_model(tmp_path / "back").config
    assert {name: getattr(back, name) for name in RELEASE_SWITCHES} == RELEASE_SWITCHES

    # Our own model written in the released layout keeps our rules and wording.
    native_model.save_pretrained(tmp_path / "ours")
    convert_checkpoint(tmp_path / "ours", tmp_path / "ours-release")
    ours = load_release_model(tmp_path / "ours-release").config
    assert (ours.frame_sampling, ours.duration_source, ours.pad_audio_to_video, ours.single_frame_as_image) == (
        "time", "stream", True, False)
    assert ours.reasoning_prompt == "step-marked"


def write_wav(path: Path, seconds: float = 1.5, rate: int = 16_000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 440.0 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def prompt_ids_seen(pipe: SalmonnO1Pipeline, *args, **kwargs) -> list[int]:
    """The prompt ids the pipeline feeds the model for one question (recorded from the real processor)."""
    seen = []
    encode = pipe.processor.encode

    def recording(*a, **k):
        sample = encode(*a, **k)
        seen.append(sample.input_ids)
        return sample

    pipe.processor.encode = recording
    try:
        pipe.ask(*args, max_new_tokens=2, answer_max_new_tokens=1, **kwargs)
    finally:
        pipe.processor.encode = encode
    assert len(seen) == 1
    return seen[0]


def expected_ids(pipe: SalmonnO1Pipeline, media, user_text: str) -> list[int]:
    return pipe.processor.encode(user_text, pipe.features(media)).input_ids


def test_each_model_is_asked_in_its_own_wording_and_a_preset_or_text_can_replace_it(
    make_release, tmp_path, tiny_model, tiny_config, tokenizer
):
    audio = write_wav(tmp_path / "tone.wav")
    question = "What happens?"
    released = SalmonnO1Pipeline.from_pretrained(str(make_release()), device="cpu", dtype="float32")
    assert released.prompt == "release"
    release_ids = prompt_ids_seen(released, audio, question)
    assert release_ids == expected_ids(released, audio, f"{question}\n{RELEASE_WORDING}")
    step_ids = prompt_ids_seen(released, audio, question, prompt="step-marked")
    assert step_ids == expected_ids(released, audio, f"{question}\n{STEP_MARKED_WORDING}")
    assert step_ids != release_ids
    released.prompt = "Think it through, one step per line."
    assert prompt_ids_seen(released, audio, question) == expected_ids(
        released, audio, f"{question}\nThink it through, one step per line.")
    with pytest.raises(PromptError, match="preset"):
        released.prompt = "  "

    ours = SalmonnO1Pipeline(tiny_model, SalmonnO1Processor(tokenizer, tiny_config))
    assert ours.prompt == "step-marked"
    assert prompt_ids_seen(ours, audio, question) == expected_ids(ours, audio, f"{question}\n{STEP_MARKED_WORDING}")
    assert SalmonnO1Pipeline(tiny_model, SalmonnO1Processor(tokenizer, tiny_config), prompt="release").prompt == "release"


def test_ask_prompt_option_chooses_the_wording(make_release, tmp_path, capsys):
    audio = write_wav(tmp_path / "tone.wav")
    directory = make_release()
    pipe = SalmonnO1Pipeline.from_pretrained(str(directory), device="cpu", dtype="float32")
    common = ["ask", str(audio), "What happens?", "--model", str(directory), "--device", "cpu", "--json",
              "--max-new-tokens", "2", "--answer-max-new-tokens", "1"]
    for option, wording in ((None, RELEASE_WORDING), ("release", RELEASE_WORDING),
                            ("step-marked", STEP_MARKED_WORDING), ("Be brief.", "Be brief.")):
        assert main(common + (["--prompt", option] if option else [])) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["tokens"]["prompt"] == len(expected_ids(pipe, audio, f"What happens?\n{wording}")), option

    # One real process: a bad --prompt is one line on stderr and exit status 2.
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    run = subprocess.run([sys.executable, "-m", "salmonn_o1.cli", *common, "--prompt", " "], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert "reasoning prompt" in run.stderr and "Traceback" not in run.stderr


# ---------------------------------------------------------------- items 1-4 end to end on a released-layout checkpoint
def _media_writer():
    """tests/media/avgen.py's writer (clips with exact timestamps and audio tracks), by path."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "media"))
    from avgen import SR, write_video

    return Fraction(30000, 1001), SR, write_video


def test_a_released_layout_pipeline_decodes_media_by_the_release_rules(make_release, tmp_path, capsys):
    """Through `SalmonnO1Pipeline` and `salmonn-o1 ask` on a released-layout checkpoint: a one-frame clip takes
    the image branch (grid + newline, no audio) and a short audio track keeps its own length; the prompt the
    model sees holds exactly that many media placeholders and the model runs on it."""
    ntsc, sr, write_video = _media_writer()
    one_frame = write_video(tmp_path / "04.mp4", 12, ntsc, size=(64, 32), ticks_per_frame=1001,
                            audio=[(0.0, 440.0)], audio_rate=sr, audio_layout="mono")
    short_audio = write_video(tmp_path / "short.mp4", 305, 10, size=(32, 32), audio=[(0.0, 440.0)],
                              audio_seconds=29.6, audio_rate=sr, audio_layout="mono")
    source = make_release()
    pipe = SalmonnO1Pipeline(*load_model_and_processor(source))
    config = pipe.processor.config

    image = pipe.features(one_frame.path)
    assert image.spec.frame_as_image and image.input_features is None
    assert image.token_count == config.single_frame_image_tokens
    audio = pipe.features(short_audio.path)
    assert audio.num_chunks == 1  # 29.6 s of audio: one Whisper chunk, not the video's two
    ours = SalmonnO1Processor(pipe.processor.tokenizer, tiny_config(interleave_mode="release"))
    assert ours.media_features(short_audio.path).num_chunks == 2

    for clip, features in ((one_frame, image), (short_audio, audio)):
        batch = pipe.processor(text=["What is shown?"], videos=[clip.path])
        placeholders = int((batch["input_ids"] == config.media_token_id).sum())
        assert placeholders == features.token_count
        with torch.no_grad():
            out = pipe.model(**batch)
        assert torch.isfinite(out.logits).all()

    # The pipeline asks with exactly these layouts: the prompts differ by the media token counts alone.
    asked = [pipe.ask(clip.path, "What is shown?", ["a", "b"], max_new_tokens=2, answer_max_new_tokens=2)
             for clip in (one_frame, short_audio)]
    assert asked[1].tokens["prompt"] - asked[0].tokens["prompt"] == audio.token_count - image.token_count
    assert main(["ask", str(one_frame.path), "What is shown?", "--model", str(source), "--max-new-tokens", "2",
                 "--json"]) == 0
