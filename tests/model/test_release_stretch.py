"""The release interleaving's audio stretch equals torch's float32 nearest interpolation, index for index."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from salmonn_o1.model.interleave import _release_frame_audio, nearest_indices


def torch_nearest(front: int, size: int) -> np.ndarray:
    """What the release does: F.interpolate(mode="nearest") of the audio tokens to `size` (values = indices)."""
    values = torch.arange(front, dtype=torch.float32).view(1, 1, front)
    return F.interpolate(values, size=size, mode="nearest").view(-1).long().numpy()


def reachable_pairs() -> list[tuple[int, int]]:
    """(front tokens, frames): every clip up to 60 s (front <= 300, 1-60 frames), and 60 frames of
    1-201 chunks (the release's longest), where the float32 rounding starts to matter."""
    short = [(front, frames) for frames in range(1, 61) for front in range(1, 301, 7)]
    long = [(150 * chunks, 60) for chunks in range(1, 202)]
    return short + long


def test_stretch_indices_equal_torch_nearest_for_every_reachable_pair():
    for front, frames in reachable_pairs():
        per_frame, back = _release_frame_audio(front, frames, duration=1e6)
        size = front if front % frames == 0 else front + frames - front % frames
        assert len(back) == 0
        np.testing.assert_array_equal(np.concatenate(per_frame), torch_nearest(front, size),
                                      err_msg=f"{front} tokens over {frames} frames")


@pytest.mark.parametrize(("front", "size"), [(22950, 22980), (150, 180), (75, 150), (60, 60)])
def test_nearest_indices_match_torch(front, size):
    np.testing.assert_array_equal(nearest_indices(front, size), torch_nearest(front, size))


def test_float32_rounding_differs_from_the_exact_floor_on_long_clips():
    """153 chunks into 60 frames: torch's single-precision scale moves a few indices by one."""
    exact = (np.arange(22980) * 22950) // 22980
    assert (nearest_indices(22950, 22980) != exact).sum() == 8
