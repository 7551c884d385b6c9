"""Can the shape's horizontal position be read from what the LLM receives for a frame?

    .venv/bin/python src/salmonn_o1_mini/scripts/frame_position_probe.py [MODEL] [--clips 250]

Renders AVR-Synth train clips (from index 730000, which no recipe trains on), encodes every frame
that shows a shape as the model does, and fits a ridge regression from a frame's features to the
shape's x (0..1), on three quarters of the frames, scored on the rest: the vision tower's patch
features, the pooled grid, the projected frame tokens the LLM receives (all of them side by side),
their mean (what an attention head that spreads over the frame copies), and the first of them
(where a look-up by the frame's time text lands). The constant guess is the baseline. The numbers
of salmonn_o1_mini/docs/notebook.md, "A frame scan", come from this script.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from salmonn_o1.data.synthetic.dataset import generate_item, render_media
from salmonn_o1.data.synthetic.timeline import scene_at
from salmonn_o1.features import frames_to_pixel_values
from salmonn_o1.inference import SalmonnO1Pipeline
from salmonn_o1.model.vision import pool_grid, tower_features


def frame_features(model, clips: int, first_index: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    config = model.config
    size = config.vision_config.image_size
    cols = config.patch_grid // config.spatial_pool_stride
    grid_tokens = [r * (cols + 1) + c for r in range(cols) for c in range(cols)]  # the newline tokens left out
    features: dict[str, list[np.ndarray]] = {name: [] for name in
                                             ("patch features", "pooled grid", "frame tokens", "their mean",
                                              "the first token")}
    xs = []
    with torch.no_grad():
        for index in range(first_index, first_index + clips):
            sample = generate_item("train", index)
            media = render_media(sample, fps=config.frames_per_second, size=size)
            pixels = frames_to_pixel_values(np.asarray(media.frames), size)
            patches = tower_features(model.vision_tower, pixels)
            pooled = pool_grid(patches, config.patch_grid, config.spatial_pool_stride, config.spatial_pool_mode)
            tokens = model.encode_frames(pixels, pooled=True)
            for k, t in enumerate(media.frame_times):
                scene = scene_at(sample.timeline, float(t))
                if scene is None:
                    continue
                xs.append(scene.position(float(t))[0])
                features["patch features"].append(patches[k].flatten().numpy())
                features["pooled grid"].append(pooled[k].flatten().numpy())
                features["frame tokens"].append(tokens[k].flatten().numpy())
                features["their mean"].append(tokens[k, grid_tokens].mean(0).numpy())
                features["the first token"].append(tokens[k, 0].numpy())
    return {name: np.array(rows) for name, rows in features.items()}, np.array(xs)


def ridge_errors(features: np.ndarray, target: np.ndarray, penalty: float = 1.0) -> np.ndarray:
    """Absolute errors on the last quarter of a ridge fit on the first three quarters."""
    design = np.c_[features, np.ones(len(features))]
    cut = int(0.75 * len(target))
    train = design[:cut]
    weights = np.linalg.solve(train.T @ train + penalty * np.eye(design.shape[1]), train.T @ target[:cut])
    return np.abs(design[cut:] @ weights - target[cut:])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default="src/salmonn_o1/assets/mini")
    parser.add_argument("--clips", type=int, default=250)
    parser.add_argument("--first-index", type=int, default=730000)
    args = parser.parse_args(argv)
    model = SalmonnO1Pipeline.from_pretrained(args.model, device="cpu", dtype="float32").model.eval()
    features, xs = frame_features(model, args.clips, args.first_index)
    held_out = xs[int(0.75 * len(xs)):]
    baseline = np.abs(held_out - xs[:int(0.75 * len(xs))].mean())
    print(f"{len(xs)} frames; x error on the held-out quarter (mean, share within 0.05):")
    print(f"  constant guess: {baseline.mean():.3f}, {(baseline <= 0.05).mean():.2f}")
    for name, rows in features.items():
        errors = ridge_errors(rows, xs)
        print(f"  {name} ({rows.shape[1]} numbers): {errors.mean():.3f}, {(errors <= 0.05).mean():.2f}")


if __name__ == "__main__":
    main()
