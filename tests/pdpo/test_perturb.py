"""Media perturbations: the release's diffusion schedule, seeding, and the audio / order options."""

import math

import pytest
import torch

from salmonn_o1.pdpo.perturb import Perturbation, diffusion_alphas_cumprod, diffusion_noise, shuffled_order


def test_schedule_matches_the_release_formula():
    abar = diffusion_alphas_cumprod()
    assert abar.shape == (1000,)
    # betas = sigmoid(linspace(-6, 6, 1000)) * (5e-3 - 1e-5) + 1e-5, abar_t = prod_{s<=t} (1 - beta_s)
    product = 1.0
    for s in range(101):
        x = -6 + 12 * s / 999
        product *= 1 - (1 / (1 + math.exp(-x)) * (5e-3 - 1e-5) + 1e-5)
    assert abar[100].item() == pytest.approx(product, rel=1e-12)
    assert 0.99 < abar[100].item() < 1.0 and abar[-1].item() < 0.1
    assert torch.all(abar[1:] < abar[:-1])


def test_noise_mixes_signal_and_gaussian_by_abar():
    x = torch.full((4000, 3, 4, 4), 0.5)
    noisy = diffusion_noise(x, 100, torch.Generator().manual_seed(0))
    abar = diffusion_alphas_cumprod()[100].item()
    assert noisy.mean().item() == pytest.approx(math.sqrt(abar) * 0.5, abs=3e-3)
    assert noisy.std().item() == pytest.approx(math.sqrt(1 - abar), rel=2e-2)


def test_frames_noise_is_seeded_and_leaves_the_input_alone(synth_features):
    before = synth_features.pixel_values.clone()
    a = Perturbation("frames-noise", seed=3)(synth_features)
    b = Perturbation("frames-noise", seed=3)(synth_features)
    c = Perturbation("frames-noise", seed=4)(synth_features)
    assert torch.equal(a.pixel_values, b.pixel_values) and not torch.equal(a.pixel_values, c.pixel_values)
    assert torch.equal(synth_features.pixel_values, before)
    assert torch.equal(a.input_features, synth_features.input_features)  # audio untouched
    assert a.token_count == synth_features.token_count


def test_noise_step_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="noise step"):
        diffusion_noise(torch.zeros(2), 1000)


def test_frame_shuffle_moves_frames_and_keeps_their_set(synth_features):
    shuffled = Perturbation("frame-shuffle", seed=1)(synth_features).pixel_values
    original = synth_features.pixel_values
    assert not torch.equal(shuffled, original)
    assert torch.allclose(shuffled.sum(0), original.sum(0), atol=1e-4)
    for seed in range(50):  # never the identity order
        order = shuffled_order(2, torch.Generator().manual_seed(seed))
        assert order.tolist() == [1, 0]


def test_audio_mute_gives_the_log_mel_of_silence(synth_features):
    muted = Perturbation("audio-mute")(synth_features)
    assert muted.input_features.shape == synth_features.input_features.shape
    assert torch.allclose(muted.input_features, torch.full_like(muted.input_features, -1.5))
    assert torch.equal(muted.pixel_values, synth_features.pixel_values)


def test_audio_noise_changes_only_the_audio(synth_features):
    noisy = Perturbation("audio-noise", noise_step=500)(synth_features)
    assert not torch.equal(noisy.input_features, synth_features.input_features)
    assert torch.equal(noisy.pixel_values, synth_features.pixel_values)


def test_missing_modality_names_the_fix(synth_features):
    import dataclasses

    audio_only = dataclasses.replace(synth_features, pixel_values=None)
    with pytest.raises(ValueError, match="audio-noise or audio-mute"):
        Perturbation("frames-noise")(audio_only)
    with pytest.raises(ValueError, match="unknown perturbation"):
        Perturbation("blur")
